"""Informers against an API server (the fake, and a real kube-apiserver when enabled).

Everything here is valid on both backends; fault injection lives in ``test_informer_faults.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import pytest

from kctl_runtime.clock import FakeClock
from kctl_runtime.informer import (
    Informer,
    InformerFactory,
    ResourceEventHandlerFuncs,
    strip_managed_fields,
)
from kctl_runtime.metrics import sample_value
from kctl_runtime.resource import CONFIGMAPS, NAMESPACES, Resource, object_key
from kctl_runtime.store import NAMESPACE_INDEX
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from kctl_runtime.watcher import InitApply, InitDone, Watcher, WatcherConfig, WatcherEvent

Obj = dict[str, Any]


def fast_config(**kwargs: Any) -> WatcherConfig:
    """A config whose backoffs are short, so retries in tests take milliseconds."""
    return WatcherConfig(**{"backoff_initial": 0.05, "backoff_max": 0.5, **kwargs})


# --------------------------------------------------------------------------- helpers


@dataclass
class Recorder:
    """A handler that records every call and checks each object's history is consistent.

    Per key: add, then updates whose ``old`` is exactly the previous ``new`` and whose
    resourceVersion grows, then delete; nothing after a delete but a new add; no update across
    uids (incarnations).
    """

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    live: dict[str, Obj] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    initial_adds: int = 0

    def on_add(self, obj: Obj, is_initial_list: bool) -> None:
        key = object_key(obj)
        self.calls.append(("add", key, obj["metadata"]["resourceVersion"]))
        self.initial_adds += is_initial_list
        if key in self.live:
            self.violations.append(f"add of live {key}")
        self.live[key] = obj

    def on_update(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        self.calls.append(("update", key, new["metadata"]["resourceVersion"]))
        last = self.live.get(key)
        if last is None:
            self.violations.append(f"update of unknown {key}")
        elif old is not new:  # resyncs repeat the same object
            if old["metadata"]["resourceVersion"] != last["metadata"]["resourceVersion"]:
                self.violations.append(f"update of {key}: old is not the last state seen")
            if int(new["metadata"]["resourceVersion"]) <= int(old["metadata"]["resourceVersion"]):
                self.violations.append(f"update of {key}: resourceVersion went backwards")
            if new["metadata"].get("uid") != old["metadata"].get("uid"):
                self.violations.append(f"update of {key} across incarnations")
        self.live[key] = new

    def on_delete(self, obj: Obj) -> None:
        key = object_key(obj)
        self.calls.append(("delete", key, obj["metadata"]["resourceVersion"]))
        if self.live.pop(key, None) is None:
            self.violations.append(f"delete of unknown {key}")

    def of(self, kind: str) -> list[str]:
        return [key for call, key, _ in self.calls if call == kind]


@contextlib.asynccontextmanager
async def running(*runnables: Informer | InformerFactory) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        for runnable in runnables:
            tg.start_soon(runnable.run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def synced(informer: Informer) -> None:
    with anyio.fail_after(20):
        await informer.wait_synced()


# Namespaces get a ``kube-root-ca.crt`` ConfigMap of their own (asynchronously on a real cluster):
# the test objects carry this label and the informers select on it, so only ours are seen.
OURS = "kctl-test=informer"


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"kctl-test": "informer", **(labels or {})}},
        "data": data,
    }


async def call(kube: KubeTarget, method: str, path: str, body: Obj | None = None) -> Obj:
    """A raw JSON request through the test's ApiClient (the kubernetes-asyncio client, unpatched)."""
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    response = await kube.api_client.call_api(
        path,
        method,
        body=body,
        header_params={"Accept": "application/json", "Content-Type": content_type},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    payload = await response.read()
    assert 200 <= response.status < 300, f"{method} {path}: {response.status} {payload[:300]!r}"
    result: Obj = orjson.loads(payload)
    return result


async def create(kube: KubeTarget, name: str, namespace: str | None = None, **kwargs: Any) -> Obj:
    return await call(kube, "POST", CONFIGMAPS.path(namespace or kube.namespace), configmap(name, **kwargs))


async def patch(kube: KubeTarget, name: str, body: Obj, namespace: str | None = None) -> Obj:
    return await call(kube, "PATCH", CONFIGMAPS.path(namespace or kube.namespace, name), body)


async def delete(kube: KubeTarget, name: str, namespace: str | None = None) -> None:
    await call(kube, "DELETE", CONFIGMAPS.path(namespace or kube.namespace, name))


async def server_state(kube: KubeTarget, namespace: str | None = None) -> dict[str, str]:
    """key -> resourceVersion of every ConfigMap the server lists in the namespace."""
    path = CONFIGMAPS.path(namespace or kube.namespace) + f"?labelSelector={OURS}"
    items = (await call(kube, "GET", path))["items"]
    return {object_key(o): o["metadata"]["resourceVersion"] for o in items}


def cache_state(informer: Informer) -> dict[str, str]:
    return {object_key(o): o["metadata"]["resourceVersion"] for o in informer.store.list()}


def informer_for(kube: KubeTarget, **kwargs: Any) -> Informer:
    settings = {"label_selector": OURS, **kwargs.pop("config", {})}
    config = fast_config(namespace=kube.namespace, **settings)
    return Informer(kube.api_client, CONFIGMAPS, config=config, **kwargs)


# --------------------------------------------------------------------------- list + watch


async def test_informer_lists_existing_objects_then_delivers_adds_updates_and_deletes(
    kube: KubeTarget,
) -> None:
    for name in ("a", "b", "c"):
        await create(kube, name, x="1")
    informer = informer_for(kube)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        assert informer.has_synced
        assert sorted(informer.store.keys()) == [f"{kube.namespace}/{n}" for n in ("a", "b", "c")]
        assert recorder.initial_adds == 3

        await create(kube, "d", x="1")
        updated = await patch(kube, "a", {"data": {"x": "2"}})
        await delete(kube, "b")

        async def caught_up() -> bool:
            return cache_state(informer) == await server_state(kube)

        await eventually(caught_up, message="cache equals the server")
        assert informer.store.get_object(kube.namespace, "a") == strip_managed_fields(updated)
        await eventually(_async(lambda: len(recorder.calls) == 6))
    assert recorder.of("add")[3:] == [f"{kube.namespace}/d"]
    assert recorder.of("update") == [f"{kube.namespace}/a"]
    assert recorder.of("delete") == [f"{kube.namespace}/b"]
    assert recorder.violations == []


def _async(predicate: Any) -> Any:
    async def check() -> bool:
        return bool(predicate())

    return check


async def test_pagination_lists_more_objects_than_one_page(kube: KubeTarget) -> None:
    names = [f"cm-{i:03}" for i in range(23)]
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(create, kube, name)
    informer = informer_for(kube, config={"page_size": 5})
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        assert sorted(informer.store.keys()) == [f"{kube.namespace}/{n}" for n in names]
        assert recorder.initial_adds == 23
        lists = sample_value(
            "informer_events_received_total",
            {"resource": str(CONFIGMAPS), "informer": informer.name, "type": "list"},
        )
        assert lists == 23


async def test_the_watcher_fetches_a_large_list_page_by_page_with_continue_tokens(kube: KubeTarget) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(create, kube, f"cm-{i:02}")
    watcher = Watcher(
        kube.api_client, CONFIGMAPS, fast_config(namespace=kube.namespace, label_selector=OURS, page_size=5)
    )
    pages: list[str] = []  # the machine's state as each object arrives
    done = anyio.Event()

    def sink(event: WatcherEvent) -> None:
        if isinstance(event, InitApply):
            pages.append(type(watcher.state).__name__)
        if isinstance(event, InitDone):
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run, sink)
        with anyio.fail_after(20):
            await done.wait()
        tg.cancel_scope.cancel()
    assert pages == ["InitListing"] * 10 + ["InitListed"] * 2


