"""Tests for kctl_runtime.manager: phases, probes and metrics over HTTP, shutdown, leader election."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import structlog

from kctl_runtime.client import Client
from kctl_runtime.clock import FakeClock
from kctl_runtime.config import ConfigError
from kctl_runtime.controller import Controller
from kctl_runtime.errors import Forbidden
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.manager import CacheSyncTimeout, ForcedShutdown, LeaderElectionLost, Manager
from kctl_runtime.reconcile import Request, Result
from kctl_runtime.resource import CONFIGMAPS, CORE_EVENTS, LEASES, SECRETS, Resource
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

MINE = "suite=manager"
MISSING = Resource("example.com", "v1", "widgets", "Widget")


def unique_controller(prefix: str = "mgr") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cm(name: str, namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"suite": "manager"}},
        "data": {"k": "v"},
    }


def local_manager(api_client: Any, **kwargs: Any) -> Manager:
    kwargs.setdefault("health_bind", "127.0.0.1:0")
    kwargs.setdefault("metrics_bind", "127.0.0.1:0")
    kwargs.setdefault("handle_signals", False)
    kwargs.setdefault("freeze_gc", False)  # one test covers it; freezing per test only costs time
    return Manager(api_client, **kwargs)


async def until(predicate: Callable[[], bool], message: str, timeout: float = 10.0) -> None:
    async def check() -> bool:
        return predicate()

    await eventually(check, message=message, timeout=timeout)


async def http_get(port: int | None, path: str) -> tuple[int, str]:
    assert port is not None
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


@contextlib.asynccontextmanager
async def managing(manager: Manager) -> AsyncIterator[anyio.Event]:
    """Run the manager in the background; stop it gracefully at the end and wait for run()."""
    finished = anyio.Event()

    async def run() -> None:
        try:
            await manager.run()
        finally:
            finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            yield finished
        finally:
            manager.stop()
            with anyio.fail_after(10):
                await finished.wait()


class Counting:
    def __init__(self) -> None:
        self.seen: list[Request] = []

    async def reconcile(self, request: Request) -> Result:
        self.seen.append(request)
        return None


# ---------------------------------------------------------------------------------------- probes


async def test_probes_and_metrics_are_served_over_http(kube: KubeTarget) -> None:
    await Client(kube.api_client).create(CONFIGMAPS, cm("probe", kube.namespace))
    reconciler = Counting()
    name = unique_controller()
    manager = local_manager(kube.api_client)
    manager.add(
        Controller(
            name, for_=CONFIGMAPS, reconciler=reconciler, namespace=kube.namespace, label_selector=MINE
        )
    )
    async with managing(manager):
        await until(lambda: manager.ready and len(reconciler.seen) == 1, "reconciled")
        assert await http_get(manager.health_port, "/healthz") == (200, "ok")
        assert await http_get(manager.health_port, "/readyz") == (200, "ok")
        status, verbose = await http_get(manager.health_port, "/readyz?verbose")
        assert status == 200
        assert "[+]informer-sync ok" in verbose
        status, text = await http_get(manager.metrics_port, "/metrics")
        assert status == 200
        assert f'controller_runtime_reconcile_total{{controller="{name}",result="success"}} 1.0' in text
        assert f'controller_runtime_max_concurrent_reconciles{{controller="{name}"}} 1.0' in text
        assert f'workqueue_adds_total{{name="{name}"}}' in text
        assert "controller_runtime_reconcile_time_seconds_bucket" in text
        assert "process_resident_memory_bytes" in text or "python_info" in text  # the default registry
    assert not manager.ready
    assert not manager.healthy


@pytest.mark.fake_only
async def test_readyz_fails_until_the_caches_have_synced(fake_kube: KubeTarget) -> None:
    manager = local_manager(fake_kube.api_client, metrics_bind=None)
    manager.add(
        Controller(unique_controller(), for_=MISSING, reconciler=Counting(), namespace=fake_kube.namespace)
    )
    async with managing(manager):
        await until(lambda: manager.health_port is not None and manager.healthy, "serving")
        assert await http_get(manager.health_port, "/healthz") == (200, "ok")
        status, text = await http_get(manager.health_port, "/readyz")
        assert status == 500
        assert "[-]informer-sync failed" in text
    assert manager.metrics_port is None


async def test_health_and_metrics_may_share_one_bind(kube: KubeTarget) -> None:
    manager = local_manager(kube.api_client, metrics_bind=None)
    async with managing(manager):
        await until(lambda: manager.ready, "ready")
        assert (await http_get(manager.health_port, "/metrics"))[0] == 404
    shared = local_manager(kube.api_client, health_bind="127.0.0.1:0", metrics_bind="127.0.0.1:0")
    # equal binds with port 0 are one server holding all three endpoints
    async with managing(shared):
        await until(lambda: shared.ready, "ready")
        assert shared.health_port == shared.metrics_port
        assert (await http_get(shared.metrics_port, "/metrics"))[0] == 200
        assert (await http_get(shared.health_port, "/healthz"))[0] == 200


async def test_extra_health_checks_are_reported(kube: KubeTarget) -> None:
    manager = local_manager(kube.api_client)
    healthy = True

    async def db_ok() -> bool:
        return healthy

    manager.add_healthz_check("db", db_ok)
    async with managing(manager):
        await until(lambda: manager.ready, "ready")
        assert (await http_get(manager.health_port, "/healthz"))[0] == 200
        healthy = False
        status, text = await http_get(manager.health_port, "/healthz")
        assert status == 500
        assert "[-]db failed" in text


# ---------------------------------------------------------------------------------------- cache


@pytest.mark.fake_only
async def test_the_cache_sync_timeout_names_the_informers_that_did_not_sync(fake_kube: KubeTarget) -> None:
    clock = FakeClock()
    manager = local_manager(fake_kube.api_client, cache_sync_timeout=30, clock=clock)
    manager.add(
        Controller(unique_controller(), for_=MISSING, reconciler=Counting(), namespace=fake_kube.namespace)
    )
    manager.add(
        Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Counting(), namespace=fake_kube.namespace)
    )

    async def advance_when_waiting() -> None:
        await until(lambda: clock.sleepers >= 1, "waiting for the caches")
        await clock.advance(30)

    async with anyio.create_task_group() as tg:
        tg.start_soon(advance_when_waiting)
        with pytest.raises(CacheSyncTimeout) as caught:
            await manager.run()
    message = str(caught.value)
    assert "cache_sync_timeout=30" in message
    assert f"widgets.example.com,ns={fake_kube.namespace}" in message
    assert "configmaps" not in message
    assert "\n" not in message


@pytest.mark.fake_only
async def test_the_manager_client_reads_what_its_controllers_cache(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("cached", fake_kube.namespace))
    manager = local_manager(fake_kube.api_client)
    manager.add(
        Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Counting(), namespace=fake_kube.namespace)
    )
    async with managing(manager):
        await until(lambda: manager.ready, "ready")
        fake_kube.fake.faults.fail_next(1, status=403, verb="get", resource="configmaps")
        got = await manager.client.get(CONFIGMAPS, "cached", fake_kube.namespace)
        assert got["metadata"]["name"] == "cached"
        assert fake_kube.fake.faults.injected == 0
        with pytest.raises(Forbidden):
            await manager.client.api.get(CONFIGMAPS, "cached", fake_kube.namespace)


@pytest.mark.fake_only
async def test_an_informer_requested_from_the_manager_serves_client_reads(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    ns = fake_kube.namespace
    await Client(fake_kube.api_client).create(SECRETS, {"metadata": {"name": "s1", "namespace": ns}})
    manager = local_manager(fake_kube.api_client)
    informer = manager.informer(SECRETS, namespace=ns)
    assert manager.informer(SECRETS, namespace=ns) is informer
    async with managing(manager):
        await until(lambda: manager.ready and informer.has_synced, "synced")
        fake_kube.fake.faults.fail_next(1, status=403, verb="list", resource="secrets")
        names = [s["metadata"]["name"] for s in await manager.client.list(SECRETS, ns)]
        assert names == ["s1"]
        assert fake_kube.fake.faults.injected == 0
    fake_kube.fake.faults.clear()


async def test_controllers_inherit_the_managers_namespace(kube: KubeTarget) -> None:
    manager = local_manager(kube.api_client, namespace=kube.namespace)
    controller = Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Counting())
    manager.add(controller)
    assert controller.namespace == kube.namespace
    assert manager.controllers == [controller]
    with pytest.raises(ValueError, match="already added"):
        manager.add(Controller(controller.name, for_=CONFIGMAPS, reconciler=Counting()))


# ------------------------------------------------------------------------------------- shutdown


@pytest.mark.fake_only
async def test_graceful_shutdown_finishes_in_flight_reconciles_and_starts_no_new_ones(
    fake_kube: KubeTarget,
) -> None:
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

    controller = Controller(
        unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=ns, label_selector=MINE
    )
    manager = local_manager(fake_kube.api_client)
    manager.add(controller)
    async with managing(manager) as done:
        await until(lambda: started == [Request("slow", ns)], "reconcile in flight")
        manager.stop()
        await client.create(CONFIGMAPS, cm("late", ns))
        controller.enqueue(Request("later", ns))
        await until(lambda: not manager.ready, "not ready while stopping")
        assert (await http_get(manager.health_port, "/readyz"))[0] == 500
        assert not done.is_set()
        release.set()
        with anyio.fail_after(10):
            await done.wait()
    assert started == finished == [Request("slow", ns)]


@pytest.mark.fake_only
async def test_reconciles_still_running_after_the_graceful_timeout_are_cancelled(
    fake_kube: KubeTarget,
) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("stuck", fake_kube.namespace))
    clock = FakeClock()
    cancelled = anyio.Event()
    started = anyio.Event()
    cancelled_at: list[float] = []

    async def reconcile(_request: Request) -> Result:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled_at.append(clock.monotonic())
            cancelled.set()
        return None

    manager = local_manager(fake_kube.api_client, graceful_shutdown_timeout=5, clock=clock)
    manager.add(
        Controller(
            unique_controller(),
            for_=CONFIGMAPS,
            reconciler=reconcile,
            namespace=fake_kube.namespace,
            label_selector=MINE,
        )
    )
    with structlog.testing.capture_logs() as logs:
        async with managing(manager) as done:
            with anyio.fail_after(10):
                await started.wait()
            stopped_at = clock.monotonic()
            manager.stop()
            await anyio.sleep(0.05)  # let the manager start its graceful timer
            while not cancelled.is_set() and clock.monotonic() - stopped_at < 60:
                await clock.advance(0.5)
                await anyio.sleep(0.01)
            with anyio.fail_after(10):
                await done.wait()
    assert cancelled_at, "the stuck reconcile was never cancelled"
    assert 5.0 <= cancelled_at[0] - stopped_at <= 5.5
    # Regression (issue 10 item 8): the warning said cancelled=0, counted after the cancellation.
    (warning,) = [e for e in logs if e["event"].startswith("graceful_shutdown_timeout passed")]
    assert (warning["log_level"], warning["cancelled"]) == ("warning", 1)


@pytest.mark.fake_only
async def test_sigterm_stops_gracefully_and_a_second_signal_forces_exit(fake_kube: KubeTarget) -> None:
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("sig", fake_kube.namespace))
    started = anyio.Event()
    cancelled = anyio.Event()

    async def reconcile(_request: Request) -> Result:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return None

    manager = local_manager(
        fake_kube.api_client,
        health_bind=None,
        metrics_bind=None,
        handle_signals=True,
        graceful_shutdown_timeout=60,
    )
    manager.add(
        Controller(
            unique_controller(),
            for_=CONFIGMAPS,
            reconciler=reconcile,
            namespace=fake_kube.namespace,
            label_selector=MINE,
        )
    )

    async def signal_twice() -> None:
        with anyio.fail_after(10):
            await started.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        await until(lambda: not manager.ready, "graceful stop began")
        assert not cancelled.is_set()
        os.kill(os.getpid(), signal.SIGTERM)

    async with anyio.create_task_group() as tg:
        tg.start_soon(signal_twice)
        with pytest.raises(ForcedShutdown, match="second signal"):
            await manager.run()
    assert cancelled.is_set()


@pytest.mark.fake_only
async def test_an_exception_in_a_runnable_ends_run_with_that_exception(fake_kube: KubeTarget) -> None:
    manager = local_manager(fake_kube.api_client)

    async def broken() -> None:
        raise LookupError("runnable failed")

    manager.add_runnable(broken, needs_leader=False)
    with pytest.raises(LookupError, match="runnable failed"):
        await manager.run()


async def test_the_manager_freezes_start_up_objects_out_of_the_collectors_reach_once_synced(
    kube: KubeTarget,
) -> None:
    import kctl_runtime.manager as manager_module

    gc.unfreeze()
    manager_module._GC["frozen"] = False
    manager = local_manager(kube.api_client, freeze_gc=True)
    try:
        async with managing(manager):
            await until(lambda: manager.ready, "ready")
            assert gc.get_freeze_count() > 0
        assert manager_module.freeze_gc() is False, "only the first call in a process freezes"
    finally:
        gc.unfreeze()


async def test_stop_before_run_returns_promptly(kube: KubeTarget) -> None:
    manager = local_manager(kube.api_client)
    manager.stop()
    with anyio.fail_after(10):
        await manager.run()
    with pytest.raises(RuntimeError, match="once"):
        await manager.run()


async def test_runnables_and_controllers_cannot_be_added_once_running(kube: KubeTarget) -> None:
    manager = local_manager(kube.api_client)
    async with managing(manager):
        await until(lambda: manager.ready, "ready")
        with pytest.raises(RuntimeError, match="before"):
            manager.add(Controller(unique_controller(), for_=CONFIGMAPS, reconciler=Counting()))
        with pytest.raises(RuntimeError, match="before"):
            manager.add_runnable(anyio.sleep_forever)


# ------------------------------------------------------------------------------- leader election


def leads(manager: Manager) -> bool:
    return manager.is_leader


def lease_config(lease: str, namespace: str, identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        lease_name=lease,
        lease_namespace=namespace,
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
    )


@pytest.mark.fake_only
async def test_only_the_leader_runs_controllers_and_a_standby_takes_over_on_release(
    fake_kube: KubeTarget,
) -> None:
    ns = fake_kube.namespace
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("led", ns))
    clock = FakeClock()
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    counters = [Counting(), Counting()]
    standby_client = await fake_kube.new_api_client()
    managers = [
        local_manager(fake_kube.api_client, clock=clock, leader_election=lease_config(lease, ns, "first")),
        local_manager(standby_client, clock=clock, leader_election=lease_config(lease, ns, "second")),
    ]
    leader_only_runs: list[str] = []
    for index, (manager, counter) in enumerate(zip(managers, counters, strict=True)):
        manager.add(
            Controller(
                unique_controller(), for_=CONFIGMAPS, reconciler=counter, namespace=ns, label_selector=MINE
            )
        )

        async def leader_work(index: int = index) -> None:
            leader_only_runs.append(f"manager {index}")
            await anyio.sleep_forever()

        manager.add_runnable(leader_work, needs_leader=True)

    first, second = managers
    async with managing(first):
        await until(lambda: first.is_leader and len(counters[0].seen) == 1, "first leads and reconciles")
        async with managing(second):
            await until(lambda: second.ready, "standby synced")
            await until(
                lambda: second.elector is not None and second.elector.observed_leader == "first", "observed"
            )
            assert not second.is_leader
            assert counters[1].seen == []
            assert leader_only_runs == ["manager 0"]
            first.stop()  # releases the Lease
            await until(lambda: not first.healthy, "first stopped")
            for _ in range(50):
                if leads(second):
                    break
                await clock.advance(2.5)
                await anyio.sleep(0.01)
            await until(lambda: second.is_leader and len(counters[1].seen) == 1, "second took over")
            assert leader_only_runs == ["manager 0", "manager 1"]
    lease_obj = await Client(fake_kube.api_client).get(LEASES, lease, ns)
    assert lease_obj["spec"]["leaseTransitions"] >= 1


@pytest.mark.fake_only
async def test_losing_the_lease_ends_run_with_leader_election_lost(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    ns = fake_kube.namespace
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("lost", ns))
    clock = FakeClock()
    counter = Counting()
    manager = local_manager(
        fake_kube.api_client,
        clock=clock,
        leader_election=lease_config(f"lease-{uuid.uuid4().hex[:6]}", ns, "me"),
    )
    manager.add(
        Controller(
            unique_controller(), for_=CONFIGMAPS, reconciler=counter, namespace=ns, label_selector=MINE
        )
    )
    ended = anyio.Event()

    async def run_until_lost() -> None:
        with pytest.raises(LeaderElectionLost, match="not renewed within renew_deadline"):
            await manager.run()
        ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_until_lost)
        await until(lambda: manager.is_leader and len(counter.seen) == 1, "leading and reconciling")
        fake_kube.fake.faults.fail_next(10_000, status=500, resource="leases")
        for _ in range(60):
            if ended.is_set():
                break
            await clock.advance(0.5)
            await anyio.sleep(0.02)
        with anyio.fail_after(10):
            await ended.wait()
    fake_kube.fake.faults.clear()


# ------------------------------------------------------------------------------------ from_config


async def test_from_config_builds_a_manager_from_a_kubeconfig(kube: KubeTarget) -> None:
    manager = await Manager.from_config(
        kubeconfig=str(kube.kubeconfig), health_bind=None, metrics_bind=None, freeze_gc=False
    )
    manager.handle_signals = False
    async with managing(manager):
        await until(lambda: manager.ready, "ready")
        namespaces = await manager.client.list(CONFIGMAPS, kube.namespace)
        assert isinstance(namespaces, list)


async def test_from_config_with_a_bad_bind_raises_and_leaves_no_client_open(kube: KubeTarget) -> None:
    with pytest.raises(ValueError, match="host:port"):
        await Manager.from_config(kubeconfig=str(kube.kubeconfig), health_bind="nonsense")


async def test_from_config_with_a_missing_kubeconfig_raises_one_line(tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        await Manager.from_config(kubeconfig=str(tmp_path / "nope"))
    assert str(caught.value) == f"kubeconfig {tmp_path / 'nope'}: no such file"


def test_binds_are_validated_at_construction() -> None:
    with pytest.raises(ValueError, match="host:port"):
        Manager(None, health_bind="8081")
    with pytest.raises(ValueError, match="not a number"):
        Manager(None, metrics_bind="127.0.0.1:http")
    with pytest.raises(ValueError, match="cache_sync_timeout"):
        Manager(None, cache_sync_timeout=0)


# ------------------------------------------------------------------------------------------ events


async def test_event_recorders_run_with_the_manager_and_are_flushed_on_stop(kube: KubeTarget) -> None:
    ns = kube.namespace
    await Client(kube.api_client).create(CONFIGMAPS, cm("noted", ns))
    manager = local_manager(kube.api_client)
    recorder = manager.event_recorder("test-controller")
    assert manager.event_recorder("test-controller") is recorder

    async def reconcile(request: Request) -> Result:
        obj = await manager.client.get(CONFIGMAPS, request.name, request.namespace)
        recorder.event(obj, "Normal", "Reconciled", f"looked at {request}")
        return None

    manager.add(
        Controller(
            unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=ns, label_selector=MINE
        )
    )
    async with managing(manager):
        await until(lambda: recorder.pending > 0 or manager.ready, "running")

        async def recorded() -> bool:
            events = await Client(kube.api_client).list(CORE_EVENTS, ns)
            return any(e.get("reason") == "Reconciled" for e in events)

        await eventually(recorded, message="event written")
    events = await Client(kube.api_client).list(CORE_EVENTS, ns)
    (event,) = [e for e in events if e.get("reason") == "Reconciled"]
    assert event["involvedObject"]["name"] == "noted"
    assert event["source"]["component"] == "test-controller"
    assert event["message"] == f"looked at {ns}/noted"


@pytest.mark.fake_only
async def test_events_recorded_by_the_last_in_flight_reconcile_are_sent_before_run_returns(
    fake_kube: KubeTarget,
) -> None:
    ns = fake_kube.namespace
    await Client(fake_kube.api_client).create(CONFIGMAPS, cm("last", ns))
    manager = local_manager(fake_kube.api_client)
    recorder = manager.event_recorder("closing")
    release = anyio.Event()
    started = anyio.Event()

    async def reconcile(request: Request) -> Result:
        started.set()
        await release.wait()
        obj = await manager.client.get(CONFIGMAPS, request.name, request.namespace)
        recorder.event(obj, "Warning", "LastWords", "recorded while shutting down")
        return None

    manager.add(
        Controller(
            unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=ns, label_selector=MINE
        )
    )
    async with managing(manager) as done:
        with anyio.fail_after(10):
            await started.wait()
        manager.stop()
        release.set()
        with anyio.fail_after(10):
            await done.wait()
    events = await Client(fake_kube.api_client).list(CORE_EVENTS, ns)
    assert [e["reason"] for e in events if e.get("reason") == "LastWords"] == ["LastWords"]


async def test_missing_rbac_is_a_cache_sync_timeout_naming_the_resource_and_the_403(
    kube: KubeTarget, tmp_path: Path
) -> None:
    """Issue 10 item 4: with no RBAC for its resource the manager must not wait forever, silently."""
    from examples.website_controller.tests.rbac_tools import as_service_account
    from kctl_runtime.config import load_config

    async with contextlib.AsyncExitStack() as stack:
        if kube.fake is not None:  # the fake has no RBAC: it answers as kube-apiserver does without it
            kube.fake.faults.fail_next(10_000, status=403, verb="list", resource="secrets")
            api_client = kube.api_client
        else:  # a ServiceAccount bound to nothing
            kubeconfig = await stack.enter_async_context(
                as_service_account(kube, [], service_account="no-rbac", tmp_path=tmp_path)
            )
            api_client = await load_config(kubeconfig)
            stack.push_async_callback(api_client.close)
        manager = local_manager(api_client, cache_sync_timeout=4, metrics_bind=None)
        manager.add(
            Controller(unique_controller(), for_=SECRETS, reconciler=Counting(), namespace=kube.namespace)
        )
        with anyio.fail_after(60), pytest.raises(CacheSyncTimeout) as caught:
            await manager.run()
    message = str(caught.value)
    assert f"secrets,ns={kube.namespace}" in message, message
    assert "last error: " in message, message
    assert "403" in message, message
    assert "\n" not in message


@pytest.mark.fake_only
async def test_healthz_fails_while_credentials_are_refused_and_recovers_when_they_work(
    fake_kube: KubeTarget,
) -> None:
    """Regression (issue 10 item 3): with every write refused 401 the manager stayed "healthy"
    while enforcing nothing. Now /healthz fails, so the kubelet restarts the pod (reloading them)."""
    assert fake_kube.fake is not None
    ns = fake_kube.namespace
    client = Client(fake_kube.api_client)
    await client.create(CONFIGMAPS, cm("guarded", ns))
    attempts: list[int] = []

    async def reconcile(request: Request) -> Result:
        attempts.append(1)
        await client.patch(CONFIGMAPS, request.name, {"data": {"seen": "yes"}}, namespace=ns)
        return None

    manager = local_manager(fake_kube.api_client, metrics_bind=None)
    manager.add(
        Controller(
            unique_controller(), for_=CONFIGMAPS, reconciler=reconcile, namespace=ns, label_selector=MINE
        )
    )
    fake_kube.fake.faults.fail_next(10_000, status=401, verb="patch", resource="configmaps")
    with structlog.testing.capture_logs() as logs:
        async with managing(manager):
            await until(lambda: len(attempts) >= 2, "retried under 401")
            status, body = await http_get(manager.health_port, "/healthz")
            assert status == 500, body
            fake_kube.fake.faults.clear()  # credentials work again

            async def healthy() -> bool:
                status, body = await http_get(manager.health_port, "/healthz")
                assert status == 200, body
                return True

            await eventually(healthy, timeout=30, message="healthy once a reconcile succeeds")
    refused = [e for e in logs if e["event"] == "reconcile failed; will retry"]
    assert refused
    assert refused[0]["log_level"] == "error"
    assert "401" in refused[0]["error"]


@pytest.mark.real_only
async def test_healthz_fails_once_the_service_accounts_credentials_are_revoked(
    kube: KubeTarget, tmp_path: Path
) -> None:
    """Issue 10 item 3 on kube-apiserver: the ServiceAccount is deleted, so its token gets 401."""
    from examples.website_controller.tests.rbac_tools import as_service_account
    from kctl_runtime.config import load_config
    from kctl_runtime.resource import SERVICEACCOUNTS

    ns = kube.namespace
    admin = Client(kube.api_client)
    await admin.create(CONFIGMAPS, cm("guarded", ns))
    rbac = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-writer"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "patch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "configmap-writer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "revoked", "namespace": ns}],
        },
    ]
    async with as_service_account(kube, rbac, service_account="revoked", tmp_path=tmp_path) as kubeconfig:
        api_client = await load_config(kubeconfig)
        try:
            restricted = Client(api_client)
            seen: list[str] = []

            async def reconcile(request: Request) -> Result:
                current = await restricted.get(CONFIGMAPS, request.name, ns)
                seen.append(current["data"].get("k", ""))
                await restricted.patch(CONFIGMAPS, request.name, {"data": {"seen": "yes"}}, namespace=ns)
                return None

            manager = local_manager(api_client, metrics_bind=None)
            manager.add(
                Controller(
                    unique_controller(),
                    for_=CONFIGMAPS,
                    reconciler=reconcile,
                    namespace=ns,
                    label_selector=MINE,
                )
            )
            async with managing(manager):
                await until(lambda: bool(seen), "reconciled with valid credentials", timeout=30)
                status, _ = await http_get(manager.health_port, "/healthz")
                assert status == 200
                await admin.delete(SERVICEACCOUNTS, "revoked", namespace=ns)  # its token is now refused
                edits = iter(range(1000))

                async def unhealthy() -> bool:
                    # each edit is a reconcile (the server may honour the token a little longer)
                    data = {"data": {"k": f"edit-{next(edits)}"}}
                    await admin.patch(CONFIGMAPS, "guarded", data, namespace=ns)
                    await anyio.sleep(0.5)
                    status, body = await http_get(manager.health_port, "/healthz")
                    assert status == 500, body
                    return True

                await eventually(unhealthy, timeout=60, message="/healthz failing under 401")
        finally:
            await api_client.close()
