"""Unit tests of the User controller's pure parts: names, desired objects, back references."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.user_controller.controller import (
    USER_ANNOTATION,
    USER_UID_LABEL,
    desired_namespace,
    desired_service_account,
    desired_token_secret,
    group_namespace,
    token_secret_name,
    user_of,
    validate_user,
)
from kctl_runtime.reconcile import Request


def user(name: str = "tester3", group: str = "test", email: str = "tester3@kiamol.net") -> dict[str, Any]:
    return {
        "apiVersion": "ch20.kiamol.net/v1",
        "kind": "User",
        "metadata": {"name": name, "namespace": "users", "uid": "u-123"},
        "spec": {"email": email, "group": group},
    }


def test_the_group_namespace_is_named_and_labelled_as_in_the_book() -> None:
    ns = desired_namespace("test")
    assert ns["metadata"]["name"] == group_namespace("test") == "kiamol-ch20-authn-test"
    assert ns["metadata"]["labels"]["kiamol"] == "ch20"


def test_the_service_account_is_named_after_the_user_and_never_automounted() -> None:
    sa = desired_service_account(user())
    assert sa["metadata"]["name"] == "tester3"
    assert sa["metadata"]["namespace"] == "kiamol-ch20-authn-test"
    assert sa["automountServiceAccountToken"] is False


def test_the_token_secret_is_a_service_account_token_for_the_account_without_data() -> None:
    secret = desired_token_secret(user())
    assert secret["metadata"]["name"] == token_secret_name("tester3") == "tester3-token"
    assert secret["metadata"]["namespace"] == "kiamol-ch20-authn-test"
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "tester3"
    assert "data" not in secret
    assert "stringData" not in secret


def test_account_objects_point_back_to_their_user() -> None:
    for obj in (desired_service_account(user()), desired_token_secret(user())):
        assert obj["metadata"]["labels"][USER_UID_LABEL] == "u-123"
        assert obj["metadata"]["annotations"][USER_ANNOTATION] == "users/tester3"
        assert user_of(obj) == Request("tester3", "users")


@pytest.mark.parametrize("annotation", [None, "", "no-slash", "/name", "ns/"])
def test_an_object_without_a_valid_back_reference_maps_to_no_user(annotation: str | None) -> None:
    annotations = {} if annotation is None else {USER_ANNOTATION: annotation}
    assert user_of({"metadata": {"annotations": annotations}}) is None
    assert user_of({}) is None


def test_a_valid_user_has_no_problems() -> None:
    assert validate_user(user()) == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"group": "Has_Caps"}, "spec.group"),
        ({"group": "x" * 46}, "spec.group"),
        ({"group": "-lead"}, "spec.group"),
        ({"email": "no-at-sign"}, "spec.email"),
    ],
)
def test_a_user_whose_group_or_email_cannot_work_is_invalid(spec: dict[str, str], fragment: str) -> None:
    u = user()
    u["spec"].update(spec)
    problems = validate_user(u)
    assert any(fragment in p for p in problems), problems


def test_the_longest_group_still_makes_a_valid_namespace_name() -> None:
    u = user(group="g" * 45)
    assert validate_user(u) == []
    assert len(group_namespace(u["spec"]["group"])) == 63


@given(st.dictionaries(st.sampled_from(["group", "email", "x"]), st.none() | st.integers() | st.text()))
def test_user_validation_never_raises(spec: dict[str, Any]) -> None:
    assert isinstance(validate_user({"metadata": {"name": "n"}, "spec": spec}), list)
