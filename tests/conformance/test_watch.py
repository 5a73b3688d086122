"""WATCH: initial state, resuming from a resourceVersion, 410 for compacted history, bookmarks,
server-side timeouts and selector semantics."""

from __future__ import annotations

import time

import anyio
import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import configmap, core_api, open_watch


def _cm_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


async def test_a_watch_without_resource_version_starts_with_the_current_objects(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("one", labels={"w": "1"}))
    await core.create_namespaced_config_map(kube.namespace, configmap("two", labels={"w": "1"}))
    async with open_watch(kube.api_client, _cm_path(kube.namespace), [("labelSelector", "w")]) as stream:
        events = await stream.take(2)
        assert {(e["type"], e["object"]["metadata"]["name"]) for e in events} == {
            ("ADDED", "one"),
            ("ADDED", "two"),
        }
        await core.patch_namespaced_config_map("one", kube.namespace, {"data": {"k": "2"}})
        modified = await stream.next()
        assert modified is not None
        assert modified["type"] == "MODIFIED"
        assert modified["object"]["data"] == {"k": "2"}


async def test_a_watch_from_a_resource_version_replays_later_changes_in_order(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("w"))
    start = created.metadata.resource_version
    await core.patch_namespaced_config_map("w", kube.namespace, {"data": {"k": "1"}})
    await core.patch_namespaced_config_map("w", kube.namespace, {"data": {"k": "2"}})
    await core.delete_namespaced_config_map("w", kube.namespace)
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [("resourceVersion", start), ("fieldSelector", "metadata.name=w")],
    ) as stream:
        events = await stream.take(3)
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert [e["object"]["data"]["k"] for e in events] == ["1", "2", "2"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start)


async def test_the_deleted_event_carries_a_new_resource_version(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("d"))
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [("resourceVersion", created.metadata.resource_version), ("fieldSelector", "metadata.name=d")],
    ) as stream:
        await core.delete_namespaced_config_map("d", kube.namespace)
        event = await stream.next()
    assert event is not None
    assert event["type"] == "DELETED"
    assert int(event["object"]["metadata"]["resourceVersion"]) > int(created.metadata.resource_version)


async def test_an_object_that_stops_matching_the_selector_is_sent_as_deleted(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(
        kube.namespace, configmap("sel", labels={"keep": "yes"})
    )
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [("resourceVersion", created.metadata.resource_version), ("labelSelector", "keep=yes")],
    ) as stream:
        await core.patch_namespaced_config_map(
            "sel", kube.namespace, {"metadata": {"labels": {"keep": "no"}}}
        )
        left = await stream.next()
        await core.patch_namespaced_config_map(
            "sel", kube.namespace, {"metadata": {"labels": {"keep": "yes"}}}
        )
        back = await stream.next()
    assert left is not None
    assert back is not None
    assert left["type"] == "DELETED"
    assert left["object"]["metadata"]["name"] == "sel"
    assert back["type"] == "ADDED"
    assert back["object"]["metadata"]["labels"] == {"keep": "yes"}


async def test_timeout_seconds_makes_the_server_end_the_stream(kube: KubeTarget) -> None:
    started = time.monotonic()
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [("timeoutSeconds", "1"), ("labelSelector", "nothing-has-this")],
    ) as stream:
        end = await stream.next(timeout=15)
    assert end is None
    assert 0.5 <= time.monotonic() - started < 10


async def test_bookmarks_arrive_before_the_timeout_with_the_latest_resource_version(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("bm"))
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [
            ("resourceVersion", created.metadata.resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "4"),
            ("labelSelector", "nothing-has-this"),
        ],
    ) as stream:
        # a change the watch filters out: the server's resourceVersion moves past what we were sent
        patched = await core.patch_namespaced_config_map("bm", kube.namespace, {"data": {"k": "2"}})
        event = await stream.next(timeout=15)
    assert event is not None
    assert event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "ConfigMap"
    assert int(event["object"]["metadata"]["resourceVersion"]) >= int(patched.metadata.resource_version)


