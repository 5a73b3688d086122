"""Tests for kctl_runtime.client: API round trips, typed errors, retries, and cache-served reads."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kctl_runtime.client import Cache, Client, RetryPolicy
from kctl_runtime.clock import FakeClock
from kctl_runtime.errors import AlreadyExists, ApiError, Forbidden, NotFound, ServerError
from kctl_runtime.informer import InformerFactory
from kctl_runtime.resource import CONFIGMAPS, NAMESPACES
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

FAST = RetryPolicy(attempts=5, initial_backoff=0.001, max_backoff=0.01, jitter=0.0)


def cm(name: str, namespace: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {"k": "v"}}


async def test_client_creates_reads_updates_patches_and_deletes_raw_objects(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    ns = kube.namespace
    created = await client.create(CONFIGMAPS, cm("a", ns))
    assert created["kind"] == "ConfigMap"
    assert created["metadata"]["resourceVersion"]

    got = await client.get(CONFIGMAPS, "a", ns)
    assert got["data"] == {"k": "v"}

    got["data"]["k"] = "changed"
    updated = await client.update(CONFIGMAPS, got)
    assert updated["data"] == {"k": "changed"}

    patched = await client.patch(CONFIGMAPS, "a", {"data": {"x": "y"}}, namespace=ns)
    assert patched["data"] == {"k": "changed", "x": "y"}

    json_patched = await client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/x"}], namespace=ns, patch_type="json"
    )
    assert json_patched["data"] == {"k": "changed"}

    listed = await client.list(CONFIGMAPS, ns)
    assert [o["metadata"]["name"] for o in listed if o["metadata"]["name"] == "a"] == ["a"]
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in listed)

    await client.delete(CONFIGMAPS, "a", namespace=ns)
    with pytest.raises(NotFound):
        await client.get(CONFIGMAPS, "a", ns)


async def test_client_server_side_apply_needs_a_field_manager_and_sends_identity(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    with pytest.raises(ValueError, match="field_manager"):
        await client.patch(
            CONFIGMAPS, "b", {"data": {"a": "1"}}, namespace=kube.namespace, patch_type="apply"
        )
    applied = await client.patch(
        CONFIGMAPS,
        "b",
        {"data": {"a": "1"}},
        namespace=kube.namespace,
        patch_type="apply",
        field_manager="test-suite",
    )
    assert applied["metadata"]["name"] == "b"
    assert applied["data"] == {"a": "1"}


async def test_client_update_with_a_stale_resource_version_raises_conflict(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    first = await client.create(CONFIGMAPS, cm("c", kube.namespace))
    await client.patch(CONFIGMAPS, "c", {"data": {"k": "newer"}}, namespace=kube.namespace)
    first["data"] = {"k": "stale"}
    with pytest.raises(Conflict):
        await client.update(CONFIGMAPS, first)


async def test_client_create_of_a_taken_name_raises_already_exists(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    await client.create(CONFIGMAPS, cm("d", kube.namespace))
    with pytest.raises(AlreadyExists):
        await client.create(CONFIGMAPS, cm("d", kube.namespace))


async def test_client_delete_raises_not_found_unless_told_to_ignore_it(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    with pytest.raises(NotFound):
        await client.delete(CONFIGMAPS, "missing", namespace=kube.namespace)
    assert await client.delete(CONFIGMAPS, "missing", namespace=kube.namespace, ignore_not_found=True) is None


async def test_client_delete_returns_the_object_while_finalizers_hold_it(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    obj = cm("held", kube.namespace)
    obj["metadata"]["finalizers"] = ["example.com/hold"]  # type: ignore[index]
    await client.create(CONFIGMAPS, obj)
    answer = await client.delete(CONFIGMAPS, "held", namespace=kube.namespace)
    assert answer is not None
    assert answer["metadata"]["deletionTimestamp"]
    await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, namespace=kube.namespace)


async def test_client_reads_cluster_scoped_objects_without_a_namespace(kube: KubeTarget) -> None:
    client = Client(kube.api_client, retry=FAST)
    ns = await client.get(NAMESPACES, kube.namespace)
    assert ns["metadata"]["name"] == kube.namespace


@pytest.mark.fake_only
async def test_client_lists_more_than_a_page_by_following_continue_tokens(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    ns = fake_kube.namespace
    fake_kube.fake.seed("v1", "ConfigMap", [cm(f"many-{i:04}", ns, batch="big") for i in range(1234)])
    client = Client(fake_kube.api_client, retry=FAST)
    items = await client.list(CONFIGMAPS, ns, label_selector="batch=big")
    names = [o["metadata"]["name"] for o in items]
    assert len(names) == 1234
    assert len(set(names)) == 1234
    # the server did page: a single request with the client's page size leaves a continue token
    page = await client._call("GET", CONFIGMAPS.path(ns), query=[("limit", "500")])
    assert len(page["items"]) == 500
    assert page["metadata"]["continue"]


@pytest.mark.fake_only
async def test_client_retries_server_errors_until_they_pass(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    client = Client(fake_kube.api_client, retry=FAST)
    await client.create(CONFIGMAPS, cm("r", fake_kube.namespace))
    fake_kube.fake.faults.fail_next(3, status=500, verb="get", resource="configmaps")
    got = await client.get(CONFIGMAPS, "r", fake_kube.namespace)
    assert got["metadata"]["name"] == "r"
    assert fake_kube.fake.faults.injected == 3


@pytest.mark.fake_only
async def test_client_gives_up_after_the_bounded_number_of_attempts(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    client = Client(fake_kube.api_client, retry=RetryPolicy(attempts=3, initial_backoff=0.001, jitter=0.0))
    fake_kube.fake.faults.fail_next(10, status=503, verb="list", resource="configmaps")
    with pytest.raises(ServerError):
        await client.list(CONFIGMAPS, fake_kube.namespace)
    assert fake_kube.fake.faults.injected == 3


@pytest.mark.fake_only
async def test_client_does_not_retry_errors_that_are_not_transient(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    client = Client(fake_kube.api_client, retry=FAST)
    fake_kube.fake.faults.fail_next(5, status=403, verb="create")
    with pytest.raises(Forbidden):
        await client.create(CONFIGMAPS, cm("f", fake_kube.namespace))
    assert fake_kube.fake.faults.injected == 1


@pytest.mark.fake_only
async def test_client_waits_the_servers_retry_after_on_429_on_its_clock(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    clock = FakeClock()
    client = Client(fake_kube.api_client, retry=RetryPolicy(initial_backoff=0.001, jitter=0.0), clock=clock)
    await client.create(CONFIGMAPS, cm("t", fake_kube.namespace))
    fake_kube.fake.faults.fail_next(1, status=429, verb="get", retry_after=7)
    result: dict[str, object] = {}

    async def read() -> None:
        result.update(await client.get(CONFIGMAPS, "t", fake_kube.namespace))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)

        async def sleeping() -> bool:
            return clock.sleepers == 1

        await eventually(sleeping, message="client never slept after the 429")
        deadline = clock.next_deadline()
        assert deadline is not None
        assert deadline - clock.monotonic() == pytest.approx(7.0)
        assert not result
        await clock.advance(7.0)
    assert result["metadata"]["name"] == "t"  # type: ignore[index]


async def test_client_retries_connection_failures_then_raises_them(tmp_path: Path) -> None:
    import aiohttp

    from kctl_runtime.config import load_config

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    api_client = await load_config(kubeconfig)
    clock = FakeClock()
    client = Client(api_client, retry=RetryPolicy(attempts=3, initial_backoff=1, jitter=0), clock=clock)
    waits: list[float] = []
    failure: list[BaseException] = []

    async def read() -> None:
        try:
            await client.get(NAMESPACES, "default")
        except aiohttp.ClientError as exc:
            failure.append(exc)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            while not failure:
                deadline = clock.next_deadline()
                if clock.sleepers and deadline is not None:
                    waits.append(deadline - clock.monotonic())
                    await clock.advance(deadline - clock.monotonic())
                await anyio.sleep(0.01)
    finally:
        await api_client.close()
    assert waits == [1.0, 2.0]  # three attempts: two backoff waits, doubling
    assert isinstance(failure[0], aiohttp.ClientConnectionError)


# --------------------------------------------------------------------------- cache-served reads


@contextlib.asynccontextmanager
async def cached_client(kube: KubeTarget) -> AsyncIterator[Client]:
    """A client whose ConfigMap reads in the test namespace are served by a synced informer.

    (A context manager, not a fixture: a task group must be entered and left in one task.)
    """
    factory = InformerFactory(kube.api_client)
    cache = Cache()
    cache.register(CONFIGMAPS, factory.informer(CONFIGMAPS, namespace=kube.namespace), kube.namespace)
    writer = Client(kube.api_client, retry=FAST)
    await writer.create(CONFIGMAPS, cm("one", kube.namespace, app="web"))
    await writer.create(CONFIGMAPS, cm("two", kube.namespace, app="db"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        await factory.wait_for_sync(timeout=30)
        try:
            yield Client(kube.api_client, cache=cache, retry=FAST)
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.fake_only
async def test_client_reads_from_the_cache_without_a_request(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        assert kube.fake is not None
        # Any GET or LIST of configmaps reaching the server now would fail; the cache answers instead.
        kube.fake.faults.fail_next(1, status=403, verb="get", resource="configmaps")
        kube.fake.faults.fail_next(1, status=403, verb="list", resource="configmaps")
        got = await client.get(CONFIGMAPS, "one", kube.namespace)
        assert got["metadata"]["labels"] == {"app": "web"}
        listed = await client.list(CONFIGMAPS, kube.namespace, label_selector="app=db")
        assert [o["metadata"]["name"] for o in listed] == ["two"]
        assert kube.fake.faults.injected == 0
        # the uncached reader goes to the API and meets the injected faults
        with pytest.raises(Forbidden):
            await client.api.get(CONFIGMAPS, "one", kube.namespace)


async def test_cached_reads_return_copies_that_callers_may_mutate(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        first = await client.get(CONFIGMAPS, "one", kube.namespace)
        first["data"]["k"] = "mutated"
        again = await client.get(CONFIGMAPS, "one", kube.namespace)
        assert again["data"] == {"k": "v"}


async def test_cached_get_of_a_missing_object_raises_not_found(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        with pytest.raises(NotFound, match="cache"):
            await client.get(CONFIGMAPS, "nope", kube.namespace)


async def test_cached_reads_follow_writes_once_the_watch_delivers_them(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        await client.patch(CONFIGMAPS, "one", {"data": {"k": "v2"}}, namespace=kube.namespace)

        async def updated() -> bool:
            got = await client.get(CONFIGMAPS, "one", kube.namespace)
            return bool(got["data"] == {"k": "v2"})

        await eventually(updated, message="the cache never saw the patch")


@pytest.mark.fake_only
async def test_reads_outside_the_cached_namespace_go_to_the_api(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        assert kube.fake is not None
        other = unique_name("other")
        await client.create(NAMESPACES, {"metadata": {"name": other}})
        await client.create(CONFIGMAPS, cm("elsewhere", other))
        got = await client.get(CONFIGMAPS, "elsewhere", other)
        assert got["metadata"]["namespace"] == other
        kube.fake.faults.fail_next(1, status=403, verb="get", resource="configmaps")
        with pytest.raises(Forbidden):
            await client.get(CONFIGMAPS, "elsewhere", other)
        await client.delete(NAMESPACES, other)


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(initial_backoff=2, max_backoff=1)


# --------------------------------------------------------------------------- docs/client.md

# --8<-- [start:client]
from kctl_runtime.errors import Conflict  # noqa: E402
from kctl_runtime.resource import DEPLOYMENTS  # noqa: E402


async def annotate_web_config(client: Client, namespace: str) -> list[str]:
    """Annotate every ConfigMap labelled app=web; drop the retired one if it is still there."""
    touched = []
    for obj in await client.list(CONFIGMAPS, namespace, label_selector="app=web"):  # cache, if synced
        name = obj["metadata"]["name"]
        patch = {"metadata": {"annotations": {"example.com/seen": "true"}}}
        await client.patch(CONFIGMAPS, name, patch, namespace=namespace)  # merge patch, to the API
        touched.append(name)
    await client.delete(CONFIGMAPS, "web-retired", namespace=namespace, ignore_not_found=True)
    return touched


async def scale(client: Client, name: str, namespace: str, replicas: int) -> dict[str, Any]:
    """Read-modify-write with optimistic concurrency: retry when someone else wrote first."""
    for _ in range(5):
        deployment = await client.api.get(DEPLOYMENTS, name, namespace)  # fresh, uncached read
        deployment["spec"]["replicas"] = replicas
        try:
            return await client.update(DEPLOYMENTS, deployment)  # carries resourceVersion
        except Conflict:
            continue
    raise RuntimeError(f"{namespace}/{name}: too many conflicting writers")


# --8<-- [end:client]


async def test_doc_snippet_client_annotates_lists_deletes_and_retries_conflicts(kube: KubeTarget) -> None:
    ns = kube.namespace
    async with cached_client(kube) as client:
        await client.create(CONFIGMAPS, cm("web-a", ns, app="web"))
        await client.create(CONFIGMAPS, cm("web-retired", ns, app="old"))

        async def cached_web_a() -> bool:
            return len(await client.list(CONFIGMAPS, ns, label_selector="app=web")) == 2

        await eventually(cached_web_a, message="cache caught up")
        assert await annotate_web_config(client, ns) == ["one", "web-a"]
        assert await annotate_web_config(client, ns) == ["one", "web-a"]  # idempotent; delete ignored
        with pytest.raises(NotFound):
            await client.api.get(CONFIGMAPS, "web-retired", ns)
        spec = {
            "selector": {"matchLabels": {"app": "s"}},
            "template": {
                "metadata": {"labels": {"app": "s"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        }
        await client.create(DEPLOYMENTS, {"metadata": {"name": "s", "namespace": ns}, "spec": spec})
        scaled = await scale(client, "s", ns, 3)
        assert scaled["spec"]["replicas"] == 3


def test_the_cache_field_filter_honours_escaped_commas() -> None:
    """Regression (issue 10 item 10): the client's own field-selector parser split on ``\\,``."""
    from kctl_runtime.client import _field_filter

    found = _field_filter(r"metadata.name=a\,b,metadata.namespace!=kube-system", {})
    assert found is not None
    match, seed = found
    assert seed is None
    assert match({"metadata": {"name": "a,b", "namespace": "web"}})
    assert not match({"metadata": {"name": "a", "namespace": "web"}})
    assert not match({"metadata": {"name": "a,b", "namespace": "kube-system"}})
    assert _field_filter("spec.nodeName=n1", {}) is None  # not answerable from the cache: ask the server


