"""Informers under faults: dropped watches, 410 storms, failing requests, silent streams.

These need the fake API server's fault injection (``fake_kube``); time-dependent behaviour runs on
a FakeClock, so nothing here asserts on wall-clock durations.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kctl_runtime.clock import FakeClock
from kctl_runtime.informer import Informer
from kctl_runtime.metrics import sample_value
from kctl_runtime.resource import CONFIGMAPS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually
from tests.test_informer import (
    OURS,
    Recorder,
    cache_state,
    call,
    create,
    delete,
    fast_config,
    informer_for,
    patch,
    running,
    server_state,
    synced,
)


def metric(name: str, informer: Informer, **labels: str) -> float:
    value = sample_value(name, {"resource": str(CONFIGMAPS), "informer": informer.name, **labels})
    return value or 0.0


def restarts(informer: Informer, reason: str) -> float:
    return metric("informer_watch_restarts_total", informer, reason=reason)


def faults(kube: KubeTarget) -> Any:
    assert kube.fake is not None
    return kube.fake.faults


async def caught_up(kube: KubeTarget, informer: Informer) -> None:
    async def same() -> bool:
        return cache_state(informer) == await server_state(kube)

    await eventually(same, timeout=20, message="cache equals the server")


async def parked(clock: FakeClock, injected: int, kube: KubeTarget) -> float:
    """Wait until ``injected`` faults were served and the informer sleeps on the clock; the delay."""

    async def sleeping() -> float:
        deadline = clock.next_deadline()
        if faults(kube).injected != injected or deadline is None:
            return 0.0
        delay = deadline - clock.monotonic()
        return delay if 0 < delay < 100 else 0.0  # watchdogs sleep far longer than any backoff

    return await eventually(sleeping, message=f"informer backing off after fault {injected}")


# --------------------------------------------------------------------------- drops and 410s


async def test_dropped_watches_resume_without_relisting_or_missing_events(fake_kube: KubeTarget) -> None:
    informer = informer_for(fake_kube)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        for round_ in range(6):
            await create(fake_kube, f"cm-{round_}")
            faults(fake_kube).close_watches()
            await patch(fake_kube, f"cm-{round_}", {"data": {"round": str(round_)}})
        await caught_up(fake_kube, informer)
        await eventually(lambda: _true(len(recorder.calls) == 12))
    assert metric("informer_relists_total", informer) == 0
    assert restarts(informer, "ended") >= 1
    assert sorted(recorder.of("add")) == sorted(f"{fake_kube.namespace}/cm-{i}" for i in range(6))
    assert len(recorder.of("update")) == 6
    assert recorder.violations == []


async def _true(value: bool) -> bool:
    return value


async def test_a_410_relists_and_delivers_what_changed_while_disconnected(fake_kube: KubeTarget) -> None:
    ns = fake_kube.namespace
    for name in ("gone", "changed", "same", "reborn"):
        await create(fake_kube, name, v="1")
    informer = informer_for(fake_kube)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        old_reborn = informer.store.get_object(ns, "reborn")
        assert old_reborn is not None
        # Keep the informer disconnected while the world changes, then lose the history.
        faults(fake_kube).fail_next(10_000, status=500, verb="watch")
        faults(fake_kube).close_watches()
        await eventually(lambda: _true(restarts(informer, "error") >= 1))
        await delete(fake_kube, "gone")
        await patch(fake_kube, "changed", {"data": {"v": "2"}})
        await delete(fake_kube, "reborn")
        await create(fake_kube, "reborn", v="2")
        await create(fake_kube, "new", v="1")
        faults(fake_kube).expire_history()
        faults(fake_kube).clear()
        await caught_up(fake_kube, informer)
        await eventually(lambda: _true(len(recorder.calls) == 4 + 5))
    assert metric("informer_relists_total", informer) == 1
    changes = recorder.calls[4:]
    assert sorted(call[:2] for call in changes) == [
        ("add", f"{ns}/new"),
        ("add", f"{ns}/reborn"),
        ("delete", f"{ns}/gone"),
        ("delete", f"{ns}/reborn"),
        ("update", f"{ns}/changed"),
    ]
    # The re-created object is a new incarnation: its old state is deleted, then the new one added.
    reborn = [call for call in changes if call[1] == f"{ns}/reborn"]
    assert reborn[0] == ("delete", f"{ns}/reborn", old_reborn["metadata"]["resourceVersion"])
    assert reborn[1][0] == "add"
    assert recorder.violations == []


async def test_410_storms_end_with_the_cache_equal_to_the_server(fake_kube: KubeTarget) -> None:
    informer = informer_for(fake_kube, config={"backoff_initial": 0.01, "backoff_max": 0.05})
    recorder = Recorder()
    informer.add_handler(recorder)
    rng = random.Random(7)
    rounds = 6
    async with running(informer):
        await synced(informer)
        for round_ in range(rounds):
            # Disconnect, change things, lose the history, reconnect: every resume is a 410.
            errors = restarts(informer, "error")
            faults(fake_kube).fail_next(10_000, status=500, verb="watch")
            faults(fake_kube).close_watches()
            await eventually(lambda errors=errors: _true(restarts(informer, "error") > errors))  # type: ignore[misc]
            existing = {key.split("/")[1] for key in await server_state(fake_kube)}
            for i in range(4):
                name = f"cm-{rng.randrange(6)}"
                if name not in existing:
                    await create(fake_kube, name)
                    existing.add(name)
                elif rng.random() < 0.4:
                    await delete(fake_kube, name)
                    existing.discard(name)
                else:
                    await patch(fake_kube, name, {"data": {"r": f"{round_}-{i}"}})
            faults(fake_kube).expire_history()
            faults(fake_kube).clear()
            await caught_up(fake_kube, informer)
    assert metric("informer_relists_total", informer) == rounds
    assert recorder.violations == []
    assert {k: o["metadata"]["resourceVersion"] for k, o in recorder.live.items()} == cache_state(informer)


# --------------------------------------------------------------------------- errors and backoff


async def test_failing_lists_back_off_on_the_clock_instead_of_hot_looping(fake_kube: KubeTarget) -> None:
    await create(fake_kube, "a")
    clock = FakeClock()
    informer = Informer(
        fake_kube.api_client,
        CONFIGMAPS,
        config=fast_config(
            namespace=fake_kube.namespace, label_selector=OURS, backoff_initial=0.8, backoff_max=30.0
        ),
        clock=clock,
    )
    faults(fake_kube).fail_next(4, status=500, verb="list")
    delays = []
    async with running(informer):
        for attempt in range(1, 5):
            delays.append(await parked(clock, attempt, fake_kube))
            # Parked on the fake clock: no request can happen until time moves.
            assert faults(fake_kube).injected == attempt
            await clock.advance(delays[-1])
        await synced(informer)
    assert len(informer.store) == 1
    for attempt, delay in enumerate(delays):
        base = 0.8 * 2**attempt
        assert base <= delay <= 2 * base


async def test_too_many_requests_waits_at_least_the_servers_retry_after(fake_kube: KubeTarget) -> None:
    clock = FakeClock()
    informer = informer_for(fake_kube, clock=clock)
    faults(fake_kube).fail_next(1, status=429, verb="list", retry_after=7)
    async with running(informer):
        delay = await parked(clock, 1, fake_kube)
        assert delay >= 7
        await clock.advance(delay)
        await synced(informer)


async def test_failing_watches_back_off_and_resume_without_relisting(fake_kube: KubeTarget) -> None:
    informer = informer_for(fake_kube)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        faults(fake_kube).fail_next(3, status=503, verb="watch")
        faults(fake_kube).close_watches()
        await create(fake_kube, "during-outage")
        await caught_up(fake_kube, informer)
    assert metric("informer_relists_total", informer) == 0
    assert recorder.of("add") == [f"{fake_kube.namespace}/during-outage"]


async def test_a_silent_watch_is_abandoned_after_the_inactivity_limit_and_resumed(
    fake_kube: KubeTarget,
) -> None:
    clock = FakeClock()
    informer = informer_for(fake_kube, clock=clock, config={"inactivity_timeout": 30.0, "bookmarks": False})
    recorder = Recorder()
    informer.add_handler(recorder)
    assert fake_kube.fake is not None
    hub = fake_kube.fake.cluster.hub
    async with running(informer):
        await synced(informer)
        # Nothing changes and bookmarks are off: the open watch stays silent.
        await eventually(lambda: _true(hub.open_watches == 1), message="the watch is open")
        await clock.advance(29)
        assert restarts(informer, "stalled") == 0
        await clock.advance(1)
        await eventually(lambda: _true(restarts(informer, "stalled") == 1))
        await create(fake_kube, "after")
        await eventually(lambda: _true(recorder.of("add") == [f"{fake_kube.namespace}/after"]))
    assert metric("informer_relists_total", informer) == 0


async def test_a_server_that_refuses_partial_metadata_is_handled_on_the_client(fake_kube: KubeTarget) -> None:
    await create(fake_kube, "a", x="secret-ish")
    informer = informer_for(fake_kube, config={"metadata_only": True})
    faults(fake_kube).fail_next(1, status=406, verb="list")
    async with running(informer):
        await synced(informer)
        await create(fake_kube, "b", x="2")
        await eventually(lambda: _true(len(informer.store) == 2))
    for obj in informer.store.list():
        assert obj["kind"] == "PartialObjectMetadata"
        assert "data" not in obj


async def test_a_server_that_rejects_streaming_lists_gets_paginated_lists(fake_kube: KubeTarget) -> None:
    await create(fake_kube, "a")
    informer = informer_for(fake_kube, config={"streaming_list": True})
    faults(fake_kube).fail_next(1, status=422, verb="watch", message="sendInitialEvents is forbidden")
    async with running(informer):
        await synced(informer)
        assert informer.store.keys() == [f"{fake_kube.namespace}/a"]
        assert faults(fake_kube).injected == 1
        await create(fake_kube, "b")
        await eventually(lambda: _true(len(informer.store) == 2))


async def test_a_410_while_streaming_relists_by_streaming_and_delivers_the_difference(
    fake_kube: KubeTarget,
) -> None:
    ns = fake_kube.namespace
    await create(fake_kube, "gone")
    await create(fake_kube, "kept")
    informer = informer_for(fake_kube, config={"streaming_list": True, "backoff_initial": 0.01})
    recorder = Recorder()
    informer.add_handler(recorder)
    async with running(informer):
        await synced(informer)
        faults(fake_kube).fail_next(10_000, status=500, verb="watch")
        faults(fake_kube).close_watches()
        await eventually(lambda: _true(restarts(informer, "error") >= 1))
        await delete(fake_kube, "gone")
        await create(fake_kube, "new")
        faults(fake_kube).expire_history()
        faults(fake_kube).clear()
        await caught_up(fake_kube, informer)
        await eventually(lambda: _true(len(recorder.calls) == 4))
    assert metric("informer_relists_total", informer) == 1
    assert sorted(c[:2] for c in recorder.calls[2:]) == [("add", f"{ns}/new"), ("delete", f"{ns}/gone")]
    assert recorder.violations == []


async def test_bookmarks_move_the_resume_point_past_changes_we_do_not_watch(fake_kube: KubeTarget) -> None:
    informer = informer_for(fake_kube, config={"label_selector": "app=watched", "timeout_range": (3, 3)})
    async with running(informer):
        await synced(informer)
        for i in range(3):
            await create(fake_kube, f"unwatched-{i}")
        latest = (await call(fake_kube, "GET", CONFIGMAPS.path(fake_kube.namespace)))["metadata"][
            "resourceVersion"
        ]

        async def advanced() -> bool:
            state = informer.watcher.state
            rv = getattr(state, "resource_version", "0")
            return int(rv) >= int(latest)

        await eventually(advanced, timeout=15, message="a bookmark advanced the resume version")
    assert metric("informer_events_received_total", informer, type="bookmark") >= 1
    assert len(informer.store) == 0


# --------------------------------------------------------------------------- the invariant


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "streaming"), [(1, False), (2, False), (3, True)])
async def test_random_writes_and_faults_keep_the_cache_equal_to_the_server_and_histories_consistent(
    fake_kube: KubeTarget, seed: int, streaming: bool
) -> None:
    """2000 random creates/updates/deletes over 40 names, interleaved with random faults.

    Faults: dropped watches; outages (watches fail while a few writes happen, then the history is
    lost, so the resume is a 410 and a relist must deliver the difference); lost history with a
    drop; failing lists and watches. At the end the cache equals the server's list (key and
    resourceVersion) and every handler saw a consistent history per object (see ``Recorder``).
    One run relists with streaming lists instead of paginated ones.
    """
    rng = random.Random(seed)
    settings = {"backoff_initial": 0.005, "backoff_max": 0.05, "streaming_list": streaming}
    informer = informer_for(fake_kube, config=settings)
    first, second = Recorder(), Recorder()
    informer.add_handler(first)
    names = [f"cm-{i}" for i in range(40)]
    exists: set[str] = set()
    stats = {"drop": 0, "outage": 0, "expire": 0, "fail": 0}
    outage_ends: int | None = None
    async with running(informer):
        await synced(informer)
        for op in range(2000):
            if op == 700:
                informer.add_handler(second)  # a late handler, mid-stream
            name = rng.choice(names)
            if name in exists:
                if rng.random() < 0.3:
                    await delete(fake_kube, name)
                    exists.discard(name)
                else:
                    await patch(fake_kube, name, {"data": {"op": str(op)}})
            else:
                await create(fake_kube, name, op=str(op))
                exists.add(name)
            if outage_ends is not None:
                if op >= outage_ends:
                    faults(fake_kube).expire_history()
                    faults(fake_kube).clear()
                    outage_ends = None
                    if stats["outage"] % 2:  # let half of the outages end before the next fault
                        await caught_up(fake_kube, informer)
                continue
            roll = rng.random()
            if roll < 0.02:
                faults(fake_kube).close_watches()
                stats["drop"] += 1
            elif roll < 0.035:
                faults(fake_kube).fail_next(10_000, status=500, verb="watch")
                faults(fake_kube).close_watches()
                outage_ends = op + rng.randint(1, 10)
                stats["outage"] += 1
            elif roll < 0.045:
                faults(fake_kube).expire_history()
                faults(fake_kube).close_watches()
                stats["expire"] += 1
            elif roll < 0.055:
                faults(fake_kube).fail_next(rng.randint(1, 3), status=500, verb=rng.choice(["list", "watch"]))
                faults(fake_kube).close_watches()
                stats["fail"] += 1
        faults(fake_kube).clear()
        await caught_up(fake_kube, informer)
    expected = cache_state(informer)
    for recorder in (first, second):
        assert recorder.violations == []
        assert {k: o["metadata"]["resourceVersion"] for k, o in recorder.live.items()} == expected
    assert all(stats.values()), stats
    # Outages end in a 410 and a relist that has to deliver what changed meanwhile (overlapping
    # faults may merge several outages into one disconnection).
    assert metric("informer_relists_total", informer) >= stats["outage"] // 2
