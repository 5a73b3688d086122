"""PATCH with each content type the real server accepts, and the errors it gives."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import apps_api, configmap, core_api, deployment, raw


async def _patch(kube: KubeTarget, path: str, content_type: str, body: object) -> tuple[int, Any]:
    status, _, answer = await raw(
        kube.api_client, "PATCH", path, body=body, headers={"Content-Type": content_type}
    )
    return status, answer


async def test_merge_patch_sets_and_removes_keys(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("m", data={"a": "1", "b": "2"}))
    status, answer = await _patch(
        kube,
        f"/api/v1/namespaces/{kube.namespace}/configmaps/m",
        "application/merge-patch+json",
        {"data": {"a": None, "c": "3"}},
    )
    assert status == 200
    assert answer["data"] == {"b": "2", "c": "3"}


async def test_json_patch_applies_operations_in_order(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("j", data={"a": "1"}))
    status, answer = await _patch(
        kube,
        f"/api/v1/namespaces/{kube.namespace}/configmaps/j",
        "application/json-patch+json",
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "remove", "path": "/data/a"},
        ],
    )
    assert status == 200
    assert answer["data"] == {"b": "2"}


async def test_a_failing_json_patch_test_operation_is_invalid_and_changes_nothing(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("t", data={"a": "1"}))
    status, answer = await _patch(
        kube,
        f"/api/v1/namespaces/{kube.namespace}/configmaps/t",
        "application/json-patch+json",
        [{"op": "test", "path": "/data/a", "value": "2"}, {"op": "add", "path": "/data/b", "value": "x"}],
    )
    assert status == 422
    assert answer["kind"] == "Status"
    current = await core.read_namespaced_config_map("t", kube.namespace)
    assert current.metadata.resource_version == created.metadata.resource_version


async def test_json_patch_with_a_stale_resource_version_test_is_rejected(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("rv"))
    await core.patch_namespaced_config_map("rv", kube.namespace, {"data": {"k": "2"}})
    status, answer = await _patch(
        kube,
        f"/api/v1/namespaces/{kube.namespace}/configmaps/rv",
        "application/json-patch+json",
        [{"op": "replace", "path": "/metadata/resourceVersion", "value": created.metadata.resource_version}],
    )
    assert status == 409
    assert answer["reason"] == "Conflict"


async def test_strategic_merge_patch_merges_containers_by_name(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    await apps.create_namespaced_deployment(kube.namespace, deployment("smp"))
    status, answer = await _patch(
        kube,
        f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/smp",
        "application/strategic-merge-patch+json",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}},
    )
    assert status == 200
    names = [c["name"] for c in answer["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["main", "sidecar"]


async def test_merge_patch_replaces_lists_wholesale(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    await apps.create_namespaced_deployment(kube.namespace, deployment("mp"))
    status, answer = await _patch(
        kube,
        f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/mp",
        "application/merge-patch+json",
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "busybox"}]}}}},
    )
    assert status == 200
    assert [c["name"] for c in answer["spec"]["template"]["spec"]["containers"]] == ["only"]


async def test_patching_a_missing_object_is_not_found(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.patch_namespaced_config_map("nobody", kube.namespace, {"data": {"a": "b"}})
    assert caught.value.status == 404


async def test_an_unknown_patch_content_type_is_unsupported_media_type(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("ct"))
    status, answer = await _patch(
        kube, f"/api/v1/namespaces/{kube.namespace}/configmaps/ct", "text/plain", b'{"data": {}}'
    )
    assert status == 415
    assert answer["reason"] == "UnsupportedMediaType"
