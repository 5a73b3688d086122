"""Tests for kctl_runtime.controller, on the fake API server (and the real one where noted by `kube`)."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
import structlog

from kctl_runtime.client import Client
from kctl_runtime.clock import FakeClock
from kctl_runtime.controller import ALL_NAMESPACES, Controller, Owns, Watch, owner_requests
from kctl_runtime.informer import InformerFactory
from kctl_runtime.metrics import sample_value
from kctl_runtime.predicates import from_functions, generation_changed
from kctl_runtime.reconcile import Request, RequeueAfter, Result, TerminalError
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, SECRETS, Resource
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

MINE = "suite=controller"  # leaves out the kube-root-ca.crt ConfigMap every namespace has


def unique_controller(prefix: str = "test") -> str:
    """Controller names label process-wide metrics: each test uses its own."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cm(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "labels": {"suite": "controller"}},
        "data": {"k": "v"},
    }
    obj["metadata"].update(extra)
    return obj


def deployment(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


class Recorder:
    """A reconciler that records each call with its structlog context, then runs ``behaviour``."""

    def __init__(self, behaviour: Callable[[Request, int], Any] | None = None) -> None:
        self.calls: list[tuple[Request, dict[str, Any]]] = []
        self.behaviour = behaviour

    async def reconcile(self, request: Request) -> Result:
        self.calls.append((request, dict(structlog.contextvars.get_contextvars())))
        if self.behaviour is not None:
            outcome = self.behaviour(request, len(self.calls))
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome  # type: ignore[no-any-return]
        return None

    def requests(self) -> list[Request]:
        return [r for r, _ in self.calls]

    def triggers(self, request: Request) -> list[str]:
        return [ctx["trigger"] for r, ctx in self.calls if r == request]


# --8<-- [start:standalone]
@contextlib.asynccontextmanager
async def running(controller: Controller, api_client: Any) -> AsyncIterator[InformerFactory]:
    """Run informers and ``controller`` in a task group for the body of the block."""
    factory = InformerFactory(api_client)
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)  # every informer the controller asks for
        tg.start_soon(controller.run, factory)  # handlers, cache sync, workers
        try:
            yield factory
        finally:
            tg.cancel_scope.cancel()  # forceful; controller.stop() first for a graceful stop


# --8<-- [end:standalone]


async def until(predicate: Callable[[], bool], message: str, timeout: float = 10.0) -> None:
    async def check() -> bool:
        return predicate()

    await eventually(check, message=message, timeout=timeout)


# ------------------------------------------------------------------------------------------ basics