# --------------------------------------------------------------------------- cache indexes and limit


def _tier(obj: dict[str, Any]) -> list[str]:
    """A made-up field for the index tests: the ConfigMap's data value ``k``."""
    value = (obj.get("data") or {}).get("k")
    return [value] if isinstance(value, str) else []


async def test_indexed_cache_lists_answer_exactly_what_a_full_scan_answers(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        cache = client.cache
        assert cache is not None
        informer = cache.informer_for(CONFIGMAPS, kube.namespace)
        assert informer is not None
        unindexed = Cache()  # the same informer, no indexes known: every list scans the store
        unindexed.register(CONFIGMAPS, informer, kube.namespace)
        plain = Client(kube.api_client, cache=unindexed, retry=FAST)
        # registered after the informer: existing objects are indexed at once
        cache.index_label(CONFIGMAPS, "app")
        cache.index_field(CONFIGMAPS, ".data.tier", _tier)
        assert {"label:app", "field:.data.tier"} <= set(informer.store.index_names())
        await client.create(CONFIGMAPS, cm("three", kube.namespace, app="web"))
        await client.patch(CONFIGMAPS, "one", {"data": {"k": "gold"}}, namespace=kube.namespace)

        async def seen() -> bool:
            got = await client.list(CONFIGMAPS, kube.namespace, field_selector=".data.tier=gold")
            web = await client.list(CONFIGMAPS, kube.namespace, label_selector="app=web")
            return [o["metadata"]["name"] for o in got] == ["one"] and len(web) == 2

        await eventually(seen, message="index follows the watch")

        def names(items: list[dict[str, Any]]) -> list[str]:
            return [o["metadata"]["name"] for o in items]

        for labels in ("app=web", "app in (db,web)", "app=web,app!=db", "app=none", None):
            indexed = await client.list(CONFIGMAPS, kube.namespace, label_selector=labels)
            scanned = await plain.list(CONFIGMAPS, kube.namespace, label_selector=labels)
            server = await client.api.list(CONFIGMAPS, kube.namespace, label_selector=labels)
            assert names(indexed) == names(scanned) == sorted(names(server)), labels
        assert names(await client.list(CONFIGMAPS, kube.namespace, field_selector=".data.tier=v")) == [
            "three",
            "two",
        ]
        assert names(
            await client.list(CONFIGMAPS, kube.namespace, "app=web", field_selector=".data.tier!=gold")
        ) == ["three"]
        assert names(await client.list(CONFIGMAPS, kube.namespace, field_selector=".data.tier=none")) == []
        # no cache over all namespaces: the made-up field goes to the server, which refuses it
        with pytest.raises(ApiError, match="field"):
            await client.list(CONFIGMAPS, None, field_selector=".data.tier=gold")


async def test_cache_index_registration_is_idempotent_and_refuses_a_different_function() -> None:
    cache = Cache()
    cache.index_field(CONFIGMAPS, ".data.tier", _tier)
    cache.index_field(CONFIGMAPS, ".data.tier", _tier)
    cache.index_label(CONFIGMAPS, "app")
    cache.index_label(CONFIGMAPS, "app")
    with pytest.raises(ValueError, match="already has an index"):
        cache.index_field(CONFIGMAPS, ".data.tier", lambda obj: [])
    assert cache.index_names(CONFIGMAPS) == {"field:.data.tier", "label:app"}


async def test_list_limit_cuts_cached_and_api_answers_in_order(kube: KubeTarget) -> None:
    async with cached_client(kube) as client:
        for name in ("c3", "c1", "c2"):
            await client.create(CONFIGMAPS, cm(name, kube.namespace, app="db"))

        async def cached() -> bool:
            return len(await client.list(CONFIGMAPS, kube.namespace, label_selector="app=db")) == 4

        await eventually(cached, message="cache saw the new ConfigMaps")
        got = await client.list(CONFIGMAPS, kube.namespace, label_selector="app=db", limit=2)
        assert [o["metadata"]["name"] for o in got] == ["c1", "c2"]
        assert all(o["kind"] == "ConfigMap" for o in got)
        from_api = await client.api.list(CONFIGMAPS, kube.namespace, label_selector="app=db", limit=2)
        assert len(from_api) == 2
        everything = await client.api.list(CONFIGMAPS, kube.namespace, label_selector="app=db")
        assert len(everything) == 4
        with pytest.raises(ValueError, match="limit"):
            await client.list(CONFIGMAPS, kube.namespace, limit=0)
