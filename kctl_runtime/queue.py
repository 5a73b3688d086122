"""The work queue: client-go's contract, misuse-proof, for asyncio (via anyio).

Contract
--------
A :class:`WorkQueue` holds *keys* (hashable items, usually a namespace/name request) that need work.

* **Fair** -- items are handed out in the order they were first added (FIFO).
* **Stingy** -- an item added several times before a worker takes it is handed out once.
* **Exclusive** -- an item is never handed to two workers at once. An item added while it is being
  processed is remembered and queued again (at the back) when that processing ends, so the latest
  state is always looked at once more, after the change that triggered the add.
* **Done cannot be forgotten** -- :meth:`WorkQueue.get` is an async context manager::

      async with queue.get() as key:
          await reconcile(key)

  The item is marked done when the block exits, also when it raises or is cancelled. An exception
  is the body's business (a controller calls ``add_rate_limited``); a *cancelled* body did not
  finish its work, so the item is queued again (unless the queue is shutting down).
* **Delays** -- :meth:`WorkQueue.add_after` queues an item once ``delay`` seconds of the injected
  :class:`~kctl_runtime.clock.Clock` have passed; for an item already waiting, the earliest deadline
  wins. A delayed add does not cancel and is not cancelled by a plain :meth:`WorkQueue.add`: the item
  may be processed now and once more when the deadline passes (the level-based reading of "look at it
  again later"). :meth:`WorkQueue.add_rate_limited` is ``add_after(item, rate_limiter.when(item))``.
* **Sync where it cannot block** -- ``add``, ``add_after``, ``add_rate_limited``, ``forget`` and
  ``shut_down`` are plain methods, safe to call from informer handlers; only ``get`` and
  ``shut_down_with_drain`` are async.
* **Scheduling points** -- ``get()`` suspends when the queue is empty; when a key is ready it returns
  it at once, yielding to the event loop (a full anyio checkpoint) on every 16th take, so a worker
  whose body never awaits still lets other tasks run and sees its cancellation.

Who waits for delayed items (no background task)
------------------------------------------------
The queue owns no task and needs no ``async with``. Delayed items live in a heap; any operation
moves the due ones into the queue. While workers are waiting in ``get()``, one of them (the *timer*)
sleeps on ``clock.sleep`` until the earliest deadline and is woken early (its cancel scope is
cancelled) when an earlier deadline or a new item arrives. Without waiting workers nothing needs to
wake up: the next ``get()`` or ``len()`` sees the due items.

Shutdown
--------
:meth:`WorkQueue.shut_down` stops the queue at once: later adds are ignored; queued, delayed and
re-added items are **discarded** (not handed out); every waiting and future ``get()`` raises
:class:`ShutDown`. Items already being processed finish normally (their ``async with`` blocks run to
the end and are marked done). :meth:`WorkQueue.shut_down_with_drain` does the same and then waits
until every in-flight item is done. This differs from client-go, whose ``Get`` keeps handing out
queued items after ``ShutDown``: reconciliation is level-based, so a discarded key is found again by
the next process's initial list, and a controller that is stopping (or has lost its leader lease)
must not start new work.

Not guaranteed
--------------
* Not thread-safe: use a queue from one event loop (the one its ``get()`` callers run on).
* No ordering between delayed items and items added directly, beyond deadline order among delayed
  ones (equal deadlines keep insertion order).
* Workers waiting in ``get()`` are served roughly, not strictly, in arrival order.
* Calling ``shut_down_with_drain`` from inside a ``get()`` block of the same queue waits forever
  (the item it holds is in flight).

Metrics
-------
Queues with a ``name`` export, in :data:`kctl_runtime.metrics.REGISTRY` with label ``name``, the
metrics of client-go/controller-runtime: ``workqueue_depth`` (items waiting to be handed out,
including those re-added while processing), ``workqueue_adds_total``,
``workqueue_queue_duration_seconds`` and ``workqueue_work_duration_seconds`` (histograms, buckets
1e-8 s .. 1e3 s by decades), ``workqueue_unfinished_work_seconds``,
``workqueue_longest_running_processor_seconds`` and ``workqueue_retries_total`` (every
``add_after``/``add_rate_limited`` call). They are computed at scrape time from counters the queue
keeps (no per-operation lock, no updater task), so the unfinished-work gauges are exact at the
moment of the scrape. Queues sharing a name share series (gauges sum over live queues). Queues without
a name export nothing.
"""