async def test_controller_reconciles_every_existing_object_with_its_context_bound(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    for name in ("a", "b"):
        await client.create(CONFIGMAPS, cm(name, kube.namespace))
    recorder = Recorder()
    name = unique_controller()
    controller = Controller(name, for_=CONFIGMAPS, reconciler=recorder, namespace=kube.namespace)
    async with running(controller, kube.api_client):
        await until(lambda: {r.name for r in recorder.requests()} >= {"a", "b"}, "both objects reconciled")
    request, ctx = next((r, c) for r, c in recorder.calls if r.name == "a")
    assert request == Request("a", kube.namespace)
    assert ctx["controller"] == name
    assert ctx["namespace"] == kube.namespace
    assert ctx["name"] == "a"
    assert ctx["trigger"] == "ConfigMap add"
    assert uuid.UUID(ctx["reconcile_id"])
    assert (
        sample_value("controller_runtime_reconcile_total", {"controller": name, "result": "success"}) or 0
    ) >= 2


async def test_a_plain_async_function_is_accepted_as_the_reconciler(kube: KubeTarget) -> None:
    seen: list[Request] = []

    async def reconcile(request: Request) -> Result:
        seen.append(request)
        return None

    await Client(kube.api_client).create(CONFIGMAPS, cm("fn", kube.namespace))
    controller = Controller(
        unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=kube.namespace
    )
    async with running(controller, kube.api_client):
        await until(lambda: Request("fn", kube.namespace) in seen, "function reconciler called")


async def test_updates_and_deletes_trigger_reconciles_named_after_the_event(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    await client.create(CONFIGMAPS, cm("x", kube.namespace))
    recorder = Recorder()
    controller = Controller(
        unique_controller(), for_=CONFIGMAPS, reconciler=recorder, namespace=kube.namespace
    )
    key = Request("x", kube.namespace)
    async with running(controller, kube.api_client):
        await until(lambda: recorder.triggers(key) == ["ConfigMap add"], "initial reconcile")
        await client.patch(CONFIGMAPS, "x", {"data": {"k": "2"}}, namespace=kube.namespace)
        await until(lambda: "ConfigMap update" in recorder.triggers(key), "update reconcile")
        await client.delete(CONFIGMAPS, "x", namespace=kube.namespace)
        await until(lambda: "ConfigMap delete" in recorder.triggers(key), "delete reconcile")


async def test_cluster_scoped_primaries_get_requests_without_a_namespace(kube: KubeTarget) -> None:
    recorder = Recorder()
    controller = Controller(unique_controller(), for_=NAMESPACES, reconciler=recorder)
    async with running(controller, kube.api_client):
        await until(lambda: Request(kube.namespace) in recorder.requests(), "namespace reconciled")
    ctx = next(c for r, c in recorder.calls if r == Request(kube.namespace))
    assert ctx["namespace"] is None


# ------------------------------------------------------------------------------------- exclusivity


@pytest.mark.fake_only
async def test_one_key_is_never_reconciled_twice_at_once_under_concurrency(fake_kube: KubeTarget) -> None:
    client = Client(fake_kube.api_client)
    keys = ["k0", "k1", "k2"]
    for key in keys:
        await client.create(CONFIGMAPS, cm(key, fake_kube.namespace))
    in_flight: set[Request] = set()
    overlaps: list[Request] = []
    peak = 0
    done = 0

    async def reconcile(request: Request) -> Result:
        nonlocal peak, done
        if request in in_flight:
            overlaps.append(request)
        in_flight.add(request)
        peak = max(peak, len(in_flight))
        try:
            for _ in range(3):  # yield so other workers interleave
                await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.002)
        finally:
            in_flight.discard(request)
            done += 1
        return None

    controller = Controller(
        unique_controller(),
        for_=CONFIGMAPS,
        reconciler=reconcile,
        namespace=fake_kube.namespace,
        max_concurrent_reconciles=4,
    )
    async with running(controller, fake_kube.api_client):
        await until(lambda: done >= len(keys), "initial reconciles")
        for round_ in range(20):
            for key in keys:
                await client.patch(
                    CONFIGMAPS, key, {"data": {"round": str(round_)}}, namespace=fake_kube.namespace
                )
                for _ in range(5):
                    controller.enqueue(Request(key, fake_kube.namespace), trigger="test burst")
        await until(
            lambda: len(controller.queue) == 0 and controller.queue.processing() == 0, "queue drained"
        )
    assert overlaps == []
    assert peak >= 2, "distinct keys should have been reconciled in parallel"
    assert sample_value("controller_runtime_max_concurrent_reconciles", {"controller": controller.name}) == 4


# ----------------------------------------------------------------------------- outcomes on a clock


@pytest.mark.fake_only
async def test_errors_are_retried_with_exponential_backoff_on_the_injected_clock(
    fake_kube: KubeTarget,
) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("flaky", fake_kube.namespace))
    clock = FakeClock()
    times: list[float] = []

    def fail_four_times(_request: Request, n: int) -> Any:
        times.append(clock.monotonic())
        return RuntimeError(f"boom {n}") if n <= 4 else None

    recorder = Recorder(fail_four_times)
    name = unique_controller()
    controller = Controller(
        name,
        for_=CONFIGMAPS,
        reconciler=recorder,
        namespace=fake_kube.namespace,
        clock=clock,
        label_selector=MINE,
    )
    key = Request("flaky", fake_kube.namespace)
    async with running(controller, fake_kube.api_client):
        for attempt, expected in enumerate([0.005, 0.01, 0.02, 0.04], start=1):
            # the failed attempt has been handed back to the rate limiter ...
            def handed_back(n: int = attempt) -> bool:
                return len(times) == n and controller.queue.num_requeues(key) == n

            await until(handed_back, "retry scheduled")
            # ... and the retry starts when exactly the backoff has passed on the controller's clock
            await clock.advance(expected)
        await until(lambda: len(times) == 5, "fifth attempt")
        await until(lambda: controller.queue.num_requeues(key) == 0, "forgotten after success")
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.005, 0.01, 0.02, 0.04]
    assert recorder.triggers(key) == ["ConfigMap add", "retry", "retry", "retry", "retry"]
    assert sample_value("controller_runtime_reconcile_errors_total", {"controller": name}) == 4
    assert sample_value("controller_runtime_reconcile_total", {"controller": name, "result": "error"}) == 4
    assert sample_value("controller_runtime_reconcile_total", {"controller": name, "result": "success"}) == 1