async def test_an_informer_asking_for_a_streaming_list_syncs_and_keeps_watching(kube: KubeTarget) -> None:
    for name in ("a", "b", "c"):
        await create(kube, name)
    informer = informer_for(kube, config={"streaming_list": True})
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        assert sorted(informer.store.keys()) == [f"{kube.namespace}/{n}" for n in ("a", "b", "c")]
        assert recorder.initial_adds == 3
        await patch(kube, "a", {"data": {"x": "2"}})
        await delete(kube, "b")
        await create(kube, "d")

        async def caught_up() -> bool:
            return cache_state(informer) == await server_state(kube)

        await eventually(caught_up, message="cache equals the server")
    assert recorder.violations == []


async def test_a_streaming_list_delivers_the_objects_on_the_watch_or_falls_back_to_a_list(
    kube: KubeTarget,
) -> None:
    for name in ("a", "b"):
        await create(kube, name)
    config = fast_config(namespace=kube.namespace, label_selector=OURS, streaming_list=True)
    watcher = Watcher(kube.api_client, CONFIGMAPS, config)
    states: list[str] = []  # the machine's state as each object arrives
    done = anyio.Event()

    def sink(event: WatcherEvent) -> None:
        if isinstance(event, InitApply):
            states.append(type(watcher.state).__name__)
        if isinstance(event, InitDone):
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run, sink)
        with anyio.fail_after(20):
            await done.wait()
        tg.cancel_scope.cancel()
    # The fake streams; a real API server on an etcd without progress notify (the real tier here)
    # refuses with a 500 and the watcher lists instead.
    assert states in (["InitStreaming"] * 2, ["InitListed"] * 2)
    if kube.is_fake:
        assert states == ["InitStreaming"] * 2