from __future__ import annotations

import heapq
import time
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import anyio
from anyio.lowlevel import checkpoint
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.ratelimit import RateLimiter, default_controller_rate_limiter

if TYPE_CHECKING:
    from anyio import CancelScope

__all__ = ["ShutDown", "WorkQueue"]

T = TypeVar("T", bound=Hashable)


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue has been shut down."""


class WorkQueue(Generic[T]):
    """A deduplicating, delaying, rate-limited work queue (see the module docstring for the contract).

    Args:
        name: exports the ``workqueue_*`` metrics under this ``name`` label; ``None`` exports none.
        rate_limiter: used by :meth:`add_rate_limited`, :meth:`forget` and :meth:`num_requeues`
            (default: :func:`~kctl_runtime.ratelimit.default_controller_rate_limiter` on ``clock``).
        clock: the time source for delays and metrics (default: the system clock).
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        rate_limiter: RateLimiter[T] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock: Clock = clock or SystemClock()
        # the hot path reads the clock up to three times per item: skip the method call when we can
        self._now: Callable[[], float] = (
            time.monotonic if type(self._clock) is SystemClock else self._clock.monotonic
        )
        self._rate_limiter: RateLimiter[T] = (
            rate_limiter if rate_limiter is not None else default_controller_rate_limiter(self._clock)
        )
        self._queue: deque[T] = deque()
        # items to hand out: queued ones, and ones re-added while being processed
        self._dirty: set[T] = set()
        # item -> processing start (clock.monotonic(); 0.0 when the queue has no metrics)
        self._processing: dict[T, float] = {}
        # delayed items: heap of (ready_at, seq, item); _delayed: item -> (ready_at, seq) of its live entry
        self._heap: list[tuple[float, int, T]] = []
        self._delayed: dict[T, tuple[float, int]] = {}
        self._seq = 0
        # parked get() callers, woken one per available item
        self._getters: deque[anyio.Event] = deque()
        # the get() caller sleeping until the earliest deadline, if any
        self._timer: CancelScope | None = None
        self._timer_deadline = 0.0
        self._shutting_down = False
        self._takes = 0
        self._drained: anyio.Event | None = None
        self._metrics: _QueueMetrics | None = None
        self._added_at: dict[T, float] = {}
        if name is not None:
            self._metrics = _QueueMetrics.for_queue(name, self)

    # ------------------------------------------------------------------ adding

    def add(self, item: T) -> None:
        """Queue ``item`` unless it is already queued (or the queue is shutting down)."""
        if self._shutting_down or item in self._dirty:
            return
        metrics = self._metrics
        if metrics is not None:
            metrics.adds += 1
            if item not in self._added_at:
                self._added_at[item] = self._now()
        self._dirty.add(item)
        if item in self._processing:
            return  # queued again by _done()
        self._queue.append(item)
        if self._getters:
            self._getters.popleft().set()
        elif self._timer is not None:
            self._timer.cancel()

    def add_after(self, item: T, delay: float) -> None:
        """Queue ``item`` once ``delay`` seconds have passed; an earlier pending deadline for it wins."""
        if self._shutting_down:
            return
        if self._metrics is not None:
            self._metrics.retries += 1
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._now() + delay
        current = self._delayed.get(item)
        if current is not None and current[0] <= ready_at:
            return
        self._seq += 1
        self._delayed[item] = (ready_at, self._seq)
        heapq.heappush(self._heap, (ready_at, self._seq, item))
        if self._heap[0][1] != self._seq:
            return  # not the earliest deadline: whoever waits for the earlier one comes back
        if self._timer is not None:
            if ready_at < self._timer_deadline:
                self._timer.cancel()
        elif self._getters:
            self._getters.popleft().set()  # it will become the timer

    def add_rate_limited(self, item: T) -> None:
        """``add_after(item, rate_limiter.when(item))``: records a failure and queues after the backoff."""
        if self._shutting_down:
            return
        self.add_after(item, self._rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Clear the rate limiter's failure history for ``item`` (does not remove it from the queue)."""
        self._rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """How many rate-limited retries are on record for ``item``."""
        return self._rate_limiter.num_requeues(item)

    # ------------------------------------------------------------------ taking

    def get(self) -> AbstractAsyncContextManager[T]:
        """Wait for an item; ``async with queue.get() as item:`` -- done is marked when the block exits.

        Raises :class:`ShutDown` (from ``async with``) once the queue is shut down.
        """
        return _Lease(self)

    async def _take(self) -> T:
        # A scheduling point on every 16th take: a full checkpoint per take would cost a loop round
        # trip per key (most of the hot path), yet a worker whose body never awaits must still let
        # other tasks run and see its cancellation. Taking from an empty queue always suspends.
        self._takes += 1
        if self._takes & 15 == 0:
            await checkpoint()
        if self._heap and self._heap[0][0] <= self._now():
            self._promote_due()
        if self._queue:
            return self._start(self._queue.popleft())
        return await self._take_slow()

    async def _take_slow(self) -> T:
        while True:
            if self._shutting_down:
                raise ShutDown
            self._promote_due()
            if self._queue:
                return self._start(self._queue.popleft())
            # Invariant: while delayed items exist and getters are parked, a timer exists or a parked
            # getter has been woken to become one (add_after wakes one when there is no timer, a
            # promoted item wakes one, and a cancelled timer or woken getter passes its role on).
            if self._heap and self._timer is None:
                await self._sleep_until_next_deadline()
                continue
            event = anyio.Event()
            self._getters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():
                    self._pass_on_wakeup()
                else:
                    self._getters.remove(event)
                raise

    async def _sleep_until_next_deadline(self) -> None:
        deadline = self._heap[0][0]
        self._timer_deadline = deadline
        try:
            # add()/add_after() cancel this scope to wake us early; the scope swallows that cancel
            with anyio.CancelScope() as scope:
                self._timer = scope
                await self._clock.sleep(deadline - self._now())
        except BaseException:
            # cancelled from outside: hand the timer role to another waiting getter
            self._timer = None
            self._pass_on_wakeup()
            raise
        self._timer = None

    def _pass_on_wakeup(self) -> None:
        """A woken getter (or the timer) is leaving without taking an item: wake someone else."""
        if (self._queue or (self._heap and self._timer is None)) and self._getters:
            self._getters.popleft().set()
        elif self._queue and self._timer is not None:
            self._timer.cancel()

    def _promote_due(self) -> None:
        heap = self._heap
        if not heap:
            return
        now = self._now()
        while heap and heap[0][0] <= now:
            _, seq, item = heapq.heappop(heap)
            current = self._delayed.get(item)
            if current is None or current[1] != seq:
                continue  # superseded by an earlier deadline
            del self._delayed[item]
            self.add(item)

    def _start(self, item: T) -> T:
        self._dirty.discard(item)
        metrics = self._metrics
        if metrics is None:
            self._processing[item] = 0.0
            return item
        now = self._now()
        self._processing[item] = now
        added = self._added_at.pop(item, None)
        if added is not None:
            metrics.queue_duration.observe(now - added)
        return item

    def _done(self, item: T) -> None:
        started = self._processing.pop(item)
        metrics = self._metrics
        if metrics is not None:
            metrics.work_duration.observe(self._now() - started)
        if item in self._dirty:
            self._queue.append(item)
            if self._getters:
                self._getters.popleft().set()
            elif self._timer is not None:
                self._timer.cancel()
        elif not self._processing and self._drained is not None:
            self._drained.set()

    # ------------------------------------------------------------------ shutdown

    def shut_down(self) -> None:
        """Stop: ignore further adds, discard queued and delayed items, make every ``get()`` raise
        :class:`ShutDown`. In-flight items finish normally. Idempotent."""
        if self._shutting_down:
            return
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._heap.clear()
        self._delayed.clear()
        self._added_at.clear()
        while self._getters:
            self._getters.popleft().set()
        if self._timer is not None:
            self._timer.cancel()

    async def shut_down_with_drain(self) -> None:
        """:meth:`shut_down`, then wait until every in-flight item is done."""
        self.shut_down()
        while self._processing:
            if self._drained is None or self._drained.is_set():
                self._drained = anyio.Event()
            await self._drained.wait()

    @property
    def shutting_down(self) -> bool:
        """Whether :meth:`shut_down` has been called."""
        return self._shutting_down

    # ------------------------------------------------------------------ introspection

    def __len__(self) -> int:
        """Items queued and ready to hand out (not those being processed, not those still delayed)."""
        if self._heap and self._heap[0][0] <= self._now():
            self._promote_due()
        return len(self._queue)

    def processing(self) -> int:
        """Items handed out and not yet done."""
        return len(self._processing)

    def __repr__(self) -> str:
        return (
            f"WorkQueue(name={self.name!r}, queued={len(self._queue)}, processing={len(self._processing)}, "
            f"delayed={len(self._delayed)}, shutting_down={self._shutting_down})"
        )


class _Lease(Generic[T]):
    """What ``get()`` returns: takes an item on enter, marks it done on exit."""

    __slots__ = ("_item", "_queue", "_state")

    def __init__(self, queue: WorkQueue[T]) -> None:
        self._queue = queue
        self._state = 0  # 0 new, 1 holding an item, 2 finished

    async def __aenter__(self) -> T:
        if self._state != 0:
            raise RuntimeError("a queue.get() context can be entered once; call get() again")
        self._item = await self._queue._take()
        self._state = 1
        return self._item

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == 1:
            self._state = 2
            if exc_type is not None and issubclass(exc_type, anyio.get_cancelled_exc_class()):
                # the work was cut short, not finished: look at the key again (ignored after shut_down)
                self._queue.add(self._item)
            self._queue._done(self._item)


# ---------------------------------------------------------------------- metrics

# controller-runtime: prometheus.ExponentialBuckets(10e-9, 10, 12)
_BUCKETS: tuple[float, ...] = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
# the `le` labels as prometheus-client formats them
_BUCKET_LABELS: tuple[str, ...] = (
    *("1e-08", "1e-07", "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1"),
    *("1.0", "10.0", "100.0", "1000.0", "+Inf"),
)


class _Histogram:
    """A lock-free histogram for one event loop; exported by the collector."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(_BUCKETS, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for label, count in zip(_BUCKET_LABELS, list(self.counts), strict=True):
            running += count
            out.append((label, float(running)))
        return out


class _QueueMetrics:
    """The series of one ``name`` label value, shared by every queue of that name."""

    __slots__ = ("adds", "queue_duration", "queues", "retries", "work_duration")
    by_name: ClassVar[dict[str, _QueueMetrics]] = {}

    def __init__(self) -> None:
        self.adds = 0
        self.retries = 0
        self.queue_duration = _Histogram()
        self.work_duration = _Histogram()
        self.queues: list[weakref.ref[WorkQueue[Any]]] = []

    @classmethod
    def for_queue(cls, name: str, queue: WorkQueue[Any]) -> _QueueMetrics:
        metrics = cls.by_name.get(name)
        if metrics is None:
            metrics = cls.by_name[name] = cls()
        metrics.queues = [ref for ref in metrics.queues if ref() is not None]
        metrics.queues.append(weakref.ref(queue))
        return metrics

    def live_queues(self) -> Iterator[WorkQueue[Any]]:
        for ref in tuple(self.queues):
            queue = ref()
            if queue is not None:
                yield queue


class _WorkQueueCollector(Collector):
    """Builds the ``workqueue_*`` families from the queues' own counters at scrape time."""

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=["name"])
        adds = CounterMetricFamily(
            "workqueue_adds", "Total number of adds handled by workqueue", labels=["name"]
        )
        latency = HistogramMetricFamily(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels=["name"],
        )
        work = HistogramMetricFamily(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            labels=["name"],
        )
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by "
            "work_duration. Large values indicate stuck threads. One can deduce the number of stuck "
            "threads by observing the rate at which this increases.",
            labels=["name"],
        )
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels=["name"],
        )
        retries = CounterMetricFamily(
            "workqueue_retries", "Total number of retries handled by workqueue", labels=["name"]
        )
        for name, metrics in tuple(_QueueMetrics.by_name.items()):
            labels = [name]
            queue_depth = 0
            total_running = 0.0
            longest_running = 0.0
            for queue in metrics.live_queues():
                queue_depth += len(queue._dirty)
                starts = tuple(queue._processing.values())
                if starts:
                    now = queue._clock.monotonic()
                    running = [now - s for s in starts]
                    total_running += sum(running)
                    longest_running = max(longest_running, *running)
            depth.add_metric(labels, float(queue_depth))
            adds.add_metric(labels, float(metrics.adds))
            latency.add_metric(labels, metrics.queue_duration.buckets(), metrics.queue_duration.total)
            work.add_metric(labels, metrics.work_duration.buckets(), metrics.work_duration.total)
            unfinished.add_metric(labels, total_running)
            longest.add_metric(labels, longest_running)
            retries.add_metric(labels, float(metrics.retries))
        yield from (depth, adds, latency, work, unfinished, longest, retries)


REGISTRY.register(_WorkQueueCollector())
