"""A seeded, replayable fault harness for testing a controller, and its invariants as plain functions.

Contract
--------
* :meth:`Schedule.from_seed` draws a fault schedule from a seed with its own ``random.Random``:
  the same seed (and arguments) always gives the same :class:`Schedule` -- a failing run is
  replayed by its seed. Fault kinds (:data:`FAULT_KINDS`):

  ``drop_watches``  every open watch ends now (clients resume from their last resourceVersion);
  ``expire_history`` a 410 storm: history is forgotten and watches dropped ``count`` times, so every
  resumed watch gets 410 and relists; ``errors`` the next ``count`` requests fail with ``status``
  (500 or 503); ``throttle`` the next ``count`` requests get 429 with ``Retry-After: seconds``;
  ``latency`` the next ``count`` requests wait ``seconds``; ``blackhole`` the next ``count``
  requests hang for ``seconds`` before being served (long enough to trip client timeouts or
  watch inactivity limits); ``restart_api_server`` the API server goes down for ``seconds`` and
  comes back with the same objects; ``restart_controller`` the controller is killed (no graceful
  shutdown) and started again.
* :func:`run_schedule` applies a schedule on a :class:`~kctl_runtime.clock.Clock` (real time by
  default; a :class:`~kctl_runtime.clock.FakeClock` for virtual time) through a
  :class:`ChaosTarget`: the fake API server's :class:`~kctl_runtime.testing.fakeapi.faults.FaultInjector`
  for request faults, and callables for the restarts (the fake's or envtest's API server restart;
  your own way to kill and start the controller). A schedule needing something the target cannot
  do is refused before anything runs (``ValueError``). When the schedule ends -- or fails -- every
  pending request fault is cleared. Each applied fault is appended to :attr:`ChaosTarget.applied`.
* Invariants are plain functions returning a list of violations (empty: holds):
  :func:`cache_mismatches` (the cache equals the server: key -> resourceVersion),
  :func:`overlapping_reconciles` (never two reconciles of one key at the same time, from the
  :class:`ReconcileLog` the controller's reconciler writes), :func:`touched` (objects the controller
  does not own kept their uid and resourceVersion). :func:`check` raises :class:`ChaosFailure`
  naming the seed and how to replay it when any list is non-empty.
* Bounded: a schedule has at most ``faults`` faults inside ``duration`` seconds, and each fault's
  own time (``seconds``) is capped, so a run's length is known in advance.

NOT guaranteed: the interleaving of faults with the controller's own requests is the event loop's
(replaying a seed replays the schedule, not every race); a "kill" of an in-process controller is a
cancellation: it stops without releasing anything, but its TCP connections close at once, as a
killed process's would.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.reconcile import Request, Result

__all__ = [
    "FAULT_KINDS",
    "REQUEST_FAULTS",
    "ChaosFailure",
    "ChaosTarget",
    "Fault",
    "FaultApi",
    "ReconcileLog",
    "ReconcileRecord",
    "Schedule",
    "cache_mismatches",
    "check",
    "overlapping_reconciles",
    "run_schedule",
    "touched",
]

#: Faults served by the fake API server's fault injector.
REQUEST_FAULTS = ("drop_watches", "expire_history", "errors", "throttle", "latency", "blackhole")
FAULT_KINDS = (*REQUEST_FAULTS, "restart_api_server", "restart_controller")


@dataclass(frozen=True)
class Fault:
    """One fault at ``at`` seconds after the schedule starts; see the module docstring per kind."""

    at: float
    kind: str
    count: int = 0
    status: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        extra = [f"{n}={v}" for n, v in (("count", self.count), ("status", self.status)) if v]
        if self.seconds:
            extra.append(f"seconds={self.seconds}")
        return f"t+{self.at:.2f}s {self.kind}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Schedule:
    """Faults drawn from ``seed``, in time order, within ``duration`` seconds."""

    seed: int
    duration: float
    faults: tuple[Fault, ...]

    @classmethod
    def from_seed(
        cls,
        seed: int,
        *,
        duration: float = 6.0,
        faults: int = 8,
        kinds: Sequence[str] = FAULT_KINDS,
        max_fault_seconds: float = 2.0,
    ) -> Schedule:
        """A schedule of ``faults`` faults of the given ``kinds`` (uniformly drawn) in ``duration`` s."""
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown or not kinds:
            raise ValueError(f"unknown or no fault kinds {unknown}; choose from {list(FAULT_KINDS)}")
        if duration <= 0 or faults < 0 or max_fault_seconds <= 0:
            raise ValueError("duration and max_fault_seconds must be positive, faults >= 0")
        rng = random.Random(seed)
        drawn = [_draw(rng, rng.choice(list(kinds)), duration, max_fault_seconds) for _ in range(faults)]
        return cls(seed, duration, tuple(sorted(drawn, key=lambda f: f.at)))

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.faults}

    def describe(self) -> str:
        lines = [f"chaos schedule seed={self.seed} duration={self.duration}s faults={len(self.faults)}"]
        lines.extend(f"  {fault.describe()}" for fault in self.faults)
        return "\n".join(lines)


def _draw(rng: random.Random, kind: str, duration: float, cap: float) -> Fault:
    at = round(rng.uniform(0.0, duration * 0.9), 3)
    if kind == "expire_history":
        return Fault(at, kind, count=rng.randint(1, 4))
    if kind == "errors":
        return Fault(at, kind, count=rng.randint(1, 12), status=rng.choice((500, 503)))
    if kind == "throttle":
        return Fault(at, kind, count=rng.randint(1, 12), status=429, seconds=float(rng.randint(1, 2)))
    if kind == "latency":
        return Fault(at, kind, count=rng.randint(5, 30), seconds=round(rng.uniform(0.01, 0.3), 3))
    if kind == "blackhole":
        return Fault(at, kind, count=rng.randint(1, 4), seconds=round(rng.uniform(cap / 2, cap), 3))
    if kind == "restart_api_server":
        return Fault(at, kind, seconds=round(rng.uniform(0.1, cap), 3))
    return Fault(at, kind)  # drop_watches, restart_controller


class FaultApi(Protocol):
    """What :func:`run_schedule` uses of the fake's
    :class:`~kctl_runtime.testing.fakeapi.faults.FaultInjector`."""

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: int | None = None) -> None: ...

    def delay(self, seconds: float, *, count: int | None = None) -> None: ...

    def close_watches(self) -> None: ...

    def expire_history(self) -> None: ...

    def clear(self) -> None: ...


@dataclass
class ChaosTarget:
    """How faults reach the system under test; leave out what the target cannot do."""

    faults: FaultApi | None = None
    """Request faults (the fake API server's ``server.faults``)."""
    restart_api_server: Callable[[float], Awaitable[Any]] | None = None
    """Take the API server down for the given seconds and bring it back with the same objects."""
    restart_controller: Callable[[], Awaitable[Any]] | None = None
    """Kill the controller (no graceful shutdown) and start it again."""
    applied: list[Fault] = field(default_factory=list)
    """The faults applied so far, in order."""

    def missing(self, kinds: Iterable[str]) -> list[str]:
        """The kinds among ``kinds`` this target cannot apply."""
        able = {
            "restart_api_server": self.restart_api_server is not None,
            "restart_controller": self.restart_controller is not None,
        }
        return [k for k in sorted(set(kinds)) if not able.get(k, self.faults is not None)]


async def run_schedule(schedule: Schedule, target: ChaosTarget, *, clock: Clock | None = None) -> None:
    """Apply ``schedule`` to ``target`` at its times on ``clock``; returns after ``duration``."""
    missing = target.missing(schedule.kinds)
    if missing:
        raise ValueError(f"chaos seed {schedule.seed}: this target cannot apply {missing}")
    clock = clock or SystemClock()
    began = clock.monotonic()
    try:
        for fault in schedule.faults:
            wait = began + fault.at - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            await _apply(fault, target, clock)
            target.applied.append(fault)
        rest = began + schedule.duration - clock.monotonic()
        if rest > 0:
            await clock.sleep(rest)
    finally:
        if target.faults is not None:
            target.faults.clear()


async def _apply(fault: Fault, target: ChaosTarget, clock: Clock) -> None:
    faults = target.faults
    kind = fault.kind
    if kind == "restart_api_server":
        assert target.restart_api_server is not None
        await target.restart_api_server(fault.seconds)
        return
    if kind == "restart_controller":
        assert target.restart_controller is not None
        await target.restart_controller()
        return
    assert faults is not None
    if kind == "drop_watches":
        faults.close_watches()
    elif kind == "expire_history":
        for i in range(fault.count):
            if i:
                await clock.sleep(0.2)  # a storm: the relisted watches are expired again
            faults.expire_history()
            faults.close_watches()
    elif kind in ("errors", "throttle"):
        retry_after = int(fault.seconds) if kind == "throttle" else None
        faults.fail_next(fault.count, status=fault.status, retry_after=retry_after)
    elif kind in ("latency", "blackhole"):
        faults.delay(fault.seconds, count=fault.count)
    else:  # pragma: no cover - from_seed only draws known kinds
        raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# The controller's own records


@dataclass(frozen=True)
class ReconcileRecord:
    """One reconcile: its key, which controller incarnation ran it, when it began and ended."""

    key: str
    incarnation: str
    began: float
    ended: float


class ReconcileLog:
    """Records every reconcile of the reconcilers it wraps (on a clock), for the invariants.

    ``log.wrap(reconciler, incarnation="1")`` returns a reconciler to give the controller; a
    reconcile that is cancelled (a killed controller) is recorded as ending at its cancellation.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.records: list[ReconcileRecord] = []

    def wrap(self, reconciler: Any, *, incarnation: str = "1") -> _Logged:
        return _Logged(self, reconciler, incarnation)

    def keys(self) -> set[str]:
        return {r.key for r in self.records}


@dataclass
class _Logged:
    log: ReconcileLog
    inner: Any
    incarnation: str

    async def reconcile(self, request: Request) -> Result:
        began = self.log.clock.monotonic()
        try:
            result: Result = await self.inner.reconcile(request)
            return result
        finally:
            key = f"{request.namespace}/{request.name}" if request.namespace else request.name
            self.log.records.append(ReconcileRecord(key, self.incarnation, began, self.log.clock.monotonic()))


# ---------------------------------------------------------------------------------------------
# Invariants: plain functions, a list of violations each


def overlapping_reconciles(records: Iterable[ReconcileRecord]) -> list[str]:
    """Pairs of reconciles of one key whose time spans overlap (there must be none)."""
    by_key: dict[str, list[ReconcileRecord]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record)
    out = []
    for key, spans in sorted(by_key.items()):
        spans.sort(key=lambda r: r.began)
        for earlier, later in itertools.pairwise(spans):
            if later.began < earlier.ended:
                out.append(
                    f"{key}: reconcile in incarnation {later.incarnation} began at {later.began:.3f} "
                    f"before the one in incarnation {earlier.incarnation} ended at {earlier.ended:.3f}"
                )
    return out


def cache_mismatches(cache: Mapping[str, str], server: Mapping[str, str]) -> list[str]:
    """Differences between a cache and the server, both as key -> resourceVersion."""
    out = [f"{k}: cached but gone from the server" for k in sorted(cache.keys() - server.keys())]
    out += [f"{k}: on the server but not cached" for k in sorted(server.keys() - cache.keys())]
    out += [
        f"{k}: cache at resourceVersion {cache[k]}, server at {server[k]}"
        for k in sorted(cache.keys() & server.keys())
        if cache[k] != server[k]
    ]
    return out


def touched(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Objects not ours (key -> object, taken before and after) that were deleted or changed."""
    out = []
    for key, old in sorted(before.items()):
        new = after.get(key)
        old_meta = old["metadata"]
        if new is None or new["metadata"].get("uid") != old_meta.get("uid"):
            out.append(f"{key}: not ours, but deleted or replaced")
        elif new["metadata"].get("resourceVersion") != old_meta.get("resourceVersion"):
            out.append(f"{key}: not ours, but modified")
    return out


class ChaosFailure(AssertionError):
    """An invariant failed under a seeded schedule; the message names the seed to replay."""


def check(schedule: Schedule, violations: Mapping[str, Sequence[str]]) -> None:
    """Raise :class:`ChaosFailure` if any invariant (name -> violations) has a violation."""
    failed = {name: list(v) for name, v in violations.items() if v}
    if not failed:
        return
    lines = [f"chaos seed {schedule.seed} broke {', '.join(sorted(failed))}:"]
    for name, items in sorted(failed.items()):
        lines.extend(f"  [{name}] {item}" for item in items[:10])
        if len(items) > 10:
            lines.append(f"  [{name}] ... {len(items) - 10} more")
    lines.append(schedule.describe())
    lines.append(f"replay: Schedule.from_seed({schedule.seed}, ...) with the same arguments")
    raise ChaosFailure("\n".join(lines))
