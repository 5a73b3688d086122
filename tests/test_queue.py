"""Tests for kctl_runtime.queue: the client-go work queue contract, on a FakeClock where time matters."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable

import anyio
import pytest
from anyio.lowlevel import checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime.clock import FakeClock
from kctl_runtime.metrics import REGISTRY, sample_value
from kctl_runtime.queue import ShutDown, WorkQueue
from kctl_runtime.ratelimit import ItemExponentialFailureRateLimiter


async def settle(rounds: int = 20) -> None:
    """Let every runnable task run until it blocks (a bounded number of scheduler passes)."""
    for _ in range(rounds):
        await checkpoint()


async def take(queue: WorkQueue[str], into: list[str]) -> None:
    """Take one item, record it, mark it done."""
    async with queue.get() as item:
        into.append(item)


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------- ordering and dedup


async def test_queue_hands_out_items_in_the_order_they_were_added() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ["c", "a", "b", "d"]:
        queue.add(key)
    got: list[str] = []
    for _ in range(4):
        await take(queue, got)
    assert got == ["c", "a", "b", "d"]
    assert len(queue) == 0


async def test_an_item_added_twice_before_processing_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    got: list[str] = []
    await take(queue, got)
    await take(queue, got)
    assert got == ["a", "b"]
    assert len(queue) == 0


async def test_every_prefilled_key_is_processed_exactly_once_by_many_workers() -> None:
    queue: WorkQueue[int] = WorkQueue()
    for i in range(1000):
        queue.add(i)
    seen: list[int] = []

    async def worker() -> None:
        while True:
            try:
                async with queue.get() as item:
                    seen.append(item)
                    await checkpoint()
            except ShutDown:
                return
            if len(seen) == 1000:
                queue.shut_down()

    async with anyio.create_task_group() as tg:
        for _ in range(16):
            tg.start_soon(worker)
    assert sorted(seen) == list(range(1000))


# ---------------------------------------------------------------------------- processing


async def test_an_item_added_while_processing_is_queued_again_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    async with queue.get() as item:
        assert item == "a"
        queue.add("a")
        queue.add("a")
        # not handed out while it is being processed
        assert len(queue) == 0
        assert queue.processing() == 1
    assert len(queue) == 1
    assert queue.processing() == 0
    got: list[str] = []
    await take(queue, got)
    assert got == ["a"]
    assert len(queue) == 0


async def test_an_item_re_added_while_processing_goes_behind_items_queued_meanwhile() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    async with queue.get():
        queue.add("a")
        queue.add("b")
    got: list[str] = []
    await take(queue, got)
    await take(queue, got)
    assert got == ["b", "a"]


async def test_a_worker_waiting_in_get_does_not_receive_an_item_being_processed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        async with queue.get():
            tg.start_soon(take, queue, got)
            await settle()
            queue.add("a")
            await settle()
            assert got == []  # the second worker waits: "a" is in flight
        await settle()
        assert got == ["a"]


async def test_get_marks_the_item_done_even_when_the_body_raises() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")

    async def failing_reconcile() -> None:
        async with queue.get() as item:
            assert item == "a"
            queue.add("a")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_reconcile()
    assert queue.processing() == 0
    assert len(queue) == 1  # the re-add made while processing survived the exception


async def test_a_cancelled_worker_marks_its_item_done_and_queues_it_again() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    entered = anyio.Event()

    async def worker() -> None:
        async with queue.get():
            entered.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await entered.wait()
        assert queue.processing() == 1
        tg.cancel_scope.cancel()
    assert queue.processing() == 0
    assert len(queue) == 1  # its work was not finished: it is looked at again


async def test_an_item_whose_worker_is_cancelled_after_shut_down_is_not_queued_again() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    entered = anyio.Event()

    async def worker() -> None:
        async with queue.get():
            entered.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await entered.wait()
        queue.shut_down()
        tg.cancel_scope.cancel()
    assert queue.processing() == 0
    assert len(queue) == 0


async def test_a_get_context_cannot_be_entered_twice() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    lease = queue.get()
    async with lease:
        pass
    with pytest.raises(RuntimeError, match="entered once"):
        async with lease:
            pass
    assert len(queue) == 1


async def test_a_waiting_worker_is_woken_by_add() -> None:
    queue: WorkQueue[str] = WorkQueue()
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(take, queue, got)
        await settle()
        assert got == []
        queue.add("x")
        queue.add("y")
        queue.add("z")
    assert sorted(got) == ["x", "y", "z"]


async def test_a_cancelled_waiter_passes_its_wakeup_to_another_waiter() -> None:
    # asyncio's Task.cancel() can land on a waiter whose wake-up is already scheduled: the item it was
    # woken for must go to another waiter, not be stranded in the queue.
    queue: WorkQueue[str] = WorkQueue()
    got: list[str] = []
    first = asyncio.create_task(take(queue, got))
    await settle()
    second = asyncio.create_task(take(queue, got))
    await settle()
    queue.add("a")  # wakes the first waiter...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    with anyio.fail_after(5):  # a safety net against a hang, not a speed assertion
        await second
    assert got == ["a"]
    assert queue.processing() == 0


# ---------------------------------------------------------------------------- random interleavings


async def _exercise(ops: list[tuple[int, int, bool]], workers: int, seed: int) -> None:
    rng = random.Random(seed)
    queue: WorkQueue[int] = WorkQueue()
    clock = 0  # a logical clock: one tick per event
    holding: set[int] = set()
    last_add: dict[int, int] = {}
    last_start: dict[int, int] = {}
    requeue: set[int] = {key for key, _, again in ops if again}

    async def worker() -> None:
        nonlocal clock
        while True:
            try:
                async with queue.get() as key:
                    assert key not in holding, f"key {key} handed to two workers at once"
                    holding.add(key)
                    clock += 1
                    last_start[key] = clock
                    for _ in range(rng.randint(0, 3)):
                        await checkpoint()
                    if key in requeue and rng.random() < 0.3:
                        clock += 1
                        last_add[key] = clock
                        queue.add(key)  # a worker re-adding its own key
                    holding.discard(key)
            except ShutDown:
                return

    async def producer() -> None:
        nonlocal clock
        for key, pause, _ in ops:
            clock += 1
            last_add[key] = clock
            queue.add(key)
            for _ in range(pause):
                await checkpoint()

    with anyio.fail_after(30):  # a safety net against a hang, not a speed assertion
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
            await producer()
            while len(queue) or queue.processing():
                await checkpoint()
            queue.shut_down()
    # level-triggered guarantee: every add is followed by a processing start of that key
    for key, added in last_add.items():
        assert last_start.get(key, -1) > added, f"add of {key} at {added} was never processed"


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3), st.booleans()), min_size=1, max_size=150),
    workers=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_queue_never_hands_out_a_key_that_is_being_processed(
    ops: list[tuple[int, int, bool]], workers: int, seed: int
) -> None:
    anyio.run(_exercise, ops, workers, seed)


async def _exercise_delays(ops: list[tuple[str, int, float]], workers: int, seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    queue: WorkQueue[int] = WorkQueue(clock=clock)
    holding: set[int] = set()
    # a model of what justifies handing a key out: a plain add, or a delayed add that is due
    plain: set[int] = set()
    waiting: dict[int, float] = {}

    async def worker() -> None:
        while True:
            try:
                async with queue.get() as key:
                    assert key not in holding, f"key {key} handed to two workers at once"
                    now = clock.monotonic()
                    due = key in waiting and waiting[key] <= now
                    assert key in plain or due, f"key {key} handed out at {now} before its deadline"
                    plain.discard(key)
                    if due:
                        del waiting[key]
                    holding.add(key)
                    for _ in range(rng.randint(0, 3)):
                        await checkpoint()
                    holding.discard(key)
            except ShutDown:
                return

    with anyio.fail_after(30):  # a safety net against a hang, not a speed assertion
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
            for op, key, amount in ops:
                if op == "add":
                    plain.add(key)
                    queue.add(key)
                elif op == "after":
                    deadline = clock.monotonic() + amount
                    if key not in waiting or deadline < waiting[key]:
                        waiting[key] = deadline
                    queue.add_after(key, amount)
                elif op == "advance":
                    await clock.advance(amount)
                else:
                    await settle(int(amount))
                assert len(queue) >= 0  # len() promotes due keys too: exercise that path
            await clock.advance(100.0)  # every deadline has passed
            while len(queue) or queue.processing():
                await checkpoint()
            await settle()
            queue.shut_down()
    assert not plain, f"added but never handed out: {plain}"
    assert not waiting, f"delayed but never handed out: {waiting}"


_delay_ops = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 5), st.just(0.0)),
    st.tuples(st.just("after"), st.integers(0, 5), st.sampled_from([0.5, 1.0, 2.0, 5.0])),
    st.tuples(st.just("advance"), st.just(0), st.sampled_from([0.25, 0.5, 1.0, 3.0])),
    st.tuples(st.just("pause"), st.just(0), st.sampled_from([1.0, 3.0])),
)


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(_delay_ops, min_size=1, max_size=80), workers=st.integers(1, 5), seed=st.integers(0, 2**32)
)
def test_delayed_keys_are_never_handed_out_early_and_never_lost(
    ops: list[tuple[str, int, float]], workers: int, seed: int
) -> None:
    anyio.run(_exercise_delays, ops, workers, seed)


# ---------------------------------------------------------------------------- delays


async def test_a_delayed_add_is_handed_out_when_the_clock_reaches_the_deadline() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(take, queue, got)
        await settle()
        queue.add_after("a", 10.0)
        await settle()
        await clock.advance(9.9)
        await settle()
        assert got == []
        assert len(queue) == 0
        await clock.advance(0.1)
        await settle()
        assert got == ["a"]


async def test_the_earliest_deadline_wins_for_an_item_added_after_twice() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("late-then-early", 10.0)
    queue.add_after("late-then-early", 5.0)
    queue.add_after("early-then-late", 5.0)
    queue.add_after("early-then-late", 10.0)
    await clock.advance(5.0)
    assert len(queue) == 2
    got: list[str] = []
    await take(queue, got)
    await take(queue, got)
    assert got == ["late-then-early", "early-then-late"]
    await clock.advance(10.0)
    assert len(queue) == 0  # the later deadlines were dropped, not kept as second entries


async def test_delayed_items_come_out_in_deadline_order() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("c", 3.0)
    queue.add_after("a", 1.0)
    queue.add_after("b", 2.0)
    queue.add_after("a2", 1.0)
    await clock.advance(3.0)
    got: list[str] = []
    for _ in range(4):
        await take(queue, got)
    assert got == ["a", "a2", "b", "c"]


async def test_an_earlier_deadline_wakes_a_worker_sleeping_until_a_later_one() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        queue.add_after("late", 100.0)
        tg.start_soon(take, queue, got)
        await settle()  # the worker now sleeps until t+100
        queue.add_after("soon", 1.0)
        await settle()
        await clock.advance(1.0)
        await settle()
        assert got == ["soon"]
        tg.start_soon(take, queue, got)
        await settle()
        await clock.advance(99.0)
        await settle()
    assert got == ["soon", "late"]


async def test_a_plain_add_wakes_a_worker_sleeping_until_a_deadline() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        queue.add_after("later", 50.0)
        tg.start_soon(take, queue, got)
        await settle()
        queue.add("now")
        await settle()
        assert got == ["now"]
    # the delayed item is still pending and comes out on time
    await clock.advance(50.0)
    assert len(queue) == 1


async def test_a_plain_add_does_not_cancel_a_pending_delayed_add() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 5.0)
    queue.add("a")
    got: list[str] = []
    await take(queue, got)
    await clock.advance(5.0)
    await take(queue, got)
    assert got == ["a", "a"]


async def test_delayed_items_become_visible_without_a_waiting_worker() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 2.0)
    queue.add_after("b", 0.0)  # no delay: queued at once
    assert len(queue) == 1
    await clock.advance(2.0)
    assert len(queue) == 2


async def test_a_cancelled_timer_worker_hands_the_deadline_to_another_worker() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    got: list[str] = []
    timer = anyio.CancelScope()

    async def first() -> None:
        with timer:
            await take(queue, got)

    queue.add_after("a", 5.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await settle()  # the first worker sleeps until the deadline
        tg.start_soon(take, queue, got)
        await settle()  # the second waits for items
        timer.cancel()
        await settle()
        await clock.advance(5.0)
        await settle()
    assert got == ["a"]


async def test_while_the_worker_that_watched_a_deadline_is_busy_another_one_watches_the_next() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    release = anyio.Event()
    got: list[str] = []

    async def slow() -> None:
        async with queue.get() as item:
            got.append(item)
            await release.wait()

    queue.add_after("x", 5.0)
    queue.add_after("y", 10.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await settle()  # the first worker sleeps until t+5
        tg.start_soon(take, queue, got)
        await settle()  # the second waits for items
        await clock.advance(5.0)
        await settle()
        assert got == ["x"]  # the first worker is now busy with "x"
        await clock.advance(5.0)
        await settle()
        assert got == ["x", "y"]  # the second one noticed the next deadline
        release.set()


async def test_add_rate_limited_waits_as_long_as_the_rate_limiter_says() -> None:
    clock = FakeClock()
    limiter = ItemExponentialFailureRateLimiter(1.0, 100.0)
    queue: WorkQueue[str] = WorkQueue(clock=clock, rate_limiter=limiter)
    got: list[str] = []
    for expected_wait in [1.0, 2.0, 4.0]:
        queue.add_rate_limited("a")
        await clock.advance(expected_wait - 0.5)
        assert len(queue) == 0
        await clock.advance(0.5)
        assert len(queue) == 1
        await take(queue, got)
    assert queue.num_requeues("a") == 3
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")
    await clock.advance(1.0)
    assert len(queue) == 1


# ---------------------------------------------------------------------------- shutdown


async def test_shut_down_makes_waiting_and_later_gets_raise_shutdown() -> None:
    queue: WorkQueue[str] = WorkQueue()
    outcomes: list[str] = []

    async def waiter() -> None:
        try:
            async with queue.get():
                outcomes.append("item")
        except ShutDown:
            outcomes.append("shutdown")

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(waiter)
        await settle()
        queue.shut_down()
    assert outcomes == ["shutdown"] * 3
    assert queue.shutting_down
    with pytest.raises(ShutDown):
        async with queue.get():
            pass


async def test_shut_down_discards_pending_items_and_ignores_later_adds() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add("a")
    queue.add_after("b", 1.0)
    queue.shut_down()
    queue.add("c")
    queue.add_after("d", 1.0)
    queue.add_rate_limited("e")
    await clock.advance(2.0)
    assert len(queue) == 0
    assert queue.num_requeues("e") == 0
    with pytest.raises(ShutDown):
        async with queue.get():
            pass


async def test_a_worker_waiting_for_a_deadline_stops_at_shut_down() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 10.0)
    outcome: list[str] = []

    async def waiter() -> None:
        try:
            await take(queue, outcome)
        except ShutDown:
            outcome.append("shutdown")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await settle()
        queue.shut_down()
    assert outcome == ["shutdown"]


async def test_in_flight_items_finish_after_shut_down_and_their_re_adds_are_dropped() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    async with queue.get() as item:
        queue.shut_down()
        queue.add(item)
        assert queue.processing() == 1
    assert queue.processing() == 0
    assert len(queue) == 0


async def test_shut_down_with_drain_returns_only_after_in_flight_items_are_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    release = anyio.Event()
    events: list[str] = []

    async def worker() -> None:
        async with queue.get() as item:
            await release.wait()
            events.append(f"done {item}")

    async def drainer() -> None:
        await queue.shut_down_with_drain()
        events.append("drained")

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
        await settle()
        assert queue.processing() == 2
        tg.start_soon(drainer)
        await settle()
        assert events == []
        release.set()
    assert events[-1] == "drained"
    assert sorted(events[:2]) == ["done a", "done b"]


async def test_shut_down_with_drain_returns_at_once_when_nothing_is_in_flight() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    await queue.shut_down_with_drain()
    assert queue.shutting_down
    assert len(queue) == 0


# ---------------------------------------------------------------------------- metrics


def _samples(name: str, labels: dict[str, str]) -> float:
    value = sample_value(name, labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


async def test_named_queue_counts_adds_depth_and_retries() -> None:
    clock = FakeClock()
    name = unique()
    labels = {"name": name}
    queue: WorkQueue[str] = WorkQueue(name=name, clock=clock)
    queue.add("a")
    queue.add("a")  # deduplicated: not an add
    queue.add("b")
    assert _samples("workqueue_adds_total", labels) == 2
    assert _samples("workqueue_depth", labels) == 2
    queue.add_rate_limited("c")
    queue.add_after("d", 1.0)
    assert _samples("workqueue_retries_total", labels) == 2
    await clock.advance(10.0)  # both delayed items arrive: 2 more adds
    assert len(queue) == 4
    assert _samples("workqueue_adds_total", labels) == 4
    async with queue.get() as item:
        queue.add(item)  # re-added while processing: counted in depth, like client-go
        assert _samples("workqueue_depth", labels) == 4
    assert _samples("workqueue_depth", labels) == 4


async def test_named_queue_observes_queue_and_work_durations_on_the_clock() -> None:
    clock = FakeClock()
    name = unique()
    labels = {"name": name}
    queue: WorkQueue[str] = WorkQueue(name=name, clock=clock)
    queue.add("a")
    await clock.advance(2.0)
    async with queue.get():
        await clock.advance(30.0)
    assert _samples("workqueue_queue_duration_seconds_count", labels) == 1
    assert _samples("workqueue_queue_duration_seconds_sum", labels) == 2.0
    assert _samples("workqueue_queue_duration_seconds_bucket", {**labels, "le": "1.0"}) == 0
    assert _samples("workqueue_queue_duration_seconds_bucket", {**labels, "le": "10.0"}) == 1
    assert _samples("workqueue_queue_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 1
    assert _samples("workqueue_work_duration_seconds_sum", labels) == 30.0
    assert _samples("workqueue_work_duration_seconds_bucket", {**labels, "le": "10.0"}) == 0
    assert _samples("workqueue_work_duration_seconds_bucket", {**labels, "le": "100.0"}) == 1


async def test_unfinished_work_and_longest_processor_are_measured_at_scrape_time() -> None:
    clock = FakeClock()
    name = unique()
    labels = {"name": name}
    queue: WorkQueue[str] = WorkQueue(name=name, clock=clock)
    queue.add("a")
    queue.add("b")
    async with queue.get():
        await clock.advance(3.0)
        async with queue.get():
            await clock.advance(1.0)
            # "a" has run 4 s, "b" 1 s
            assert _samples("workqueue_unfinished_work_seconds", labels) == 5.0
            assert _samples("workqueue_longest_running_processor_seconds", labels) == 4.0
    assert _samples("workqueue_unfinished_work_seconds", labels) == 0.0
    assert _samples("workqueue_longest_running_processor_seconds", labels) == 0.0


async def test_metric_families_have_client_gos_types_and_controller_runtimes_buckets() -> None:
    name = unique()
    queue: WorkQueue[str] = WorkQueue(name=name, clock=FakeClock())
    queue.add("a")
    async with queue.get():
        pass
    types = {f.name: f.type for f in REGISTRY.collect() if f.name.startswith("workqueue_")}
    assert types == {
        "workqueue_depth": "gauge",
        "workqueue_adds": "counter",
        "workqueue_queue_duration_seconds": "histogram",
        "workqueue_work_duration_seconds": "histogram",
        "workqueue_unfinished_work_seconds": "gauge",
        "workqueue_longest_running_processor_seconds": "gauge",
        "workqueue_retries": "counter",
    }
    for metric in ("workqueue_queue_duration_seconds", "workqueue_work_duration_seconds"):
        [family] = [f for f in REGISTRY.collect() if f.name == metric]
        assert family.type == "histogram"
        bounds = [
            s.labels["le"] for s in family.samples if s.name.endswith("_bucket") and s.labels["name"] == name
        ]
        # prometheus.ExponentialBuckets(10e-9, 10, 12)
        assert bounds == [
            *("1e-08", "1e-07", "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1"),
            *("1.0", "10.0", "100.0", "1000.0", "+Inf"),
        ]


async def test_a_queue_without_a_name_exports_no_series() -> None:
    def series() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        return {
            (s.name, tuple(sorted(s.labels.items())))
            for family in REGISTRY.collect()
            if family.name.startswith("workqueue_")
            for s in family.samples
        }

    before = series()
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    async with queue.get():
        pass
    assert series() == before


# ---------------------------------------------------------------------------- helpers used above


async def test_settle_lets_a_woken_worker_run() -> None:
    # guards the helper the other tests rely on: without settling, the worker has not run yet
    queue: WorkQueue[str] = WorkQueue()
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(take, queue, got)
        queue.add("a")
        assert got == []
        await settle()
        assert got == ["a"]


# ---------------------------------------------------------------------------- the docs' worker loop


# --8<-- [start:worker]
async def worker(queue: WorkQueue[str], reconcile: Callable[[str], Awaitable[None]]) -> None:
    """The canonical worker: one key at a time; failures retried with backoff, successes forgotten."""
    while True:
        try:
            async with queue.get() as key:  # marks the key done when the block exits
                try:
                    await reconcile(key)
                except Exception:
                    queue.add_rate_limited(key)  # look again later, backing off per key
                else:
                    queue.forget(key)  # success: the next failure starts from the base delay
        except ShutDown:
            return


# --8<-- [end:worker]


async def test_the_docs_worker_retries_a_failing_key_with_backoff_and_forgets_it_on_success() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(1.0, 60.0))
    attempts: list[tuple[str, float]] = []

    async def reconcile(key: str) -> None:
        attempts.append((key, clock.monotonic()))
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, queue, reconcile)
        queue.add("default/web")
        await settle()
        await clock.advance(1.0)  # first retry after 1 s
        await settle()
        await clock.advance(2.0)  # second retry after 2 s more
        await settle()
        queue.shut_down()
    assert attempts == [("default/web", 1000.0), ("default/web", 1001.0), ("default/web", 1003.0)]
    assert queue.num_requeues("default/web") == 0


async def test_workers_whose_bodies_never_await_still_share_the_work() -> None:
    queue: WorkQueue[int] = WorkQueue()
    for i in range(320):
        queue.add(i)
    taken: dict[str, int] = {"a": 0, "b": 0}

    async def busy(name: str) -> None:
        while True:
            try:
                async with queue.get():
                    taken[name] += 1  # no await in the body
            except ShutDown:
                return
            if taken["a"] + taken["b"] == 320:
                queue.shut_down()

    async with anyio.create_task_group() as tg:
        tg.start_soon(busy, "a")
        tg.start_soon(busy, "b")
    assert taken["a"] + taken["b"] == 320
    assert taken["a"] > 0
    assert taken["b"] > 0