async def test_expected_failures_are_one_line_without_traceback_and_bugs_keep_theirs(
    kube: KubeTarget,
) -> None:
    """Regression (issue 10 item 6): every reconcile error was logged at error level with a traceback,
    409s, 404 races and user mistakes included. The failures here are the server's own answers."""
    client = Client(kube.api_client)
    ns = kube.namespace
    for key in ("conflict", "notfound", "invalid", "terminal", "bug"):
        await client.create(CONFIGMAPS, cm(key, ns))
    first: set[str] = set()

    async def reconcile(request: Request) -> None:
        if request.name in first:
            return
        first.add(request.name)
        if request.name == "conflict":
            stale = {"metadata": {"resourceVersion": "1"}, "data": {"k": "x"}}
            await client.patch(CONFIGMAPS, "conflict", stale, namespace=ns)
        elif request.name == "notfound":
            await client.get(CONFIGMAPS, "gone-meanwhile", ns)
        elif request.name == "invalid":
            await client.create(CONFIGMAPS, cm("Not_A_Valid_Name", ns))
        elif request.name == "terminal":
            raise TerminalError("spec.size must be positive")
        elif request.name == "bug":
            raise KeyError("spec")

    controller = Controller(
        unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=ns, label_selector=MINE
    )
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with running(controller, kube.api_client):
            await until(lambda: len(first) == 5 and len(controller.queue) == 0, "every key failed once")
    failures = {
        entry["name"]: entry
        for entry in logs
        if entry["event"] in ("reconcile failed; will retry", "terminal reconcile error; not retrying")
    }
    levels = {name: (e["log_level"], e.get("exc_info") is not None) for name, e in failures.items()}
    assert levels == {
        "conflict": ("info", False),
        "notfound": ("info", False),
        "invalid": ("warning", False),
        "terminal": ("warning", False),
        "bug": ("error", True),
    }
    assert failures["conflict"]["error_type"] == "Conflict"


def test_a_terminating_namespace_and_wrapped_causes_are_expected_failures() -> None:
    from kctl_runtime.errors import api_error, expected_failure_level
    from kctl_runtime.finalizer import ApplyFailed

    body = {  # kube-apiserver 1.36's answer to a create in a terminating namespace
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": 'configmaps "x" is forbidden: unable to create new content in namespace ns because it '
        "is being terminated",
        "details": {"name": "x", "kind": "configmaps", "causes": [{"reason": "NamespaceTerminating"}]},
    }
    assert expected_failure_level(api_error(403, body)) == "info"
    assert expected_failure_level(api_error(403, {"reason": "Forbidden", "message": "RBAC"})) == "error"
    assert expected_failure_level(api_error(401, {"reason": "Unauthorized"})) == "error"
    assert expected_failure_level(api_error(429, {"reason": "TooManyRequests"})) == "warning"
    assert expected_failure_level(ConnectionResetError()) == "warning"
    assert expected_failure_level(KeyError("x")) is None
    wrapped = ApplyFailed("apply failed", finalizer="a/b", object_key="ns/x")
    wrapped.__cause__ = api_error(409, {"reason": "Conflict"})
    assert expected_failure_level(wrapped) == "info"
    bug = ApplyFailed("apply failed", finalizer="a/b", object_key="ns/x")
    bug.__cause__ = KeyError("x")
    assert expected_failure_level(bug) is None