async def test_the_store_is_updated_before_handlers_are_called(kube: KubeTarget) -> None:
    informer = informer_for(kube)
    seen_in_store: list[bool] = []
    informer.add_handler(
        ResourceEventHandlerFuncs(add=lambda obj, _: seen_in_store.append(object_key(obj) in informer.store))
    )
    async with running(informer):
        await synced(informer)
        await create(kube, "a")
        await eventually(_async(lambda: seen_in_store == [True]))


async def test_deletions_hand_the_objects_final_state(kube: KubeTarget) -> None:
    await create(kube, "doomed", x="1")
    informer = informer_for(kube)
    deleted: list[Obj] = []
    informer.add_handler(ResourceEventHandlerFuncs(delete=deleted.append))
    async with running(informer):
        await synced(informer)
        await patch(kube, "doomed", {"data": {"x": "last"}})
        await delete(kube, "doomed")
        await eventually(_async(lambda: len(deleted) == 1))
    assert deleted[0]["metadata"]["name"] == "doomed"
    assert deleted[0]["data"] == {"x": "last"}
    assert "doomed" not in informer.store


# --------------------------------------------------------------------------- scope


async def test_a_label_selector_limits_the_cache_and_objects_leaving_it_are_deleted(kube: KubeTarget) -> None:
    await create(kube, "web", labels={"app": "web"})
    await create(kube, "db", labels={"app": "db"})
    informer = informer_for(kube, config={"label_selector": f"{OURS},app=web"})
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        assert informer.store.keys() == [f"{kube.namespace}/web"]
        await patch(kube, "db", {"metadata": {"labels": {"app": "web"}}})
        await eventually(_async(lambda: len(informer.store) == 2))
        await patch(kube, "web", {"metadata": {"labels": {"app": "other"}}})
        await eventually(_async(lambda: informer.store.keys() == [f"{kube.namespace}/db"]))
    assert recorder.of("delete") == [f"{kube.namespace}/web"]
    assert recorder.violations == []


async def test_a_field_selector_limits_the_cache(kube: KubeTarget) -> None:
    await create(kube, "wanted")
    await create(kube, "other")
    informer = informer_for(kube, config={"field_selector": "metadata.name=wanted"})
    assert informer.config.label_selector == OURS
    async with running(informer):
        await synced(informer)
        assert informer.store.keys() == [f"{kube.namespace}/wanted"]


async def test_a_namespaced_informer_never_sees_other_namespaces(kube: KubeTarget) -> None:
    other = unique_name("other")
    await call(
        kube,
        "POST",
        NAMESPACES.path(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}},
    )
    try:
        await create(kube, "mine")
        await create(kube, "theirs", namespace=other)
        informer = informer_for(kube)
        scope = unique_name("scope")
        everywhere = Informer(
            kube.api_client, CONFIGMAPS, config=fast_config(label_selector=f"scope={scope}")
        )
        async with running(informer, everywhere):
            await synced(informer)
            await synced(everywhere)
            await create(kube, "later-theirs", namespace=other, labels={"scope": scope})
            await create(kube, "later-mine", labels={"scope": scope})
            await eventually(_async(lambda: len(everywhere.store) == 2))
            await eventually(_async(lambda: len(informer.store) == 2))
        assert sorted(informer.store.keys()) == [f"{kube.namespace}/later-mine", f"{kube.namespace}/mine"]
        assert sorted(everywhere.store.index_values(NAMESPACE_INDEX)) == sorted([kube.namespace, other])
    finally:
        await call(kube, "DELETE", NAMESPACES.path(name=other))


