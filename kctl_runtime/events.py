"""Kubernetes Events (core/v1) with client-go's spam protection.

Contract
--------
:meth:`EventRecorder.event` is **sync, never blocks and never raises because of the API**: it stamps
the event with the clock's time and puts it on a bounded in-memory queue. :meth:`EventRecorder.run`
(run by the manager in its task group) sends queued events one at a time, in the order they were
recorded, after passing each through the correlator of client-go's ``tools/record``:

1. **Aggregation** -- events with the same source, object, type and reason but *different* messages
   are counted per 10-minute window (measured from the last such event); from the 10th distinct
   message on, they are folded into one Event whose message is
   ``"(combined from similar events): <latest message>"``.
2. **Deduplication** -- an event identical to one already sent (same source, object, field path,
   type, reason and message) is not created again: the existing Event is PATCHed with
   ``count + 1``, the new ``lastTimestamp`` and the message. If that Event is gone (404) it is
   created again under the same name.
3. **Spam filter** -- per source + object, a token bucket (``burst`` 25, refilled at ``qps`` 1/300,
   i.e. one event per 5 minutes) drops events once exhausted.

The caches behind 1--3 are LRUs of ``cache_size`` (4096) keys each, so memory stays bounded.

Event fields: ``involvedObject`` from the object's ``apiVersion``/``kind`` and
``metadata.namespace``/``name``/``uid``/``resourceVersion`` (``apiVersion`` and ``kind`` can be
passed explicitly, since objects from a list response lack them); ``source.component``/``host``;
``reportingComponent``/``reportingInstance``; ``firstTimestamp``/``lastTimestamp``/``count``; ``type``
``Normal`` or ``Warning``. Events about cluster-scoped objects go to the ``default`` namespace.
Names are ``<object name>.<hex nanoseconds>``, unique per recorder even when the clock stands still.

Failures: an error answer that retrying cannot fix (403, 422, 409 AlreadyExists, a namespace being
deleted, ...) is logged and the event dropped. A transient failure (connection error, 429, 5xx) is
retried up to ``max_tries`` times in all, ``retry_interval`` apart (the first wait is randomised), on
the injected clock; meanwhile later events wait (the sender is one loop, as in client-go). client-go
does not retry 429/5xx answers; we do, because they are what an overloaded API server sends.

Not guaranteed
--------------
* Delivery: events are best-effort telemetry. They are dropped when the queue (``max_queued``) is
  full, when the spam filter says so, after ``max_tries`` failures, and when the process stops before
  :meth:`EventRecorder.flush`.
* Exact counts: the correlator learns an Event's server state only after each write, as in client-go.
* Events are not sent unless :meth:`EventRecorder.run` is running (one ``run`` at a time);
  :meth:`EventRecorder.flush` waits for a ``run`` that has not started yet and raises once one has
  ended with events still pending.
* Ordering across recorders.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import structlog

from kctl_runtime._rest import request_json
from kctl_runtime.clock import Clock, SystemClock, format_time
from kctl_runtime.errors import AlreadyExists, NotFound, is_transient
from kctl_runtime.patch import MERGE_PATCH
from kctl_runtime.ratelimit import BucketRateLimiter
from kctl_runtime.resource import CORE_EVENTS

__all__ = ["EVENT_TYPE_NORMAL", "EVENT_TYPE_WARNING", "EventCorrelator", "EventRecorder"]

EVENT_TYPE_NORMAL = "Normal"
EVENT_TYPE_WARNING = "Warning"
_EVENT_TYPES = frozenset({EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING})

_COMBINED_PREFIX = "(combined from similar events): "

_log = structlog.get_logger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A bounded mapping that evicts the least recently used key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def _ref(event: Mapping[str, Any]) -> Mapping[str, Any]:
    ref: Mapping[str, Any] = event.get("involvedObject") or {}
    return ref


def _source(event: Mapping[str, Any]) -> Mapping[str, Any]:
    source: Mapping[str, Any] = event.get("source") or {}
    return source


def spam_key(event: Mapping[str, Any]) -> tuple[str, ...]:
    """client-go ``getSpamKey``: source + involved object."""
    ref, source = _ref(event), _source(event)
    return (
        source.get("component", ""),
        source.get("host", ""),
        ref.get("kind", ""),
        ref.get("namespace", ""),
        ref.get("name", ""),
        ref.get("uid", ""),
        ref.get("apiVersion", ""),
    )


def aggregate_key(event: Mapping[str, Any]) -> tuple[str, ...]:
    """client-go ``EventAggregatorByReasonFunc``: everything but the message."""
    return (
        *spam_key(event),
        event.get("type", ""),
        event.get("reason", ""),
        event.get("reportingComponent", ""),
        event.get("reportingInstance", ""),
    )


def event_key(event: Mapping[str, Any]) -> tuple[str, ...]:
    """client-go ``getEventKey``: identical events share it."""
    ref, source = _ref(event), _source(event)
    return (
        source.get("component", ""),
        source.get("host", ""),
        ref.get("kind", ""),
        ref.get("namespace", ""),
        ref.get("name", ""),
        ref.get("fieldPath", ""),
        ref.get("uid", ""),
        ref.get("apiVersion", ""),
        event.get("type", ""),
        event.get("reason", ""),
        event.get("message", ""),
    )


@dataclass
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last_seen: float = 0.0


@dataclass(frozen=True)
class _Observation:
    count: int
    first_timestamp: str
    name: str


@dataclass(frozen=True)
class Correlated:
    """What to send for one recorded event: ``patch`` is ``None`` for a create."""

    event: dict[str, Any]
    patch: dict[str, Any] | None


class EventCorrelator:
    """client-go's EventCorrelator: aggregate, deduplicate, then spam-filter (pure, no I/O).

    Args:
        clock: for the aggregation window, the spam buckets and the timestamps of combined events.
        burst: size of the per source+object token bucket of the spam filter.
        qps: refill rate (tokens per second) of that bucket.
        cache_size: entries in each LRU cache.
        max_events: aggregate from the ``max_events``-th distinct message on, for messages
            less than ``max_interval`` seconds apart.
        max_interval: see ``max_events``.
        name_for: makes the name of a combined event from the involved object's name.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        burst: int = 25,
        qps: float = 1 / 300,
        cache_size: int = 4096,
        max_events: int = 10,
        max_interval: float = 600.0,
        name_for: Callable[[str], str] | None = None,
    ) -> None:
        if burst < 1 or not qps > 0:
            raise ValueError(f"spam filter needs burst >= 1 and qps > 0, got burst={burst} qps={qps}")
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._clock = clock
        self.burst = burst
        self.qps = qps
        self.max_events = max_events
        self.max_interval = max_interval
        self._aggregates: _LRU[tuple[str, ...], _Aggregate] = _LRU(cache_size)
        self._observed: _LRU[tuple[str, ...], _Observation] = _LRU(cache_size)
        self._spam: _LRU[tuple[str, ...], BucketRateLimiter] = _LRU(cache_size)
        self._name_for: Callable[[str], str] = name_for or _NameMaker(clock)

    def correlate(self, event: dict[str, Any]) -> Correlated | None:
        """The write to make for ``event`` (a full core/v1 Event), or ``None`` to drop it."""
        event, key = self._aggregate(event)
        patch = self._observe(event, key)
        bucket_key = spam_key(event)
        bucket = self._spam.get(bucket_key)
        if bucket is None:
            bucket = BucketRateLimiter(qps=self.qps, burst=self.burst, clock=self._clock)
            self._spam.put(bucket_key, bucket)
        if not bucket.allow():
            return None
        return Correlated(event, patch)

    def _aggregate(self, event: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        key = aggregate_key(event)
        now = self._clock.monotonic()
        record = self._aggregates.get(key)
        if record is None or now - record.last_seen > self.max_interval:
            record = _Aggregate()
        record.messages.add(event.get("message", ""))
        record.last_seen = now
        self._aggregates.put(key, record)
        if len(record.messages) < self.max_events:
            return event, event_key(event)
        record.messages.pop()  # do not let the set grow past max_events
        ref = _ref(event)
        stamp = format_time(self._clock.now())
        combined: dict[str, Any] = {
            **event,
            "metadata": {
                "name": self._name_for(ref.get("name", "")),
                "namespace": event["metadata"]["namespace"],
            },
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "message": _COMBINED_PREFIX + event.get("message", ""),
        }
        return combined, key

    def _observe(self, event: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any] | None:
        last = self._observed.get(key)
        patch: dict[str, Any] | None = None
        if last is not None and last.count > 0:
            event["metadata"] = {**event["metadata"], "name": last.name}
            event["firstTimestamp"] = last.first_timestamp
            event["count"] = last.count + 1
            patch = {
                "count": event["count"],
                "lastTimestamp": event["lastTimestamp"],
                "message": event["message"],
            }
        self._observed.put(
            key, _Observation(int(event.get("count", 1)), event["firstTimestamp"], event["metadata"]["name"])
        )
        return patch

    def update_state(self, sent: Mapping[str, Any]) -> None:
        """Record what the server holds after a successful write."""
        self._observed.put(
            event_key(sent),
            _Observation(
                int(sent.get("count") or 1),
                str(sent.get("firstTimestamp") or ""),
                str((sent.get("metadata") or {}).get("name", "")),
            ),
        )


class _NameMaker:
    """``<name>.<hex unix nanoseconds>``; never the same twice, even on a clock that stands still."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0

    def __call__(self, name: str) -> str:
        now = self._clock.now()
        nanos = (now - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)) // _dt.timedelta(microseconds=1) * 1000
        nanos = max(nanos, self._last + 1)
        self._last = nanos
        return f"{name}.{nanos:x}"


class EventRecorder:
    """Records core/v1 Events about objects, with client-go's spam protection (see the module doc).

    Args:
        api_client: a kubernetes-asyncio ``ApiClient`` (only its transport and auth are used).
        component: ``source.component`` and ``reportingComponent`` (usually the controller's name).
        host: ``source.host`` and ``reportingInstance`` (e.g. the pod or node name), or ``None``.
        clock: time source for timestamps, the spam filter, aggregation and retries.
        burst: spam filter bucket size per source+object (client-go: 25).
        qps: spam filter refill rate (client-go: one per 5 minutes).
        cache_size: entries in each correlator cache (client-go: 4096).
        max_queued: events waiting to be sent before new ones are dropped (client-go: 1000).
        max_tries: attempts per event on transient failures (client-go: 12).
        retry_interval: seconds between attempts (client-go: 10; the first wait is randomised).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        component: str,
        host: str | None = None,
        clock: Clock | None = None,
        burst: int = 25,
        qps: float = 1 / 300,
        cache_size: int = 4096,
        max_queued: int = 1000,
        max_tries: int = 12,
        retry_interval: float = 10.0,
    ) -> None:
        if not component:
            raise ValueError("an event recorder needs a component name")
        if max_queued < 1 or max_tries < 1 or retry_interval < 0:
            raise ValueError(
                f"need max_queued >= 1, max_tries >= 1, retry_interval >= 0; got {max_queued}, "
                f"{max_tries}, {retry_interval}"
            )
        self._api = api_client
        self.component = component
        self.host = host
        self._clock: Clock = clock or SystemClock()
        self._names = _NameMaker(self._clock)
        self.correlator = EventCorrelator(
            self._clock, burst=burst, qps=qps, cache_size=cache_size, name_for=self._names
        )
        self._max_queued = max_queued
        self._max_tries = max_tries
        self._retry_interval = retry_interval
        self._pending: deque[dict[str, Any]] = deque()
        self._sending = False
        self._running = False
        self._stopped = False  # a run() has ended
        self._wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._dropped = 0
        self._random = random.Random()

    # ------------------------------------------------------------------ recording

    def event(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        message: str,
        *,
        api_version: str | None = None,
        kind: str | None = None,
        field_path: str | None = None,
    ) -> None:
        """Record an event about ``obj`` (a decoded Kubernetes object). Sync; never blocks.

        ``type`` must be ``"Normal"`` or ``"Warning"`` and ``obj`` must have ``metadata.name``
        (both are programming errors: :class:`ValueError`). ``api_version``/``kind`` override the
        object's own (objects taken from a list response do not carry them).
        """
        if type not in _EVENT_TYPES:
            raise ValueError(f"event type must be Normal or Warning, got {type!r}")
        metadata = obj.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise ValueError("cannot record an event about an object without metadata.name")
        namespace = metadata.get("namespace") or ""
        ref: dict[str, Any] = {}
        for key, value in (
            ("apiVersion", api_version or obj.get("apiVersion")),
            ("kind", kind or obj.get("kind")),
            ("namespace", namespace),
            ("name", name),
            ("uid", metadata.get("uid")),
            ("resourceVersion", metadata.get("resourceVersion")),
            ("fieldPath", field_path),
        ):
            if value:
                ref[key] = value
        stamp = format_time(self._clock.now())
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self._names(name), "namespace": namespace or "default"},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "source": source,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
        if len(self._pending) >= self._max_queued:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 100 == 0:
                _log.warning(
                    "event queue full; dropping events",
                    component=self.component,
                    dropped=self._dropped,
                    reason=reason,
                    object=name,
                )
            return
        self._pending.append(event)
        if self._wakeup is not None:
            self._wakeup.set()

    def eventf(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        fmt: str,
        *args: object,
        api_version: str | None = None,
        kind: str | None = None,
        field_path: str | None = None,
    ) -> None:
        """:meth:`event` with ``message = fmt % args``."""
        self.event(
            obj,
            type,
            reason,
            fmt % args if args else fmt,
            api_version=api_version,
            kind=kind,
            field_path=field_path,
        )

    @property
    def pending(self) -> int:
        """Events recorded and not yet sent (or dropped)."""
        return len(self._pending) + (1 if self._sending else 0)

    # ------------------------------------------------------------------ sending

    async def run(self) -> None:
        """Send recorded events until cancelled (run it in a task group; one ``run`` per recorder)."""
        if self._running:
            raise RuntimeError(f"event recorder {self.component!r} is already running")
        self._running = True
        try:
            while True:
                if not self._pending:
                    self._set_idle()
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                    continue
                event = self._pending.popleft()
                self._sending = True
                try:
                    await self._record(event)
                finally:
                    self._sending = False
        finally:
            self._running = False
            self._stopped = True
            self._wakeup = None
            self._set_idle()  # flush() callers must not wait for a sender that is gone

    async def flush(self) -> None:
        """Wait until every event recorded so far has been sent or dropped.

        Before :meth:`run` has started this waits for it (``start_soon(recorder.run)`` followed by
        ``flush()`` is fine). Once a ``run`` has ended, pending events would never be sent: then it
        raises :class:`RuntimeError` instead of waiting forever.
        """
        while self._pending or self._sending:
            if self._stopped and not self._running:
                raise RuntimeError(
                    f"event recorder {self.component!r} has {self.pending} pending event(s) but is not "
                    "running; run it in a task group (the manager does)"
                )
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    def _set_idle(self) -> None:
        if self._idle is not None:
            self._idle.set()
            self._idle = None

    async def _record(self, event: dict[str, Any]) -> None:
        try:
            correlated = self.correlator.correlate(event)
        except Exception:  # a bug in correlation must not stop the sender
            _log.exception("event correlation failed", component=self.component)
            return
        if correlated is None:
            _log.debug(
                "event dropped by the spam filter",
                component=self.component,
                reason=event["reason"],
                object=_ref(event).get("name"),
            )
            return
        for attempt in range(1, self._max_tries + 1):
            try:
                sent = await self._write(correlated)
            except Exception as exc:
                if isinstance(exc, AlreadyExists) or not is_transient(exc):
                    _log.warning(
                        "could not write event; dropping it",
                        component=self.component,
                        reason=correlated.event["reason"],
                        object=_ref(correlated.event).get("name"),
                        error=str(exc) or type(exc).__name__,
                    )
                    return
                if attempt == self._max_tries:
                    _log.error(
                        "could not write event (retry limit exceeded); dropping it",
                        component=self.component,
                        reason=correlated.event["reason"],
                        attempts=attempt,
                        error=str(exc) or type(exc).__name__,
                    )
                    return
                _log.info(
                    "could not write event; will retry",
                    component=self.component,
                    attempt=attempt,
                    error=str(exc) or type(exc).__name__,
                )
                wait = self._retry_interval * (self._random.random() if attempt == 1 else 1.0)
                await self._clock.sleep(wait)
            else:
                if isinstance(sent, Mapping):
                    self.correlator.update_state(sent)
                return

    async def _write(self, correlated: Correlated) -> Any:
        event = correlated.event
        namespace = event["metadata"]["namespace"]
        if correlated.patch is not None:
            try:
                return await request_json(
                    self._api,
                    "PATCH",
                    CORE_EVENTS.path(namespace, event["metadata"]["name"]),
                    body=correlated.patch,
                    content_type=MERGE_PATCH,
                )
            except NotFound:
                pass  # the Event expired or was deleted: create it again
        return await request_json(self._api, "POST", CORE_EVENTS.path(namespace), body=event)
