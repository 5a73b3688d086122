"""Deletion: finalizers, garbage collection by ownerReferences, and namespace termination."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

from ._support import configmap, core_api, open_watch, raw, status_of


def _owned(name: str, owner: Any, *, block: bool = False) -> dict[str, Any]:
    body = configmap(name)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
            "blockOwnerDeletion": block,
        }
    ]
    return body


async def _gone(core: Any, namespace: str, name: str) -> bool:
    """For ``eventually``: true once the object is gone (an AssertionError while it exists)."""
    try:
        await core.read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        return exc.status == 404
    raise AssertionError(f"{name} still exists")


async def test_a_finalizer_holds_the_object_with_a_deletion_timestamp(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    body = configmap("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    created = await core.create_namespaced_config_map(kube.namespace, body)
    async with open_watch(
        kube.api_client,
        f"/api/v1/namespaces/{kube.namespace}/configmaps",
        [("resourceVersion", created.metadata.resource_version), ("fieldSelector", "metadata.name=held")],
    ) as stream:
        status, _, answer = await raw(
            kube.api_client, "DELETE", f"/api/v1/namespaces/{kube.namespace}/configmaps/held"
        )
        assert status == 200
        assert answer["kind"] == "ConfigMap"
        assert answer["metadata"]["deletionTimestamp"]
        assert answer["metadata"]["deletionGracePeriodSeconds"] == 0
        marked = await stream.next()
        assert marked is not None
        assert marked["type"] == "MODIFIED"
        assert marked["object"]["metadata"]["deletionTimestamp"]
        still = await core.read_namespaced_config_map("held", kube.namespace)
        assert still.metadata.deletion_timestamp is not None
        await core.patch_namespaced_config_map("held", kube.namespace, {"metadata": {"finalizers": None}})
        deleted = await stream.next()
    assert deleted is not None
    assert deleted["type"] == "DELETED"
    assert await _gone(core, kube.namespace, "held")


async def test_new_finalizers_cannot_be_added_to_an_object_being_deleted(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    body = configmap("closing")
    body["metadata"]["finalizers"] = ["example.com/a"]
    await core.create_namespaced_config_map(kube.namespace, body)
    await core.delete_namespaced_config_map("closing", kube.namespace)
    with pytest.raises(ApiException) as caught:
        await core.patch_namespaced_config_map(
            "closing", kube.namespace, {"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}
        )
    assert caught.value.status == 422
    assert status_of(caught.value)["reason"] == "Invalid"
    await core.patch_namespaced_config_map("closing", kube.namespace, {"metadata": {"finalizers": None}})


async def test_deleting_an_object_being_deleted_again_changes_nothing(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    body = configmap("twice")
    body["metadata"]["finalizers"] = ["example.com/a"]
    await core.create_namespaced_config_map(kube.namespace, body)
    await core.delete_namespaced_config_map("twice", kube.namespace)
    first = await core.read_namespaced_config_map("twice", kube.namespace)
    await core.delete_namespaced_config_map("twice", kube.namespace)
    second = await core.read_namespaced_config_map("twice", kube.namespace)
    assert second.metadata.deletion_timestamp == first.metadata.deletion_timestamp
    await core.patch_namespaced_config_map("twice", kube.namespace, {"metadata": {"finalizers": None}})


async def test_background_deletion_removes_dependents_after_the_owner(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    owner = await core.create_namespaced_config_map(kube.namespace, configmap("owner"))
    await core.create_namespaced_config_map(kube.namespace, _owned("child-1", owner))
    await core.create_namespaced_config_map(kube.namespace, _owned("child-2", owner))
    await core.delete_namespaced_config_map("owner", kube.namespace, propagation_policy="Background")
    assert await _gone(core, kube.namespace, "owner")
    await eventually(lambda: _gone(core, kube.namespace, "child-1"), message="child-1 collected")
    await eventually(lambda: _gone(core, kube.namespace, "child-2"), message="child-2 collected")


async def test_a_dependent_with_another_live_owner_survives_and_loses_the_dangling_reference(
    kube: KubeTarget,
) -> None:
    core = core_api(kube.api_client)
    first = await core.create_namespaced_config_map(kube.namespace, configmap("first"))
    second = await core.create_namespaced_config_map(kube.namespace, configmap("second"))
    body = _owned("shared", first)
    body["metadata"]["ownerReferences"].append(
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "second", "uid": second.metadata.uid}
    )
    await core.create_namespaced_config_map(kube.namespace, body)
    await core.delete_namespaced_config_map("first", kube.namespace)

    async def only_second_left() -> bool:
        shared = await core.read_namespaced_config_map("shared", kube.namespace)
        assert [r.name for r in shared.metadata.owner_references or []] == ["second"]
        return True

    await eventually(only_second_left, message="dangling ownerReference removed")


async def test_foreground_deletion_waits_for_blocking_dependents(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    owner = await core.create_namespaced_config_map(kube.namespace, configmap("fg-owner"))
    child = _owned("fg-child", owner, block=True)
    child["metadata"]["finalizers"] = ["example.com/slow"]
    await core.create_namespaced_config_map(kube.namespace, child)
    await core.delete_namespaced_config_map("fg-owner", kube.namespace, propagation_policy="Foreground")
    held = await core.read_namespaced_config_map("fg-owner", kube.namespace)
    assert "foregroundDeletion" in (held.metadata.finalizers or [])
    assert held.metadata.deletion_timestamp is not None

    async def child_is_being_deleted() -> bool:
        dependent = await core.read_namespaced_config_map("fg-child", kube.namespace)
        assert dependent.metadata.deletion_timestamp is not None
        return True

    await eventually(child_is_being_deleted, message="dependent marked for deletion")
    still = await core.read_namespaced_config_map("fg-owner", kube.namespace)
    assert still.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("fg-child", kube.namespace, {"metadata": {"finalizers": None}})
    await eventually(lambda: _gone(core, kube.namespace, "fg-child"), message="dependent deleted")
    await eventually(
        lambda: _gone(core, kube.namespace, "fg-owner"), message="owner deleted after dependents"
    )


async def test_orphan_deletion_keeps_dependents_and_strips_the_owner_reference(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    owner = await core.create_namespaced_config_map(kube.namespace, configmap("orph-owner"))
    await core.create_namespaced_config_map(kube.namespace, _owned("orphan", owner))
    await core.delete_namespaced_config_map("orph-owner", kube.namespace, propagation_policy="Orphan")
    await eventually(lambda: _gone(core, kube.namespace, "orph-owner"), message="owner deleted")

    async def orphaned() -> bool:
        child = await core.read_namespaced_config_map("orphan", kube.namespace)
        assert not child.metadata.owner_references
        return True

    await eventually(orphaned, message="ownerReference removed from the dependent")


async def test_an_object_whose_owner_never_existed_is_collected(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    body = configmap("stray")
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "phantom",
            "uid": "7f1f4a5e-0000-4000-8000-000000000001",
        }
    ]
    await core.create_namespaced_config_map(kube.namespace, body)
    await eventually(
        lambda: _gone(core, kube.namespace, "stray"), message="dependent of a missing owner collected"
    )


async def test_deleting_a_namespace_terminates_it_and_removes_its_content(kube: KubeTarget) -> None:
    from kctl_runtime.testing.pytest_plugin import unique_name

    core = core_api(kube.api_client)
    name = unique_name("doomed")
    await core.create_namespace({"metadata": {"name": name}})
    await core.create_namespaced_config_map(name, configmap("inside"))
    held = configmap("held-inside")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await core.create_namespaced_config_map(name, held)
    await core.delete_namespace(name)
    ns = await core.read_namespace(name)
    assert ns.status.phase == "Terminating"
    assert ns.metadata.deletion_timestamp is not None
    assert ns.spec.finalizers == ["kubernetes"]

    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(name, configmap("late"))
    status = status_of(caught.value)
    assert caught.value.status == 403
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'configmaps "late" is forbidden: unable to create new content in namespace {name} '
        "because it is being terminated"
    )

    await eventually(lambda: _gone(core, name, "inside"), message="content deleted")

    async def held_is_marked() -> bool:
        marked = await core.read_namespaced_config_map("held-inside", name)
        assert marked.metadata.deletion_timestamp is not None
        return True

    await eventually(held_is_marked, message="finalized content marked for deletion")

    async def finalizers_reported() -> bool:
        still = await core.read_namespace(name)
        assert still.status.phase == "Terminating"
        conditions = {c.type: c for c in still.status.conditions or []}
        assert "NamespaceFinalizersRemaining" in conditions, sorted(conditions)
        held = conditions["NamespaceFinalizersRemaining"]
        assert held.status == "True"
        assert held.reason == "SomeFinalizersRemain"
        assert held.message == (
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
        )
        assert conditions["NamespaceContentRemaining"].message == (
            "Some resources are remaining: configmaps. has 1 resource instances"
        )
        return True

    await eventually(finalizers_reported, timeout=30, message="namespace reports the remaining finalizer")
    await core.patch_namespaced_config_map("held-inside", name, {"metadata": {"finalizers": None}})

    async def namespace_gone() -> bool:
        try:
            await core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        raise AssertionError(f"namespace {name} still exists")

    await eventually(namespace_gone, timeout=30, message="namespace removed once empty")
