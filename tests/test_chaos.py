"""The chaos harness (kctl_runtime.testing.chaos): schedules replay by seed, invariants catch what
they claim to, and both examples hold every invariant under seeded schedules.

Fake tier: several seeds of every fault kind per example (each run about 6 s of faults plus
convergence; the whole file stays well under 90 s). Real tier: a smaller schedule -- kube-apiserver
restart and controller kill -- on the shared control plane.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from examples.user_controller import controller as users
from examples.user_controller.api import User
from examples.user_controller.tests.harness import install_crd as install_user_crd
from examples.user_controller.tests.harness import user as user_body
from examples.website_controller.api import Website
from examples.website_controller.controller import (
    FIELD_MANAGER,
    WEBSITES,
    child_name,
    covers,
    desired_deployment,
    desired_service,
    website_controller,
)
from examples.website_controller.tests.harness import install_crd as install_website_crd
from examples.website_controller.tests.harness import website
from kctl_runtime.client import Client
from kctl_runtime.clock import FakeClock
from kctl_runtime.config import load_config
from kctl_runtime.controller import Controller
from kctl_runtime.errors import CALL_FAILURES, AlreadyExists, NotFound
from kctl_runtime.manager import Manager
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS, SERVICEACCOUNTS, SERVICES, Resource, object_key
from kctl_runtime.testing.chaos import (
    FAULT_KINDS,
    REQUEST_FAULTS,
    ChaosFailure,
    ChaosTarget,
    ReconcileLog,
    ReconcileRecord,
    Schedule,
    cache_mismatches,
    check,
    overlapping_reconciles,
    run_schedule,
    touched,
)
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

#: Seconds after the faults stop within which the desired state must be reached.
CONVERGE_BOUND = 30.0

# --------------------------------------------------------------------------- schedules and replay


def test_the_same_seed_draws_the_same_schedule_and_other_seeds_differ() -> None:
    first = Schedule.from_seed(7, duration=5.0, faults=10)
    assert first == Schedule.from_seed(7, duration=5.0, faults=10)
    assert first.describe() == Schedule.from_seed(7, duration=5.0, faults=10).describe()
    assert first != Schedule.from_seed(8, duration=5.0, faults=10)
    assert all(0 <= f.at <= 5.0 for f in first.faults)
    assert [f.at for f in first.faults] == sorted(f.at for f in first.faults)
    assert {f.kind for s in range(20) for f in Schedule.from_seed(s).faults} == set(FAULT_KINDS)


def test_unknown_fault_kinds_and_targets_that_cannot_apply_a_schedule_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Schedule.from_seed(1, kinds=["meteor"])
    assert ChaosTarget().missing(["drop_watches", "restart_controller"]) == [
        "drop_watches",
        "restart_controller",
    ]


async def test_a_seed_replays_the_same_faults_on_virtual_time(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    applied = []
    for _ in range(2):
        clock = FakeClock()
        schedule = Schedule.from_seed(42, duration=4.0, faults=12, kinds=REQUEST_FAULTS)
        target = ChaosTarget(faults=fake_kube.fake.faults)
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(run_schedule, schedule, target, clock=clock))
            while len(target.applied) < len(schedule.faults) or clock.sleepers:
                await clock.advance(0.05)
                await anyio.lowlevel.checkpoint()
        applied.append(target.applied)
        assert not fake_kube.fake.faults.armed  # cleared at the end
    assert applied[0] == applied[1] == list(schedule.faults)


def test_overlapping_reconciles_of_one_key_are_reported_and_sequential_ones_are_not() -> None:
    records = [
        ReconcileRecord("ns/a", "1", 0.0, 1.0),
        ReconcileRecord("ns/a", "1", 1.0, 2.0),
        ReconcileRecord("ns/b", "1", 0.5, 3.0),
        ReconcileRecord("ns/b", "2", 2.5, 4.0),
    ]
    (violation,) = overlapping_reconciles(records)
    assert violation.startswith("ns/b: reconcile in incarnation 2 began at 2.500")


def test_cache_mismatches_and_touched_report_each_difference() -> None:
    assert cache_mismatches({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "5", "d": "4"}) == [
        "c: cached but gone from the server",
        "d: on the server but not cached",
        "b: cache at resourceVersion 2, server at 5",
    ]

    def obj(uid: str, rv: str) -> dict[str, Any]:
        return {"metadata": {"uid": uid, "resourceVersion": rv}}

    before = {"x": obj("u1", "1"), "y": obj("u2", "1"), "z": obj("u3", "1")}
    after = {"x": obj("u1", "1"), "y": obj("u2", "9"), "z": obj("u4", "2")}
    assert touched(before, after) == ["y: not ours, but modified", "z: not ours, but deleted or replaced"]


def test_a_failed_check_names_the_seed_and_the_schedule_to_replay() -> None:
    schedule = Schedule.from_seed(1234, faults=2)
    check(schedule, {"converged": [], "untouched": []})
    with pytest.raises(ChaosFailure, match=r"chaos seed 1234 broke converged") as failure:
        check(schedule, {"converged": ["ns/a: missing"], "untouched": []})
    assert "Schedule.from_seed(1234" in str(failure.value)
    assert schedule.faults[0].describe() in str(failure.value)


# --------------------------------------------------------------------------- running an example


@dataclass
class ControllerProcess:
    """A manager run in its own cancel scope: ``kill`` cancels it (no graceful stop), ``start`` anew."""

    kube: KubeTarget
    build: Callable[[Manager, ReconcileLog, str], None]
    namespaced: bool = True
    log: ReconcileLog = field(default_factory=ReconcileLog)
    incarnations: int = 0
    manager: Manager | None = None
    _scope: anyio.CancelScope | None = None
    _done: anyio.Event | None = None
    _tg: Any = None

    async def start(self) -> None:
        self.incarnations += 1
        api_client = await load_config(self.kube.kubeconfig)
        manager = Manager(
            api_client,
            namespace=self.kube.namespace if self.namespaced else None,
            health_bind="127.0.0.1:0",
            metrics_bind=None,
            handle_signals=False,
            cache_sync_timeout=60,
            graceful_shutdown_timeout=5,
            field_manager=FIELD_MANAGER,
        )
        self.build(manager, self.log, str(self.incarnations))
        self.manager = manager
        scope = self._scope = anyio.CancelScope()
        done = self._done = anyio.Event()

        async def run() -> None:
            try:
                with scope:
                    await manager.run()
            finally:
                with anyio.CancelScope(shield=True):
                    await api_client.close()
                done.set()

        self._tg.start_soon(run)

    async def kill(self) -> None:
        if self._scope is not None and self._done is not None:
            self._scope.cancel()
            await self._done.wait()

    async def restart(self) -> None:
        await self.kill()
        await self.start()


@contextlib.asynccontextmanager
async def controller_process(
    kube: KubeTarget, build: Callable[[Manager, ReconcileLog, str], None], *, namespaced: bool
) -> AsyncIterator[ControllerProcess]:
    async with anyio.create_task_group() as tg:
        process = ControllerProcess(kube, build, namespaced)
        process._tg = tg
        await process.start()
        try:
            yield process
        finally:
            await process.kill()


async def retried(call: Callable[[], Awaitable[Any]]) -> None:
    """A workload write that must happen despite faults (a lost answer may mean it happened)."""
    for _ in range(200):
        try:
            await call()
        except (AlreadyExists, NotFound):
            return
        except CALL_FAILURES:
            await anyio.sleep(0.1)
        else:
            return
    raise AssertionError("a workload write never succeeded")


async def cache_vs_server(process: ControllerProcess, api: Client) -> list[str]:
    """The running manager's informers against the server (key -> resourceVersion)."""
    assert process.manager is not None
    out = []
    for informer in process.manager.informers.informers:
        config = informer.config
        server = await api.list(informer.resource, config.namespace, label_selector=config.label_selector)
        cache = {object_key(o): o["metadata"]["resourceVersion"] for o in informer.store.list()}
        found = {object_key(o): o["metadata"]["resourceVersion"] for o in server}
        out += [f"{informer.resource}: {m}" for m in cache_mismatches(cache, found)]
    return out