async def test_send_initial_events_ends_with_an_annotated_bookmark(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("ie", labels={"ie": "1"}))
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("allowWatchBookmarks", "true"),
            ("labelSelector", "ie"),
        ],
    ) as stream:
        added = await stream.next()
        assert added is not None
        if added["type"] == "ERROR" and "RequestWatchProgress" in added["object"]["message"]:
            # kube-apiserver needs etcd's RequestWatchProgress for this (etcd >= 3.4.31 / 3.5.13)
            pytest.skip(f"this control plane cannot serve sendInitialEvents: {added['object']['message']}")
        bookmark = await stream.next()
    assert bookmark is not None
    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_a_watch_on_one_namespace_sees_nothing_from_another(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    labels = {"watched": kube.namespace}
    start = await core.create_namespaced_config_map(kube.namespace, configmap("mine", labels=labels))
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [
            ("resourceVersion", start.metadata.resource_version),
            ("labelSelector", f"watched={kube.namespace}"),
        ],
    ) as stream:
        await core.create_namespaced_config_map(
            "default", configmap(f"elsewhere-{kube.namespace}", labels=labels)
        )
        await core.create_namespaced_config_map(kube.namespace, configmap("mine-2", labels=labels))
        event = await stream.next()
        await core.delete_namespaced_config_map(f"elsewhere-{kube.namespace}", "default")
    assert event is not None
    assert event["object"]["metadata"]["name"] == "mine-2"


@pytest.mark.fake_only
async def test_watching_from_compacted_history_yields_one_expired_error_event(fake_kube: KubeTarget) -> None:
    kube = fake_kube
    assert kube.fake is not None
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("old"))
    await core.patch_namespaced_config_map("old", kube.namespace, {"data": {"k": "2"}})
    kube.fake.faults.expire_history()
    async with open_watch(
        kube.api_client, _cm_path(kube.namespace), [("resourceVersion", created.metadata.resource_version)]
    ) as stream:
        assert stream.status == 200
        error = await stream.next()
        end = await stream.next()
    assert error is not None
    assert error["type"] == "ERROR"
    assert error["object"]["code"] == 410
    assert error["object"]["reason"] == "Expired"
    assert error["object"]["message"].startswith(
        f"too old resource version: {created.metadata.resource_version} ("
    )
    assert end is None


@pytest.mark.fake_only
async def test_history_beyond_history_size_is_compacted() -> None:
    from kctl_runtime.testing import FakeApiServer

    from ._support import raw

    async with FakeApiServer(history_size=5) as server:
        api = await server.api_client()
        try:
            core = core_api(api)
            created = await core.create_namespaced_config_map("default", configmap("h"))
            for i in range(10):
                await core.patch_namespaced_config_map("h", "default", {"data": {"k": str(i)}})
            async with open_watch(
                api,
                "/api/v1/namespaces/default/configmaps",
                [("resourceVersion", created.metadata.resource_version)],
            ) as stream:
                error = await stream.next()
            assert error is not None
            assert error["type"] == "ERROR"
            assert error["object"]["code"] == 410
            status, _, body = await raw(api, "GET", "/api/v1/namespaces/default/configmaps/h")
            assert status == 200
            async with open_watch(
                api,
                "/api/v1/namespaces/default/configmaps",
                [("resourceVersion", body["metadata"]["resourceVersion"])],
            ) as stream:
                await core.patch_namespaced_config_map("h", "default", {"data": {"k": "last"}})
                live = await stream.next()
            assert live is not None
            assert live["type"] == "MODIFIED"
        finally:
            await api.close()


@pytest.mark.fake_only
async def test_close_watches_ends_every_open_stream(fake_kube: KubeTarget) -> None:
    kube = fake_kube
    assert kube.fake is not None
    async with (
        open_watch(kube.api_client, _cm_path(kube.namespace), [("labelSelector", "x")]) as first,
        open_watch(kube.api_client, "/api/v1/namespaces", [("labelSelector", "x")]) as second,
    ):
        await anyio.sleep(0.1)
        kube.fake.faults.close_watches()
        assert await first.next() is None
        assert await second.next() is None


@pytest.mark.fake_only
async def test_periodic_bookmarks_follow_the_configured_interval(fake_kube: KubeTarget) -> None:
    kube = fake_kube
    assert kube.fake is not None
    kube.fake.bookmark_interval = 0.2
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("tick"))
    async with open_watch(
        kube.api_client,
        _cm_path(kube.namespace),
        [
            ("resourceVersion", created.metadata.resource_version),
            ("allowWatchBookmarks", "true"),
            ("labelSelector", "!hidden"),
        ],
    ) as stream:
        await core.patch_namespaced_config_map("tick", kube.namespace, {"data": {"k": "2"}})
        modified = await stream.next(timeout=5)
        hidden = await core.create_namespaced_config_map(
            kube.namespace, configmap("hidden", labels={"hidden": "1"})
        )
        bookmark = await stream.next(timeout=5)
        quiet = await core.create_namespaced_config_map(
            kube.namespace, configmap("quiet", labels={"hidden": "1"})
        )
        second = await stream.next(timeout=5)
    assert modified is not None
    assert modified["type"] == "MODIFIED"
    assert bookmark is not None
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["resourceVersion"] == hidden.metadata.resource_version
    assert second is not None
    assert second["object"]["metadata"]["resourceVersion"] == quiet.metadata.resource_version
