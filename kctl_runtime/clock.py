"""Injectable time.

Contract
--------
Every piece of the runtime whose behaviour depends on time (backoff, resync, rate limiting,
leases, delayed queue adds) takes a :class:`Clock` instead of calling :mod:`time` directly, so
tests can run on virtual time with :class:`FakeClock`.

* :meth:`Clock.monotonic` is for measuring durations and deadlines. It never goes backwards.
* :meth:`Clock.now` is wall-clock UTC, used only for timestamps written to the API (Lease
  ``renewTime``, condition ``lastTransitionTime``, Event times). Never compare two hosts' wall
  times to decide anything.
* :func:`format_time` and :func:`format_micro_time` render such timestamps as the API's
  ``metav1.Time`` and ``metav1.MicroTime``.
* :meth:`Clock.sleep` suspends the calling task for the given number of clock seconds.

:class:`FakeClock` only moves when a test calls :meth:`FakeClock.advance`; sleepers whose
deadline has been reached are woken in deadline order (FIFO among equal deadlines).

Timeouts on a clock -- the one home for them (never ``anyio.move_on_after``, which is real time):

* ``async with move_on_after(clock, seconds) as timeout:`` cancels its body once ``seconds`` of
  ``clock`` time have passed and carries on after the block; ``timeout.expired`` says whether that
  happened. ``seconds=None`` never expires. An exception from the body propagates unchanged.
* ``async with fail_after(clock, seconds, message):`` is the same, then raises
  :class:`TimeoutError` (``message``) if the time ran out.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import anyio

__all__ = [
    "Clock",
    "FakeClock",
    "SystemClock",
    "Timeout",
    "fail_after",
    "format_micro_time",
    "format_time",
    "move_on_after",
]


@runtime_checkable
class Clock(Protocol):
    """The time source the runtime reads."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale; only differences are meaningful."""
        ...

    def now(self) -> _dt.datetime:
        """The current wall-clock time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time (returns at once for ``seconds <= 0``)."""
        ...


def format_time(when: _dt.datetime) -> str:
    """``metav1.Time`` format: RFC 3339 in UTC with second precision (``2030-01-01T00:00:00Z``)."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use clock.now())")
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(when: _dt.datetime) -> str:
    """``metav1.MicroTime`` format: ``2030-01-01T00:00:00.000000Z`` (``when`` must be timezone-aware)."""
    if when.tzinfo is None:
        raise ValueError("MicroTime needs a timezone-aware timestamp (use clock.now())")
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SystemClock:
    """The real clock: :func:`time.monotonic`, UTC wall time and :func:`anyio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A manual clock for tests.

    ``monotonic()`` starts at ``start`` and ``now()`` at ``wall_start``; both only move in
    :meth:`advance`. ``sleep`` parks the caller until the clock has been advanced past its deadline.
    """

    def __init__(
        self,
        start: float = 1000.0,
        wall_start: _dt.datetime | None = None,
    ) -> None:
        self._t = start
        self._start = start
        self._wall_start = wall_start or _dt.datetime(2030, 1, 1, tzinfo=_dt.UTC)
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._t

    def now(self) -> _dt.datetime:
        return self._wall_start + _dt.timedelta(seconds=self._t - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        entry = (self._t + seconds, next(self._seq), event)
        heapq.heappush(self._sleepers, entry)
        try:
            await event.wait()
        finally:
            if not event.is_set():  # cancelled: forget the sleeper so counts and deadlines stay true
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    @property
    def sleepers(self) -> int:
        """How many tasks are currently parked in :meth:`sleep`."""
        return len(self._sleepers)

    def next_deadline(self) -> float | None:
        """The earliest pending sleep deadline, or ``None``."""
        return self._sleepers[0][0] if self._sleepers else None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due by then.

        Sleepers are woken one deadline at a time and given a chance to run (and to schedule new
        sleeps that also fall inside the window) before time moves further.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        target = self._t + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, event = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            event.set()
            await _settle()
        self._t = target
        await _settle()

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._t})"


async def _settle(rounds: int = 5) -> None:
    """Let woken tasks run a little before the clock moves again."""
    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()


@dataclass
class Timeout:
    """What :func:`move_on_after` yields: ``expired`` is ``True`` once the time ran out."""

    seconds: float | None
    expired: bool = False


@contextlib.asynccontextmanager
async def move_on_after(clock: Clock, seconds: float | None) -> AsyncIterator[Timeout]:
    """Cancel the body after ``seconds`` of ``clock`` time (``None``: never); see the module doc."""
    timeout = Timeout(seconds)
    body = anyio.CancelScope()
    try:
        async with anyio.create_task_group() as tg:

            async def watchdog(after: float) -> None:
                await clock.sleep(after)
                body.cancel()

            if seconds is not None:
                tg.start_soon(watchdog, seconds, name="clock timeout")
            try:
                with body:
                    yield timeout
            finally:
                # only the watchdog cancels ``body``; a cancellation from outside is not an expiry
                timeout.expired = body.cancelled_caught
                tg.cancel_scope.cancel()  # the watchdog, when the body finished first
    except BaseExceptionGroup as group:
        # The watchdog only sleeps: anything in the group came from the body. Hand it on unwrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


@contextlib.asynccontextmanager
async def fail_after(clock: Clock, seconds: float | None, message: str = "") -> AsyncIterator[Timeout]:
    """:func:`move_on_after`, then :class:`TimeoutError` (``message``) if the time ran out."""
    async with move_on_after(clock, seconds) as timeout:
        yield timeout
    if timeout.expired:
        raise TimeoutError(message or f"timed out after {seconds}s")