@pytest.mark.fake_only
async def test_a_terminal_error_is_counted_and_not_retried(fake_kube: KubeTarget) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("bad", fake_kube.namespace))
    clock = FakeClock()
    recorder = Recorder(lambda _r, _n: TerminalError("spec is invalid"))
    name = unique_controller()
    controller = Controller(
        name,
        for_=CONFIGMAPS,
        reconciler=recorder,
        namespace=fake_kube.namespace,
        clock=clock,
        label_selector=MINE,
    )
    async with running(controller, fake_kube.api_client):
        await until(lambda: len(recorder.calls) == 1 and controller.queue.processing() == 0, "terminal done")
        assert controller.queue.num_requeues(Request("bad", fake_kube.namespace)) == 0
        await clock.advance(3600)
        await anyio.sleep(0.05)
        assert len(recorder.calls) == 1
    assert sample_value("controller_runtime_terminal_reconcile_errors_total", {"controller": name}) == 1
    assert sample_value("controller_runtime_reconcile_errors_total", {"controller": name}) == 1


@pytest.mark.fake_only
async def test_requeue_after_reconciles_again_once_the_delay_has_passed(fake_kube: KubeTarget) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("poll", fake_kube.namespace))
    clock = FakeClock()
    recorder = Recorder(lambda _r, n: RequeueAfter(30) if n == 1 else None)
    name = unique_controller()
    controller = Controller(
        name,
        for_=CONFIGMAPS,
        reconciler=recorder,
        namespace=fake_kube.namespace,
        clock=clock,
        label_selector=MINE,
    )
    key = Request("poll", fake_kube.namespace)
    async with running(controller, fake_kube.api_client):
        await until(
            lambda: len(recorder.calls) == 1 and controller.queue.processing() == 0, "first reconcile"
        )
        await clock.advance(29.9)
        await anyio.sleep(0.02)
        assert len(recorder.calls) == 1
        await clock.advance(0.1)
        await until(lambda: len(recorder.calls) == 2, "requeued reconcile")
    assert recorder.triggers(key) == ["ConfigMap add", "requeue_after"]
    assert (
        sample_value("controller_runtime_reconcile_total", {"controller": name, "result": "requeue_after"})
        == 1
    )
    assert sample_value("controller_runtime_reconcile_total", {"controller": name, "result": "requeue"}) == 0


@pytest.mark.fake_only
async def test_a_reconciler_returning_something_else_is_an_error(fake_kube: KubeTarget) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("odd", fake_kube.namespace))
    clock = FakeClock()
    recorder = Recorder(lambda _r, n: True if n == 1 else None)
    name = unique_controller()
    controller = Controller(
        name,
        for_=CONFIGMAPS,
        reconciler=recorder,
        namespace=fake_kube.namespace,
        clock=clock,
        label_selector=MINE,
    )
    async with running(controller, fake_kube.api_client):
        await until(
            lambda: len(recorder.calls) == 1 and controller.queue.processing() == 0, "first reconcile"
        )
        await clock.advance(0.005)
        await until(lambda: len(recorder.calls) == 2, "retried")
    assert sample_value("controller_runtime_reconcile_errors_total", {"controller": name}) == 1


# --------------------------------------------------------------------------------- owners, watches


def owner_ref(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
    }