async def test_cluster_scoped_resources_are_keyed_by_name(kube: KubeTarget) -> None:
    informer = Informer(kube.api_client, NAMESPACES, config=fast_config())
    async with running(informer):
        await synced(informer)
        assert kube.namespace in informer.store
        assert informer.store.get_object(None, kube.namespace) is not None


async def test_a_namespace_for_a_cluster_scoped_informer_is_rejected(kube: KubeTarget) -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        Informer(kube.api_client, NAMESPACES, config=WatcherConfig(namespace="x"))


# --------------------------------------------------------------------------- transforms, metadata


async def test_the_default_transform_strips_managed_fields(kube: KubeTarget) -> None:
    await create(kube, "a", x="1")
    informer = informer_for(kube)
    async with running(informer):
        await synced(informer)
        await patch(kube, "a", {"data": {"x": "2"}})
        await eventually(_async(lambda: informer.store.get_object(kube.namespace, "a")["data"]["x"] == "2"))  # type: ignore[index]
    cached = informer.store.get_object(kube.namespace, "a")
    assert cached is not None
    assert "managedFields" not in cached["metadata"]


async def test_a_custom_transform_runs_once_per_object_before_caching(kube: KubeTarget) -> None:
    await create(kube, "a", x="1", big="y" * 1000)
    calls: list[str] = []

    def keep_small(obj: Obj) -> Obj:
        calls.append(obj["metadata"]["name"])
        return {
            "metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "resourceVersion", "uid")},
            "data": {"x": obj["data"]["x"]},
        }

    informer = informer_for(kube, transform=keep_small)
    seen: list[Obj] = []
    informer.add_handler(ResourceEventHandlerFuncs(add=lambda obj, _: seen.append(obj)))
    async with running(informer):
        await synced(informer)
    assert calls == ["a"]
    assert seen[0] is informer.store.get_object(kube.namespace, "a")
    assert seen[0]["data"] == {"x": "1"}


async def test_metadata_only_informers_cache_partial_object_metadata(kube: KubeTarget) -> None:
    await create(kube, "a", labels={"app": "web"}, x="1")
    informer = informer_for(kube, config={"metadata_only": True})
    async with running(informer):
        await synced(informer)
        await create(kube, "b", x="2")
        await eventually(_async(lambda: len(informer.store) == 2))
    for obj in informer.store.list():
        assert obj["kind"] == "PartialObjectMetadata"
        assert obj["apiVersion"] == "meta.k8s.io/v1"
        assert "data" not in obj
    cached = informer.store.get_object(kube.namespace, "a")
    assert cached is not None
    assert cached["metadata"]["labels"]["app"] == "web"


# --------------------------------------------------------------------------- handlers


async def test_a_late_handler_first_gets_synthetic_adds_for_the_cache(kube: KubeTarget) -> None:
    await create(kube, "a")
    await create(kube, "b")
    informer = informer_for(kube)
    async with running(informer):
        await synced(informer)
        late = Recorder()
        registration = informer.add_handler(late)
        assert registration.has_synced
        assert sorted(late.of("add")) == [f"{kube.namespace}/a", f"{kube.namespace}/b"]
        assert late.initial_adds == 2


async def test_a_removed_handler_gets_no_more_events(kube: KubeTarget) -> None:
    informer = informer_for(kube)
    kept, removed = Recorder(), Recorder()
    informer.add_handler(kept)
    registration = informer.add_handler(removed)
    async with running(informer):
        await synced(informer)
        registration.remove()
        assert not registration.has_synced
        await create(kube, "a")
        await eventually(_async(lambda: kept.of("add") == [f"{kube.namespace}/a"]))
    assert removed.calls == []


