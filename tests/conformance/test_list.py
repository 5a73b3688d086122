"""LIST: selectors, pagination with continue tokens, resourceVersion, cluster-wide lists."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import configmap, core_api, raw, status_of


async def _names(core: Any, namespace: str, **kwargs: str) -> list[str]:
    listed = await core.list_namespaced_config_map(namespace, **kwargs)
    return [c.metadata.name for c in listed.items]


@pytest.fixture
async def labelled(kube: KubeTarget) -> Any:
    core = core_api(kube.api_client)
    specs = {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "web", "env": "dev"},
        "c": {"tier": "db", "env": "prod"},
        "d": {"tier": "cache"},
    }
    for name, labels in specs.items():
        await core.create_namespaced_config_map(kube.namespace, configmap(name, labels=labels))
    return core


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web,tier", ["c", "d"]),
        ("tier in (db,cache)", ["c", "d"]),
        ("tier notin (web),tier", ["c", "d"]),
        ("env", ["a", "b", "c"]),
        ("tier,!env", ["d"]),
        ("tier=web,env=prod", ["a"]),
    ],
)
async def test_label_selectors_filter_the_list(
    kube: KubeTarget, labelled: Any, selector: str, expected: list[str]
) -> None:
    assert await _names(labelled, kube.namespace, label_selector=selector) == expected


async def test_a_malformed_label_selector_is_bad_request(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.list_namespaced_config_map(kube.namespace, label_selector="a in (b")
    assert caught.value.status == 400
    assert status_of(caught.value)["reason"] == "BadRequest"


async def test_field_selector_on_metadata_name(kube: KubeTarget, labelled: Any) -> None:
    assert await _names(labelled, kube.namespace, field_selector="metadata.name=c") == ["c"]
    names = await _names(labelled, kube.namespace, field_selector="metadata.name!=c", label_selector="tier")
    assert names == ["a", "b", "d"]


async def test_an_unsupported_field_selector_is_bad_request(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.list_namespaced_config_map(kube.namespace, field_selector="data.k=v")
    status = status_of(caught.value)
    assert caught.value.status == 400
    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


async def test_items_come_sorted_by_name_with_the_list_resource_version(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    last = None
    for name in ("zeta", "alpha", "mid"):
        last = await core.create_namespaced_config_map(
            kube.namespace, configmap(name, labels={"sorted": "1"})
        )
    listed = await core.list_namespaced_config_map(kube.namespace, label_selector="sorted")
    assert [c.metadata.name for c in listed.items] == ["alpha", "mid", "zeta"]
    assert last is not None
    assert int(listed.metadata.resource_version) >= int(last.metadata.resource_version)


async def test_a_cluster_wide_list_spans_namespaces(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    marker = kube.namespace
    await core.create_namespaced_config_map(kube.namespace, configmap("here", labels={"marker": marker}))
    listed = await core.list_config_map_for_all_namespaces(label_selector=f"marker={marker}")
    assert [(c.metadata.namespace, c.metadata.name) for c in listed.items] == [(kube.namespace, "here")]
    status, _, body = await raw(
        kube.api_client, "GET", "/api/v1/configmaps", query=[("labelSelector", f"marker={marker}")]
    )
    assert status == 200
    assert body["kind"] == "ConfigMapList"


async def test_pagination_returns_every_object_exactly_once(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    expected = [f"p-{i:02d}" for i in range(23)]
    for name in expected:
        await core.create_namespaced_config_map(kube.namespace, configmap(name, labels={"page": "1"}))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await core.list_namespaced_config_map(
            kube.namespace, label_selector="page", limit=5, _continue=token
        )
        pages += 1
        assert len(page.items) <= 5
        seen.extend(c.metadata.name for c in page.items)
        token = page.metadata._continue
        if not token:
            break
    assert seen == expected
    assert pages == 5


async def test_a_paginated_list_is_a_consistent_snapshot(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    for i in range(6):
        await core.create_namespaced_config_map(kube.namespace, configmap(f"s-{i}", data={"v": "old"}))
    first = await core.list_namespaced_config_map(kube.namespace, limit=3)
    snapshot_rv = first.metadata.resource_version
    await core.patch_namespaced_config_map("s-5", kube.namespace, {"data": {"v": "new"}})
    await core.create_namespaced_config_map(kube.namespace, configmap("s-9"))
    await core.delete_namespaced_config_map("s-4", kube.namespace)
    rest: list[Any] = []
    token = first.metadata._continue
    while token:
        page = await core.list_namespaced_config_map(kube.namespace, limit=3, _continue=token)
        assert page.metadata.resource_version == snapshot_rv
        rest.extend(page.items)
        token = page.metadata._continue
    names = [c.metadata.name for c in first.items + rest]
    assert "s-4" in names
    assert "s-9" not in names
    assert next(c for c in rest if c.metadata.name == "s-5").data == {"v": "old"}


async def test_remaining_item_count_is_reported_without_selectors(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    for i in range(4):
        await core.create_namespaced_config_map(kube.namespace, configmap(f"r-{i}"))
    total = len((await core.list_namespaced_config_map(kube.namespace)).items)
    page = await core.list_namespaced_config_map(kube.namespace, limit=1)
    assert page.metadata.remaining_item_count == total - 1


async def test_a_garbled_continue_token_is_bad_request(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.list_namespaced_config_map(kube.namespace, limit=1, _continue="!!not-a-token!!")
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        "invalid continue token: continue key is not valid: illegal base64 data at input byte 0"
    )


@pytest.mark.fake_only
async def test_a_continue_token_from_compacted_history_is_expired(fake_kube: KubeTarget) -> None:
    kube = fake_kube
    assert kube.fake is not None
    core = core_api(kube.api_client)
    for i in range(4):
        await core.create_namespaced_config_map(kube.namespace, configmap(f"e-{i}"))
    first = await core.list_namespaced_config_map(kube.namespace, limit=2)
    await core.create_namespaced_config_map(kube.namespace, configmap("after"))
    kube.fake.faults.expire_history()
    with pytest.raises(ApiException) as caught:
        await core.list_namespaced_config_map(kube.namespace, limit=2, _continue=first.metadata._continue)
    status = status_of(caught.value)
    assert caught.value.status == 410
    assert status["reason"] == "Expired"
    assert status["message"].startswith("The provided continue parameter is too old")


async def test_cluster_scoped_list_of_namespaces_includes_the_test_namespace(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    listed = await core.list_namespace(field_selector=f"metadata.name={kube.namespace}")
    assert [n.metadata.name for n in listed.items] == [kube.namespace]


async def test_items_of_a_built_in_list_carry_no_api_version_or_kind(kube: KubeTarget) -> None:
    await core_api(kube.api_client).create_namespaced_config_map(kube.namespace, configmap("typed"))
    status, _, body = await raw(
        kube.api_client,
        "GET",
        f"/api/v1/namespaces/{kube.namespace}/configmaps",
        query=[("fieldSelector", "metadata.name=typed")],
    )
    assert status == 200
    assert body["kind"] == "ConfigMapList"
    assert body["apiVersion"] == "v1"
    [item] = body["items"]
    assert "apiVersion" not in item
    assert "kind" not in item
    assert item["metadata"]["name"] == "typed"