async def test_editing_an_owned_object_reconciles_its_controller_owner(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    ns = kube.namespace
    web = await client.create(DEPLOYMENTS, deployment("web", ns))
    other = await client.create(DEPLOYMENTS, deployment("other", ns))
    await client.create(CONFIGMAPS, cm("web-config", ns, ownerReferences=[owner_ref(web)]))
    await client.create(CONFIGMAPS, cm("loose", ns, ownerReferences=[owner_ref(other, controller=False)]))
    recorder = Recorder()
    controller = Controller(
        unique_controller(),
        for_=DEPLOYMENTS,
        owns=[CONFIGMAPS],
        reconciler=recorder,
        namespace=ns,
        predicates=[generation_changed()],
    )
    web_key, other_key = Request("web", ns), Request("other", ns)
    async with running(controller, kube.api_client):
        await until(lambda: web_key in recorder.requests() and other_key in recorder.requests(), "initial")
        await until(lambda: controller.queue.processing() == 0 and len(controller.queue) == 0, "settled")
        before_other = len(recorder.triggers(other_key))
        await client.patch(CONFIGMAPS, "web-config", {"data": {"k": "edited"}}, namespace=ns)
        await until(lambda: "ConfigMap update (owner)" in recorder.triggers(web_key), "owner reconciled")
        await client.patch(CONFIGMAPS, "loose", {"data": {"k": "edited"}}, namespace=ns)
        await anyio.sleep(0.2)
        assert "ConfigMap update (owner)" not in recorder.triggers(other_key)
        assert len(recorder.triggers(other_key)) == before_other


@pytest.mark.fake_only
async def test_owned_resources_can_have_their_own_predicates(fake_kube: KubeTarget) -> None:
    client = Client(fake_kube.api_client)
    ns = fake_kube.namespace
    web = await client.create(DEPLOYMENTS, deployment("web", ns))
    await client.create(CONFIGMAPS, cm("watched", ns, ownerReferences=[owner_ref(web)]))
    await client.create(CONFIGMAPS, cm("ignored", ns, ownerReferences=[owner_ref(web)]))
    recorder = Recorder()
    only_watched = from_functions(update=lambda _old, new: new["metadata"]["name"] == "watched")
    controller = Controller(
        unique_controller(),
        for_=DEPLOYMENTS,
        owns=[Owns(CONFIGMAPS, [only_watched])],
        reconciler=recorder,
        namespace=ns,
        predicates=[generation_changed()],
    )
    key = Request("web", ns)
    async with running(controller, fake_kube.api_client):
        await until(lambda: controller.queue.processing() == 0 and key in recorder.requests(), "initial")
        await until(lambda: len(controller.queue) == 0 and controller.queue.processing() == 0, "settled")
        before = len(recorder.triggers(key))
        await client.patch(CONFIGMAPS, "ignored", {"data": {"k": "1"}}, namespace=ns)
        await anyio.sleep(0.2)
        assert len(recorder.triggers(key)) == before, "the filtered owned update reconciled its owner"
        await client.patch(CONFIGMAPS, "watched", {"data": {"k": "1"}}, namespace=ns)
        await until(lambda: "ConfigMap update (owner)" in recorder.triggers(key), "watched edit reconciled")
        await anyio.sleep(0.1)
    assert recorder.triggers(key)[before:] == ["ConfigMap update (owner)"]


def test_owner_requests_follow_only_the_controller_reference_of_the_right_kind() -> None:
    # The API server allows one controller reference per object (checked in the differential tier).
    def owned(*refs: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "c", "namespace": "ns", "ownerReferences": list(refs)}}

    plain = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "not-controller", "uid": "1"}
    wrong_group = {
        "apiVersion": "v1",
        "kind": "Deployment",
        "name": "wrong-group",
        "uid": "2",
        "controller": True,
    }
    web = {"apiVersion": "apps/v1beta2", "kind": "Deployment", "name": "web", "uid": "3", "controller": True}
    assert owner_requests(owned(plain, web), DEPLOYMENTS) == [Request("web", "ns")]
    assert owner_requests(owned(plain), DEPLOYMENTS) == []
    assert owner_requests(owned(plain, wrong_group), DEPLOYMENTS) == []
    assert owner_requests(owned(plain, web), CONFIGMAPS) == []
    cluster_owner = Resource("example.com", "v1", "tenants", "Tenant", namespaced=False)
    tenant = {"apiVersion": "example.com/v1", "kind": "Tenant", "name": "t", "controller": True}
    assert owner_requests(owned(tenant), cluster_owner) == [Request("t")]


