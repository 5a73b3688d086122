"""RBAC generation: reads from what controllers watch, writes from declarations, nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from kctl_runtime.controller import Controller, Watch
from kctl_runtime.rbac import (
    EVENT_RECORDER,
    LEADER_ELECTION,
    SHARDING_LEASES,
    Grant,
    Permissions,
    manifests,
    rules,
)
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS, SECRETS, SERVICES
from tests.typed_models import Gadget


async def _noop(_request: Any) -> None:
    return None


def _controller() -> Controller:
    return Controller(
        "gadget",
        for_=Gadget.resource,
        reconciler=_noop,
        owns=[DEPLOYMENTS],
        watches=[Watch(CONFIGMAPS, lambda _obj: [])],
    )


def test_informers_get_read_verbs_and_declared_writes_are_merged_per_resource() -> None:
    out = rules(
        [_controller()],
        [Grant(DEPLOYMENTS, ("patch", "create")), Grant(Gadget.resource, ("patch",), subresource="status")],
    )
    assert out == [
        {"apiGroups": [Gadget.resource.group], "resources": ["gadgets"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list", "watch", "create", "patch"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [Gadget.resource.group], "resources": ["gadgets/status"], "verbs": ["patch"]},
    ]


def test_a_resource_only_written_gets_no_read_verbs() -> None:
    out = rules([], [Grant(SECRETS, ("create", "delete"))])
    assert out == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]}]


def test_unknown_verbs_and_wildcards_are_refused() -> None:
    with pytest.raises(ValueError, match="Grant verbs"):
        Grant(SERVICES, ("*",))
    with pytest.raises(ValueError, match="Grant verbs"):
        Grant(SERVICES, ())


def test_the_cluster_variant_binds_the_service_account_and_keeps_leader_election_namespaced() -> None:
    permissions = Permissions("gadget-controller", "gadget-system", [_controller()], [EVENT_RECORDER])
    docs = manifests(permissions)
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    role = docs[2]
    assert role["metadata"] == {"name": "gadget-controller-leader-election", "namespace": "gadget-system"}
    assert role["rules"] == rules([], [LEADER_ELECTION])
    subject = {"kind": "ServiceAccount", "name": "gadget-controller", "namespace": "gadget-system"}
    assert docs[1]["subjects"] == [subject]
    assert docs[3]["subjects"] == [subject]


def test_the_namespaced_variant_grants_the_same_rules_in_one_namespace() -> None:
    permissions = Permissions("gadget-controller", "gadget-system", [_controller()], [EVENT_RECORDER])
    docs = manifests(permissions, watch_namespace="web")
    assert [d["kind"] for d in docs] == ["Namespace", "Role", "RoleBinding"]
    assert docs[1]["rules"] == manifests(permissions)[0]["rules"]
    assert docs[2]["metadata"] == {"name": "gadget-controller", "namespace": "web"}


def test_the_sharded_overlay_adds_label_patches_and_lease_watches_and_nothing_granted_already() -> None:
    """Sharding patches labels on the primary and owned objects and watches the ring's Leases; the
    base already patches Deployments here, so the overlay grants only the Gadget patch."""
    permissions = Permissions(
        "gadget-controller", "gadget-system", [_controller()], [Grant(DEPLOYMENTS, ("create", "patch"))]
    )
    docs = manifests(permissions, sharded=True)
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    assert {d["metadata"]["name"] for d in docs} == {"gadget-controller-sharding"}
    assert docs[0]["rules"] == [
        {"apiGroups": [Gadget.resource.group], "resources": ["gadgets"], "verbs": ["patch"]}
    ]
    assert docs[2]["metadata"]["namespace"] == "gadget-system"
    assert docs[2]["rules"] == rules([], [SHARDING_LEASES])
    subject = {"kind": "ServiceAccount", "name": "gadget-controller", "namespace": "gadget-system"}
    assert docs[1]["subjects"] == docs[3]["subjects"] == [subject]


def test_the_sharded_overlay_without_leader_election_also_grants_the_lease_writes() -> None:
    permissions = Permissions("gadget-controller", "gadget-system", [_controller()], leader_election=False)
    docs = manifests(permissions, sharded=True)
    assert docs[0]["rules"] == rules([], [Grant(Gadget.resource, ("patch",)), Grant(DEPLOYMENTS, ("patch",))])
    assert docs[2]["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update"],
        }
    ]
    with pytest.raises(ValueError, match="do not combine"):
        manifests(permissions, sharded=True, watch_namespace="web")
