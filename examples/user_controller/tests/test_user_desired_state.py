"""Unit tests of the User controller's pure parts: names, desired objects, back references, and
what the model refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.user_controller.api import User
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
from kctl_runtime.customresource import InvalidObject
from kctl_runtime.reconcile import Request


def wire(name: str = "tester3", group: str = "test", email: str = "tester3@kiamol.net") -> dict[str, Any]:
    """A User as the API server sends it."""
    return {
        "apiVersion": "ch20.kiamol.net/v1",
        "kind": "User",
        "metadata": {"name": name, "namespace": "users", "uid": "u-123"},
        "spec": {"email": email, "group": group},
    }


def user(name: str = "tester3", group: str = "test", email: str = "tester3@kiamol.net") -> User:
    return User.from_object(wire(name, group, email))


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
        # accepted by kube-apiserver (Go's \s is ASCII), refused by the model (Unicode \s)
        ({"email": "tester3\u00a0x@kiamol.net"}, "spec.email"),
    ],
)
def test_a_user_whose_group_or_email_cannot_work_does_not_parse(spec: dict[str, str], fragment: str) -> None:
    obj = wire()
    obj["spec"].update(spec)
    with pytest.raises(InvalidObject) as caught:
        User.from_object(obj)
    assert any(p.startswith(fragment) for p in caught.value.problems), caught.value.problems


def test_a_user_too_long_to_name_its_token_secret_is_invalid() -> None:
    assert validate_user(user(name="n" * 253)) == [
        f"metadata.name is too long to name the token Secret {'n' * 253 + '-token'!r}"
    ]


def test_the_longest_group_still_makes_a_valid_namespace_name() -> None:
    u = user(group="g" * 45)
    assert validate_user(u) == []
    assert len(group_namespace(u.spec.group)) == 63


@settings(deadline=None)  # a loaded machine must not fail a property
@given(st.dictionaries(st.sampled_from(["group", "email", "x"]), st.none() | st.integers() | st.text()))
def test_a_user_either_parses_and_validates_or_is_refused_naming_its_fields(spec: dict[str, Any]) -> None:
    obj = {"metadata": {"name": "n", "namespace": "users", "uid": "u-1"}, "spec": spec}
    problems: list[str] = []
    try:
        parsed = User.from_object(obj)
    except InvalidObject as exc:
        problems = exc.problems
    else:
        assert isinstance(validate_user(parsed), list)
        return
    assert problems
    assert all(p.startswith("spec") for p in problems), problems