async def test_watches_map_events_of_other_kinds_to_requests(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    ns = kube.namespace
    await client.create(CONFIGMAPS, cm("app", ns))

    def by_label(obj: dict[str, Any]) -> list[Request]:
        target = (obj["metadata"].get("labels") or {}).get("for")
        return [Request(target, obj["metadata"]["namespace"])] if target else []

    recorder = Recorder()
    controller = Controller(
        unique_controller(),
        for_=CONFIGMAPS,
        watches=[Watch(SECRETS, by_label)],
        reconciler=recorder,
        namespace=ns,
    )
    key = Request("app", ns)
    async with running(controller, kube.api_client):
        await until(lambda: recorder.triggers(key) == ["ConfigMap add"], "initial")
        await client.create(
            SECRETS,
            {"metadata": {"name": "creds", "namespace": ns, "labels": {"for": "app"}}, "stringData": {}},
        )
        await until(lambda: "Secret add (watch)" in recorder.triggers(key), "mapped reconcile")


async def test_a_watch_can_reach_beyond_a_namespace_scoped_controller(kube: KubeTarget) -> None:
    # Gap found by the User example: a Watch used to inherit the controller's namespace, so objects
    # the controller manages in other namespaces were never seen.
    client = Client(kube.api_client)
    ns = kube.namespace
    elsewhere = unique_name("elsewhere")
    await client.create(NAMESPACES, {"metadata": {"name": elsewhere}})
    await client.create(CONFIGMAPS, cm("app", ns))

    token = unique_name("for")  # the real tier is shared: other tests' Secrets must not match

    def by_label(obj: dict[str, Any]) -> list[Request]:
        return [Request("app", ns)]

    recorder = Recorder()
    controller = Controller(
        unique_controller(),
        for_=CONFIGMAPS,
        watches=[Watch(SECRETS, by_label, namespace=ALL_NAMESPACES, label_selector=f"for={token}")],
        reconciler=recorder,
        namespace=ns,
    )
    assert (SECRETS, None, f"for={token}") in controller.sources()
    assert (CONFIGMAPS, ns, None) in controller.sources()
    key = Request("app", ns)
    try:
        async with running(controller, kube.api_client):
            await until(lambda: recorder.triggers(key) == ["ConfigMap add"], "initial")
            secret = {"metadata": {"name": "creds", "namespace": elsewhere, "labels": {"for": token}}}
            await client.create(SECRETS, secret)
            await until(lambda: "Secret add (watch)" in recorder.triggers(key), "mapped across namespaces")
    finally:
        await client.delete(NAMESPACES, elsewhere)


@pytest.mark.fake_only
async def test_a_failing_map_function_drops_the_event_and_keeps_the_controller_running(
    fake_kube: KubeTarget,
) -> None:
    client = Client(fake_kube.api_client)
    ns = fake_kube.namespace

    def explode(obj: dict[str, Any]) -> list[Request]:
        if obj["metadata"]["name"] == "bad":
            raise KeyError("no such label")
        return [Request("target", ns)]

    recorder = Recorder()
    controller = Controller(
        unique_controller(),
        for_=CONFIGMAPS,
        watches=[Watch(SECRETS, explode)],
        reconciler=recorder,
        namespace=ns,
    )
    async with running(controller, fake_kube.api_client):
        await client.create(SECRETS, {"metadata": {"name": "bad", "namespace": ns}})
        await client.create(SECRETS, {"metadata": {"name": "good", "namespace": ns}})
        await until(lambda: Request("target", ns) in recorder.requests(), "good event mapped")


# -------------------------------------------------------------------------------------- predicates


async def test_generation_changed_ignores_status_only_updates(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    ns = kube.namespace
    await client.create(DEPLOYMENTS, deployment("gen", ns))
    recorder = Recorder()
    controller = Controller(
        unique_controller(),
        for_=DEPLOYMENTS,
        reconciler=recorder,
        namespace=ns,
        predicates=[generation_changed()],
    )
    key = Request("gen", ns)
    async with running(controller, kube.api_client) as factory:
        await until(lambda: recorder.triggers(key) == ["Deployment add"], "initial")
        informer = factory.informer(DEPLOYMENTS, namespace=ns)
        seen_rv = informer.store.get_object(ns, "gen")["metadata"]["resourceVersion"]  # type: ignore[index]
        await client.patch(
            DEPLOYMENTS, "gen", {"status": {"collisionCount": 7}}, namespace=ns, subresource="status"
        )
        await until(
            lambda: informer.store.get_object(ns, "gen")["metadata"]["resourceVersion"] != seen_rv,  # type: ignore[index]
            "status update cached",
        )
        await anyio.sleep(0.1)
        assert recorder.triggers(key) == ["Deployment add"]
        await client.patch(DEPLOYMENTS, "gen", {"spec": {"replicas": 3}}, namespace=ns)
        await until(lambda: "Deployment update" in recorder.triggers(key), "spec change reconciled")


# -------------------------------------------------------------------------------------- stopping


@pytest.mark.fake_only
async def test_stop_lets_in_flight_reconciles_finish_and_starts_no_new_ones(fake_kube: KubeTarget) -> None:
    client = Client(fake_kube.api_client)
    ns = fake_kube.namespace
    await client.create(CONFIGMAPS, cm("slow", ns))
    release = anyio.Event()
    started: list[Request] = []
    finished: list[Request] = []

    async def reconcile(request: Request) -> Result:
        started.append(request)
        await release.wait()
        finished.append(request)
        return None

    factory = InformerFactory(fake_kube.api_client)
    controller = Controller(
        unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=ns, label_selector=MINE
    )
    returned = anyio.Event()

    async def run_controller() -> None:
        await controller.run(factory)
        returned.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        tg.start_soon(run_controller)
        await until(lambda: started == [Request("slow", ns)], "reconcile in flight")
        assert sample_value("controller_runtime_active_workers", {"controller": controller.name}) == 1
        controller.stop()
        controller.enqueue(Request("late", ns), trigger="after stop")
        await client.create(CONFIGMAPS, cm("late2", ns))
        await anyio.sleep(0.1)
        assert not returned.is_set(), "run() returned while a reconcile was in flight"
        release.set()
        with anyio.fail_after(5):
            await returned.wait()
        tg.cancel_scope.cancel()
    assert finished == [Request("slow", ns)]
    assert started == [Request("slow", ns)]
    assert not controller.running
    assert sample_value("controller_runtime_active_workers", {"controller": controller.name}) == 0


@pytest.mark.fake_only
async def test_cancelling_run_cancels_in_flight_reconciles(fake_kube: KubeTarget) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("stuck", fake_kube.namespace))
    cancelled = anyio.Event()
    started = anyio.Event()

    async def reconcile(_request: Request) -> Result:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return None

    controller = Controller(
        unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=fake_kube.namespace
    )
    async with running(controller, fake_kube.api_client):
        with anyio.fail_after(5):
            await started.wait()
    assert cancelled.is_set()


@pytest.mark.fake_only
async def test_a_controller_fails_with_the_unsynced_informers_named_after_its_cache_sync_timeout(
    fake_kube: KubeTarget,
) -> None:
    missing = Resource("example.com", "v1", "widgets", "Widget")
    clock = FakeClock()
    controller = Controller(
        unique_controller(),
        for_=missing,
        reconciler=Recorder(),
        namespace=fake_kube.namespace,
        cache_sync_timeout=10,
        clock=clock,
    )
    factory = InformerFactory(fake_kube.api_client)
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)

        async def advance_when_waiting() -> None:
            await until(lambda: clock.sleepers == 1, "controller waiting for sync")
            await clock.advance(10)

        tg.start_soon(advance_when_waiting)
        with pytest.raises(TimeoutError, match=r"caches not synced after 10s: widgets\.example\.com"):
            await controller.run(factory)
        tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------------- validation


def test_controller_validates_its_configuration_at_construction() -> None:
    with pytest.raises(ValueError, match="name"):
        Controller("Bad Name", for_=CONFIGMAPS, reconciler=Recorder())
    with pytest.raises(ValueError, match="max_concurrent_reconciles"):
        Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Recorder(), max_concurrent_reconciles=0)
    with pytest.raises(TypeError, match="Watch"):
        Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Recorder(), watches=[SECRETS])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="reconcile"):
        Controller(unique_controller(), for_=CONFIGMAPS, reconciler=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cluster-scoped"):
        Controller(unique_controller(), for_=CONFIGMAPS, owns=[NAMESPACES], reconciler=Recorder())


async def test_a_controller_runs_only_once() -> None:
    controller = Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Recorder())
    controller.stop()
    factory = InformerFactory(None)
    await controller.run(factory)
    with pytest.raises(RuntimeError, match="once"):
        await controller.run(factory)
