"""Owner references (kctl_runtime.ownership): building one, reading it back, the adoption policy."""

from __future__ import annotations

from typing import Any

from kctl_runtime.ownership import controller_name, controller_of, controller_reference, not_controlled_by
from kctl_runtime.resource import DEPLOYMENTS, Resource

WEBSITES = Resource(group="extensions.example.com", version="v1", plural="websites", kind="Website")


def child(*refs: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": "ns", "ownerReferences": list(refs)}}


def test_a_controller_reference_names_the_owner_and_blocks_its_deletion() -> None:
    assert controller_reference(WEBSITES, "site", "u-1") == {
        "apiVersion": "extensions.example.com/v1",
        "kind": "Website",
        "name": "site",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_only_the_reference_marked_controller_is_the_controller() -> None:
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u-0"}
    ref = controller_reference(WEBSITES, "site", "u-1")
    assert controller_of(child(plain, ref)) == ref
    assert controller_of(child(plain)) is None
    assert controller_of(child()) is None
    assert controller_of({"metadata": {}}) is None
    assert controller_of(None) is None


def test_the_controller_name_matches_group_and_kind_in_any_version() -> None:
    other_version = {
        **controller_reference(WEBSITES, "site", "u-1"),
        "apiVersion": "extensions.example.com/v2",
    }
    assert controller_name(child(other_version), WEBSITES) == "site"
    assert controller_name(child(controller_reference(DEPLOYMENTS, "d", "u-2")), WEBSITES) is None
    wrong_group = {**controller_reference(WEBSITES, "site", "u-1"), "apiVersion": "other.example.com/v1"}
    assert controller_name(child(wrong_group), WEBSITES) is None
    assert controller_name(child({**controller_reference(WEBSITES, "", "u-1")}), WEBSITES) is None


def test_the_adoption_policy_writes_only_what_the_owner_controls() -> None:
    ours = controller_reference(WEBSITES, "site", "u-1")
    assert not_controlled_by(None, "u-1", "Website") is None  # missing: ours to create
    assert not_controlled_by(child(ours), "u-1", "Website") is None
    assert not_controlled_by(child(controller_reference(DEPLOYMENTS, "d", "u-9")), "u-1", "Website") == (
        "is controlled by Deployment/d"
    )
    orphan = not_controlled_by(child(), "u-1", "Website")
    assert (
        orphan
        == "is not controlled by this Website (the controller never adopts an object it did not create)"
    )
    # a non-controller reference to us does not make the object ours
    assert not_controlled_by(child({**ours, "controller": False}), "u-1", "Website") == orphan