async def test_a_failing_handler_does_not_stop_the_informer_or_other_handlers(kube: KubeTarget) -> None:
    informer = informer_for(kube)

    def explode(obj: Obj, initial: bool) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(ResourceEventHandlerFuncs(add=explode))
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        await create(kube, "a")
        await create(kube, "b")
        await eventually(_async(lambda: len(recorder.of("add")) == 2))


async def test_resync_redelivers_every_cached_object_as_an_update_on_the_clock(kube: KubeTarget) -> None:
    await create(kube, "a")
    await create(kube, "b")
    clock = FakeClock()
    informer = informer_for(kube, clock=clock, resync_period=30.0)
    default, fast = Recorder(), Recorder()
    informer.add_handler(default)
    informer.add_handler(fast, resync_period=10.0)
    async with running(informer):
        await synced(informer)
        await clock.advance(10)
        assert len(fast.of("update")) == 2
        assert default.of("update") == []
        await clock.advance(20)
        assert len(fast.of("update")) == 6
        assert len(default.of("update")) == 2
    assert fast.violations == default.violations == []


async def test_no_resync_happens_unless_asked_for(kube: KubeTarget) -> None:
    await create(kube, "a")
    clock = FakeClock()
    informer = informer_for(kube, clock=clock)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        await clock.advance(3600)
    assert recorder.of("update") == []


async def test_running_an_informer_twice_at_once_is_a_programming_error(kube: KubeTarget) -> None:
    informer = informer_for(kube)
    async with running(informer):
        await synced(informer)
        with pytest.raises(RuntimeError, match="already running"):
            await informer.run()


# --------------------------------------------------------------------------- factory


async def test_the_factory_shares_one_informer_per_resource_and_scope(kube: KubeTarget) -> None:
    factory = InformerFactory(kube.api_client, config=fast_config())
    first = factory.informer(CONFIGMAPS, namespace=kube.namespace)
    assert factory.informer(CONFIGMAPS, namespace=kube.namespace) is first
    assert factory.informer(CONFIGMAPS, namespace=kube.namespace, label_selector="a=b") is not first
    assert factory.informer(CONFIGMAPS, namespace=kube.namespace, metadata_only=True) is not first
    assert factory.informer(CONFIGMAPS) is not first
    assert len(factory.informers) == 4


async def test_the_factory_runs_informers_requested_before_and_after_it_started(kube: KubeTarget) -> None:
    await create(kube, "a")
    factory = InformerFactory(kube.api_client, config=fast_config())
    early = factory.informer(CONFIGMAPS, namespace=kube.namespace, label_selector=OURS)
    async with running(factory):
        with anyio.fail_after(20):
            await factory.wait_for_sync()
        assert early.has_synced
        late = factory.informer(CONFIGMAPS, namespace=kube.namespace, label_selector="app")
        with anyio.fail_after(20):
            await factory.wait_for_sync()
        assert late.has_synced
        assert len(early.store) == 1


async def test_wait_for_sync_names_the_informers_that_did_not_sync(kube: KubeTarget) -> None:
    clock = FakeClock()
    factory = InformerFactory(kube.api_client, clock=clock, config=fast_config())
    missing = Resource("nothing.example.com", "v1", "widgets", "Widget")
    factory.informer(missing, namespace=kube.namespace)
    factory.informer(CONFIGMAPS, namespace=kube.namespace)

    async def tick() -> None:
        while True:
            await anyio.sleep(0.01)
            await clock.advance(1)

    async with running(factory), anyio.create_task_group() as tg:
        tg.start_soon(tick)
        with pytest.raises(TimeoutError, match=r"widgets\.nothing\.example\.com"):
            await factory.wait_for_sync(timeout=30)
        tg.cancel_scope.cancel()


def _synced(informer: Informer) -> bool:
    return informer.has_synced


def _cm(name: str, rv: str, uid: str = "u") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": f"{uid}-{name}"}}


