"""Tests for kctl_runtime.patch: pure merge-patch helpers, and every helper over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kctl_runtime._rest import request_json
from kctl_runtime.errors import Conflict, Invalid, NotFound
from kctl_runtime.patch import (
    apply,
    apply_merge_patch,
    diff_merge_patch,
    json_patch,
    merge_patch,
    patch_status,
    pointer,
)
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS
from kctl_runtime.testing.pytest_plugin import KubeTarget, unique_name

# ------------------------------------------------------------------------------------ pure helpers


def test_diff_of_equal_objects_is_empty() -> None:
    obj = {"a": 1, "b": {"c": [1, 2]}}
    assert diff_merge_patch(obj, {"a": 1, "b": {"c": [1, 2]}}) == {}


def test_diff_sends_only_changed_leaves_nulls_for_removed_keys_and_whole_lists() -> None:
    old = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1, 2], "x": 1}}
    new = {"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"ports": [1, 3], "x": 1}}
    assert diff_merge_patch(old, new) == {
        "metadata": {"labels": {"b": None, "c": "3"}},
        "spec": {"ports": [1, 3]},
    }


def test_diff_replaces_a_value_whose_type_changed() -> None:
    assert diff_merge_patch({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert diff_merge_patch({"a": 1}, {"a": True}) == {"a": True}
    assert diff_merge_patch({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_diff_output_does_not_alias_the_new_object() -> None:
    new: dict[str, Any] = {"a": {"list": [{"x": 1}]}}
    patch = diff_merge_patch({}, new)
    patch["a"]["list"][0]["x"] = 2
    assert new == {"a": {"list": [{"x": 1}]}}


def test_apply_merge_patch_follows_rfc_7386_examples() -> None:
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["a", "b"]}
    patch = {"title": "Hello!", "phoneNumber": "+01-123", "author": {"familyName": None}, "tags": ["example"]}
    assert apply_merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "phoneNumber": "+01-123",
    }
    assert apply_merge_patch({"a": "b"}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert apply_merge_patch({"a": [1]}, ["c"]) == ["c"]


def test_pointer_escapes_slashes_and_tildes_in_keys() -> None:
    assert pointer("metadata", "annotations", "example.com/a~b") == "/metadata/annotations/example.com~1a~0b"
    assert pointer("metadata", "finalizers", 2) == "/metadata/finalizers/2"


_json_leaf = st.one_of(st.integers(), st.text(max_size=3), st.booleans())
_json = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.sampled_from("abcd"), children, max_size=3)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(st.sampled_from("abcde"), _json, max_size=4)


@given(_objects, _objects)
def test_applying_the_diff_to_old_always_yields_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    patch = diff_merge_patch(old, new)
    assert apply_merge_patch(old, patch) == new
    assert (patch == {}) == (old == new)


def test_json_patch_ops_are_checked_before_sending() -> None:
    async def send(ops: list[dict[str, Any]]) -> None:
        await json_patch(None, CONFIGMAPS, "ns", "n", ops)

    import anyio

    with pytest.raises(ValueError, match="not a JSON patch operation"):
        anyio.run(send, [{"op": "frob", "path": "/a"}])
    with pytest.raises(ValueError, match="needs a 'value'"):
        anyio.run(send, [{"op": "test", "path": "/a"}])
    with pytest.raises(ValueError, match="empty JSON patch"):
        anyio.run(send, [])


# ---------------------------------------------------------------------------------- over HTTP


async def _configmap(kube: KubeTarget, data: dict[str, str] | None = None) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": unique_name("cm"), "namespace": kube.namespace},
        "data": data or {"a": "1"},
    }
    created: dict[str, Any] = await request_json(
        kube.api_client, "POST", CONFIGMAPS.path(kube.namespace), body=body
    )
    return created


async def test_merge_patch_sets_and_deletes_keys(kube: KubeTarget) -> None:
    cm = await _configmap(kube, {"a": "1", "b": "2"})
    name = cm["metadata"]["name"]
    patched = await merge_patch(
        kube.api_client, CONFIGMAPS, kube.namespace, name, {"data": {"b": None, "c": "3"}}
    )
    assert patched["data"] == {"a": "1", "c": "3"}
    assert int(patched["metadata"]["resourceVersion"]) > int(cm["metadata"]["resourceVersion"])


async def test_doc_snippet_diff_merge_patch_sends_only_what_changed(kube: KubeTarget) -> None:
    # docs/status-and-patches.md: "Minimal merge patches" snippet.
    old = await _configmap(kube, {"a": "1", "b": "2"})
    # --8<-- [start:diff-merge-patch]
    desired = {**old, "data": {"a": "1", "b": "two"}}
    patch = diff_merge_patch(old, desired)
    assert patch == {"data": {"b": "two"}}
    patch.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
    new = await merge_patch(kube.api_client, CONFIGMAPS, kube.namespace, old["metadata"]["name"], patch)
    # --8<-- [end:diff-merge-patch]
    assert new["data"] == {"a": "1", "b": "two"}


async def test_merge_patch_with_a_stale_resource_version_fails_with_conflict(kube: KubeTarget) -> None:
    cm = await _configmap(kube)
    name = cm["metadata"]["name"]
    await merge_patch(kube.api_client, CONFIGMAPS, kube.namespace, name, {"data": {"a": "2"}})
    with pytest.raises(Conflict):
        await merge_patch(
            kube.api_client,
            CONFIGMAPS,
            kube.namespace,
            name,
            {"metadata": {"resourceVersion": cm["metadata"]["resourceVersion"]}, "data": {"a": "3"}},
        )


async def test_patching_a_missing_object_raises_not_found(kube: KubeTarget) -> None:
    with pytest.raises(NotFound):
        await merge_patch(kube.api_client, CONFIGMAPS, kube.namespace, unique_name("nope"), {"data": {}})


async def test_json_patch_applies_when_its_test_op_matches(kube: KubeTarget) -> None:
    cm = await _configmap(kube, {"a": "1"})
    name = cm["metadata"]["name"]
    key = "example.com/owner"
    patched = await json_patch(
        kube.api_client,
        CONFIGMAPS,
        kube.namespace,
        name,
        [
            {"op": "test", "path": pointer("data", "a"), "value": "1"},
            {"op": "replace", "path": pointer("data", "a"), "value": "2"},
            {"op": "add", "path": pointer("metadata", "annotations"), "value": {key: "me"}},
        ],
    )
    assert patched["data"] == {"a": "2"}
    assert patched["metadata"]["annotations"] == {key: "me"}


async def test_json_patch_whose_test_op_fails_changes_nothing(kube: KubeTarget) -> None:
    cm = await _configmap(kube, {"a": "1"})
    name = cm["metadata"]["name"]
    with pytest.raises(Invalid):
        await json_patch(
            kube.api_client,
            CONFIGMAPS,
            kube.namespace,
            name,
            [
                {"op": "replace", "path": "/data/a", "value": "changed"},
                {"op": "test", "path": "/data/a", "value": "not-the-value"},
            ],
        )
    now = await request_json(kube.api_client, "GET", CONFIGMAPS.path(kube.namespace, name))
    assert now["data"] == {"a": "1"}
    assert now["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]


async def _deployment(kube: KubeTarget) -> dict[str, Any]:
    labels = {"app": "patch-test"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": unique_name("dep"), "namespace": kube.namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }
    created: dict[str, Any] = await request_json(
        kube.api_client, "POST", DEPLOYMENTS.path(kube.namespace), body=body
    )
    return created


async def test_patch_status_writes_status_through_the_subresource_only(kube: KubeTarget) -> None:
    dep = await _deployment(kube)
    name = dep["metadata"]["name"]
    patched = await patch_status(
        kube.api_client,
        DEPLOYMENTS,
        kube.namespace,
        name,
        {"observedGeneration": 1},
    )  # no resourceVersion, no counts: on the real tier the Deployment controller writes status
    # concurrently (replicas: 0 next to its updatedReplicas: 1 would be a 422)
    assert patched["status"]["observedGeneration"] == 1
    # Spec sent to the status subresource is ignored by the server.
    again = await merge_patch(
        kube.api_client,
        DEPLOYMENTS,
        kube.namespace,
        name,
        {"spec": {"replicas": 5}, "status": {"observedGeneration": 1}},
        subresource="status",
    )
    assert again["spec"]["replicas"] == 1
    # And a status written through the main resource is ignored.
    main = await merge_patch(
        kube.api_client, DEPLOYMENTS, kube.namespace, name, {"status": {"observedGeneration": 7}}
    )
    assert main["status"].get("observedGeneration") == 1


async def test_patch_status_with_a_stale_resource_version_fails_with_conflict(kube: KubeTarget) -> None:
    dep = await _deployment(kube)
    name = dep["metadata"]["name"]
    await patch_status(kube.api_client, DEPLOYMENTS, kube.namespace, name, {"observedGeneration": 1})
    with pytest.raises(Conflict):
        await patch_status(
            kube.api_client,
            DEPLOYMENTS,
            kube.namespace,
            name,
            {"observedGeneration": 2},
            resource_version=dep["metadata"]["resourceVersion"],
        )


def _managers(obj: dict[str, Any]) -> set[str]:
    return {entry["manager"] for entry in obj["metadata"].get("managedFields") or []}


async def test_apply_creates_then_updates_and_records_the_field_manager(kube: KubeTarget) -> None:
    name = unique_name("applied")
    desired = {"metadata": {"name": name, "namespace": kube.namespace}, "data": {"a": "1", "b": "2"}}
    created = await apply(kube.api_client, CONFIGMAPS, desired, field_manager="ctrl-a")
    assert created["data"] == {"a": "1", "b": "2"}
    assert "ctrl-a" in _managers(created)
    # Fields the manager stops applying are removed (it was their only owner).
    updated = await apply(
        kube.api_client,
        CONFIGMAPS,
        {"metadata": {"name": name, "namespace": kube.namespace}, "data": {"a": "1"}},
        field_manager="ctrl-a",
    )
    assert updated["data"] == {"a": "1"}


async def test_apply_of_a_field_owned_by_another_manager_conflicts_unless_forced(kube: KubeTarget) -> None:
    name = unique_name("applied")
    meta = {"name": name, "namespace": kube.namespace}
    await apply(kube.api_client, CONFIGMAPS, {"metadata": meta, "data": {"a": "1"}}, field_manager="ctrl-a")
    with pytest.raises(Conflict) as caught:
        await apply(
            kube.api_client, CONFIGMAPS, {"metadata": meta, "data": {"a": "2"}}, field_manager="ctrl-b"
        )
    assert "ctrl-a" in caught.value.message
    forced = await apply(
        kube.api_client,
        CONFIGMAPS,
        {"metadata": meta, "data": {"a": "2"}},
        field_manager="ctrl-b",
        force=True,
    )
    assert forced["data"] == {"a": "2"}
    assert "ctrl-b" in _managers(forced)
    # Applying the same value another manager set is shared ownership, not a conflict.
    shared = await apply(
        kube.api_client, CONFIGMAPS, {"metadata": meta, "data": {"a": "2"}}, field_manager="ctrl-c"
    )
    assert {"ctrl-b", "ctrl-c"} <= _managers(shared)


def test_apply_refuses_objects_without_name_namespace_or_field_manager() -> None:
    import anyio

    async def go(obj: dict[str, Any], manager: str) -> None:
        await apply(None, CONFIGMAPS, obj, field_manager=manager)

    with pytest.raises(ValueError, match="field_manager"):
        anyio.run(go, {"metadata": {"name": "a", "namespace": "b"}}, "")
    with pytest.raises(ValueError, match=r"metadata\.name"):
        anyio.run(go, {"metadata": {"namespace": "b"}}, "m")
    with pytest.raises(ValueError, match="namespaced"):
        anyio.run(go, {"metadata": {"name": "a"}}, "m")