async def foreign(api: Client, namespace: str, resources: list[Resource]) -> dict[str, dict[str, Any]]:
    objects = {}
    for resource in resources:
        for obj in await api.list(resource, namespace, label_selector="chaos-decoy=true"):
            objects[f"{resource}/{object_key(obj)}"] = obj
    return objects


async def run_under_chaos(
    kube: KubeTarget,
    schedule: Schedule,
    *,
    build: Callable[[Manager, ReconcileLog, str], None],
    workload: Callable[[Client], Coroutine[Any, Any, None]],
    desired: Callable[[Client], Awaitable[list[str]]],
    decoys: list[tuple[Resource, dict[str, Any]]],
    namespaced: bool = True,
) -> ControllerProcess:
    api = Client(kube.api_client)
    for resource, obj in decoys:
        await api.create(resource, obj, namespace=kube.namespace)
    kinds = sorted({r for r, _ in decoys}, key=str)
    before = await foreign(api, kube.namespace, kinds)

    async def restart_api_server(down: float) -> None:
        await kube.restart_api_server(down_seconds=down)

    async with controller_process(kube, build, namespaced=namespaced) as process:
        target = ChaosTarget(
            faults=kube.fake.faults if kube.fake is not None else None,
            restart_api_server=restart_api_server,
            restart_controller=process.restart,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(workload, api)
            await run_schedule(schedule, target)

        async def converged() -> bool:
            problems = await desired(api) + await cache_vs_server(process, api)
            assert not problems, problems
            return True

        violations: dict[str, list[str]] = {}
        try:
            await eventually(converged, timeout=CONVERGE_BOUND, interval=0.25, message="converged")
        except AssertionError as exc:
            violations["converged"] = [str(exc)]
        violations["one reconcile per key"] = overlapping_reconciles(process.log.records)
        violations["nothing foreign touched"] = touched(before, await foreign(api, kube.namespace, kinds))
        check(schedule, violations)
    return process


# --------------------------------------------------------------------------- the Website example


# --8<-- [start:build]
def build_website(manager: Manager, log: ReconcileLog, incarnation: str) -> None:
    recorder = manager.event_recorder("website-controller")
    shipped = website_controller(manager.client, recorder, conflict_retry_seconds=0.5)
    manager.add(
        Controller(
            shipped.name,
            for_=shipped.for_,
            reconciler=log.wrap(shipped.reconciler, incarnation=incarnation),
            owns=shipped.owns,
            predicates=shipped.predicates,
            max_concurrent_reconciles=shipped.max_concurrent_reconciles,
        )
    )


# --8<-- [end:build]


def website_workload(namespace: str) -> Callable[[Client], Coroutine[Any, Any, None]]:
    async def run(api: Client) -> None:
        for i in range(5):
            body = website(f"site{i}", namespace)
            await retried(functools.partial(api.create, WEBSITES, body, namespace=namespace))
            await anyio.sleep(0.3)
        for i in (0, 1):
            change = {"spec": {"replicas": 3}}
            await retried(functools.partial(api.patch, WEBSITES, f"site{i}", change, namespace=namespace))
            await anyio.sleep(0.3)
        await retried(lambda: api.delete(WEBSITES, "site4", namespace=namespace))

    return run


def website_desired(namespace: str) -> Callable[[Client], Awaitable[list[str]]]:
    async def check_all(api: Client) -> list[str]:
        problems = []
        sites = await api.list(WEBSITES, namespace)
        if sorted(s["metadata"]["name"] for s in sites) != [f"site{i}" for i in range(4)]:
            problems.append(f"websites: {sorted(s['metadata']['name'] for s in sites)}")
        for site in sites:
            name = site["metadata"]["name"]
            for resource, want in (
                (DEPLOYMENTS, desired_deployment(Website.from_object(site))),
                (SERVICES, desired_service(Website.from_object(site))),
            ):
                try:
                    child = await api.get(resource, child_name(name), namespace)
                except NotFound:
                    problems.append(f"{name}: no {resource.kind}")
                    continue
                if not covers(child, want):
                    problems.append(f"{name}: {resource.kind} differs from the desired state")
        return problems

    return check_all


def website_decoys() -> list[tuple[Resource, dict[str, Any]]]:
    labels = {"chaos-decoy": "true", "app": "website"}
    return [
        (CONFIGMAPS, {"metadata": {"name": "decoy", "labels": labels}, "data": {"a": "b"}}),
        (
            SERVICES,
            {
                "metadata": {"name": "decoy-site", "labels": labels},
                "spec": {"ports": [{"port": 81}], "selector": {"app": "website"}},
            },
        ),
    ]


# --8<-- [start:website]
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_website_example_holds_every_invariant_under_a_seeded_schedule(
    fake_kube: KubeTarget, seed: int
) -> None:
    await install_website_crd(Client(fake_kube.api_client))
    schedule = Schedule.from_seed(seed, duration=5.0, faults=8)
    ns = fake_kube.namespace
    process = await run_under_chaos(
        fake_kube,
        schedule,
        build=build_website,
        workload=website_workload(ns),
        desired=website_desired(ns),
        decoys=website_decoys(),
    )
    assert process.log.keys() >= {f"{ns}/site{i}" for i in range(4)}


# --8<-- [end:website]


@pytest.mark.real_only
async def test_the_website_example_survives_an_apiserver_restart_and_a_controller_kill(
    kube: KubeTarget,
) -> None:
    await install_website_crd(Client(kube.api_client))
    schedule = Schedule.from_seed(
        5, duration=6.0, faults=2, kinds=["restart_api_server", "restart_controller"]
    )
    ns = kube.namespace
    await run_under_chaos(
        kube,
        schedule,
        build=build_website,
        workload=website_workload(ns),
        desired=website_desired(ns),
        decoys=website_decoys(),
    )


# --------------------------------------------------------------------------- the User example


def build_user(kube: KubeTarget) -> Callable[[Manager, ReconcileLog, str], None]:
    def build(manager: Manager, log: ReconcileLog, incarnation: str) -> None:
        user, namespaces = users.user_controllers(
            manager.client,
            manager.informers.api_client,
            manager.event_recorder("user-controller"),
            namespace=kube.namespace,
            resync_seconds=1.0,
        )
        for shipped in (user, namespaces):
            manager.add(
                Controller(
                    shipped.name,
                    for_=shipped.for_,
                    reconciler=log.wrap(shipped.reconciler, incarnation=incarnation),
                    owns=shipped.owns,
                    watches=shipped.watches,
                    predicates=shipped.predicates,
                    max_concurrent_reconciles=shipped.max_concurrent_reconciles,
                )
            )

    return build


def user_workload(namespace: str) -> Callable[[Client], Coroutine[Any, Any, None]]:
    async def run(api: Client) -> None:
        for i in range(4):
            body = user_body(f"user{i}", namespace, group=f"team{i % 2}")
            await retried(functools.partial(api.create, users.USERS, body, namespace=namespace))
            await anyio.sleep(0.3)
        change = {"spec": {"email": "moved@kiamol.net"}}
        await retried(functools.partial(api.patch, users.USERS, "user0", change, namespace=namespace))
        await retried(functools.partial(api.delete, users.USERS, "user3", namespace=namespace))

    return run


def user_desired(namespace: str) -> Callable[[Client], Awaitable[list[str]]]:
    async def check_all(api: Client) -> list[str]:
        problems = []
        found = await api.list(users.USERS, namespace)
        if sorted(u["metadata"]["name"] for u in found) != ["user0", "user1", "user2"]:
            problems.append(f"users: {sorted(u['metadata']['name'] for u in found)}")
        for item in found:
            name = item["metadata"]["name"]
            if users.FINALIZER not in (item["metadata"].get("finalizers") or []):
                problems.append(f"{name}: no finalizer")
            want = users.desired_service_account(User.from_object(item))
            try:
                account = await api.get(SERVICEACCOUNTS, name, want["metadata"]["namespace"])
            except NotFound:
                problems.append(f"{name}: no ServiceAccount")
                continue
            annotations = account["metadata"].get("annotations") or {}
            if annotations.get(users.EMAIL_ANNOTATION) != item["spec"]["email"]:
                problems.append(f"{name}: ServiceAccount email {annotations.get(users.EMAIL_ANNOTATION)}")
        with contextlib.suppress(NotFound):
            await api.get(SERVICEACCOUNTS, "user3", users.group_namespace("team1"))
            problems.append("user3: deleted, but its ServiceAccount remains")
        return problems

    return check_all


@pytest.mark.parametrize("seed", [11, 12])
async def test_the_user_example_holds_every_invariant_under_a_seeded_schedule(
    fake_kube: KubeTarget, seed: int
) -> None:
    await install_user_crd(Client(fake_kube.api_client))
    schedule = Schedule.from_seed(seed, duration=5.0, faults=8)
    ns = fake_kube.namespace
    decoy = {"metadata": {"name": "decoy", "labels": {"chaos-decoy": "true"}}, "data": {"a": "b"}}
    await run_under_chaos(
        fake_kube,
        schedule,
        build=build_user(fake_kube),
        workload=user_workload(ns),
        desired=user_desired(ns),
        decoys=[(CONFIGMAPS, decoy)],
        namespaced=False,
    )