def test_the_first_list_reaches_the_store_and_handlers_as_it_arrives_and_a_restart_is_reconciled() -> None:
    """Issue 15: a 50k-object first list used to go to the handlers in one step at its end."""
    from kctl_runtime.watcher import Init

    informer = Informer(None, CONFIGMAPS, config=WatcherConfig(page_size=2), freeze_gc=False)
    seen: list[tuple[str, str, Any]] = []
    informer.add_handler(
        ResourceEventHandlerFuncs(
            add=lambda obj, initial: seen.append(("add", obj["metadata"]["name"], initial)),
            update=lambda old, new: seen.append(
                ("update", new["metadata"]["name"], new["metadata"]["resourceVersion"])
            ),
            delete=lambda obj: seen.append(("delete", obj["metadata"]["name"], None)),
        )
    )
    informer.process(Init())
    informer.process(InitApply(_cm("a", "1")))
    assert seen == [("add", "a", True)]
    assert informer.store.get_object("ns", "a") is not None
    assert not _synced(informer)
    informer.process(InitApply(_cm("b", "1")))
    # the list restarts (an expired continue token): the next complete list is compared with what
    # the handlers were told, so they still see add -> update -> delete per object, nothing twice
    informer.process(Init())
    informer.process(InitApply(_cm("a", "2")))
    informer.process(InitApply(_cm("c", "1")))
    assert not _synced(informer)
    informer.process(InitDone("9"))
    assert _synced(informer)
    assert seen == [
        ("add", "a", True),
        ("add", "b", True),
        ("delete", "b", None),
        ("update", "a", "2"),
        ("add", "c", True),
    ]
    assert sorted(informer.store.keys()) == ["ns/a", "ns/c"]


def test_a_first_list_without_restart_is_delivered_once_and_leaves_exactly_the_list_cached() -> None:
    from kctl_runtime.watcher import Init

    informer = Informer(None, CONFIGMAPS, config=WatcherConfig(page_size=2))
    added: list[str] = []
    informer.add_handler(
        ResourceEventHandlerFuncs(add=lambda obj, initial: added.append(obj["metadata"]["name"]))
    )
    informer.process(Init())
    for i in range(5):
        informer.process(InitApply(_cm(f"o{i}", "1")))
    informer.process(InitDone("5"))
    assert _synced(informer)
    assert added == [f"o{i}" for i in range(5)]
    assert len(informer.store) == 5


def test_compact_object_drops_managed_fields_and_shares_equal_string_values() -> None:
    import orjson

    from kctl_runtime.informer import compact_object

    raw = (
        b'{"metadata": {"name": "a", "managedFields": [{"manager": "m"}]},'
        b' "spec": {"ports": [{"protocol": "TCP"}, {"protocol": "TCP"}], "image": "nginx"}}'
    )
    first, second = compact_object(orjson.loads(raw)), compact_object(orjson.loads(raw))
    assert first == {
        "metadata": {"name": "a"},
        "spec": {"ports": [{"protocol": "TCP"}, {"protocol": "TCP"}], "image": "nginx"},
    }
    assert first["spec"]["image"] is second["spec"]["image"]  # one string for the equal values
    assert first["spec"]["ports"][0]["protocol"] is second["spec"]["ports"][1]["protocol"]


def test_the_manager_hands_its_informer_transform_to_the_shared_informers() -> None:
    from kctl_runtime.informer import compact_object, strip_managed_fields
    from kctl_runtime.manager import Manager

    assert Manager(None, health_bind=None, metrics_bind=None).informers._transform is strip_managed_fields
    chosen = Manager(None, health_bind=None, metrics_bind=None, informer_transform=compact_object)
    assert chosen.informers._transform is compact_object


def test_a_handler_removed_while_a_list_page_is_delivered_gets_nothing_after_it() -> None:
    from kctl_runtime.watcher import Init

    informer = Informer(None, CONFIGMAPS)
    stays: list[str] = []
    leaves: list[str] = []
    informer.add_handler(
        ResourceEventHandlerFuncs(add=lambda obj, initial: stays.append(obj["metadata"]["name"]))
    )

    def add_then_leave(obj: dict[str, Any], initial: bool) -> None:
        leaves.append(obj["metadata"]["name"])
        registration.remove()

    registration = informer.add_handler(ResourceEventHandlerFuncs(add=add_then_leave))
    informer.process_page((Init(), *(InitApply(_cm(f"o{i}", "1")) for i in range(3)), InitDone("5")))
    assert stays == ["o0", "o1", "o2"]
    assert leaves == ["o0"]
    assert _synced(informer)
