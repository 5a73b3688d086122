"""Jittered exponential backoff with a reset after a healthy period.

Contract
--------
* :meth:`Backoff.next_delay` returns the delay to wait before the next attempt: the ``n``-th
  consecutive call returns ``min(max, initial * factor**(n-1))`` stretched by a random jitter in
  ``[0, jitter]`` of itself, never more than ``max``. Randomness comes from the injected ``rand``
  callable (default :func:`random.random`), time from the injected :class:`~kctl_runtime.clock.Clock`.
* The sequence starts over (:meth:`reset`) when the caller has been healthy for ``reset_after``
  seconds (:meth:`mark_healthy` records when health began), or when no delay was asked for
  during ``reset_after`` seconds (client-go's ``exponentialBackoffManager`` rule), so one failure
  after hours of good service waits ``initial`` again rather than ``max``.
* NOT guaranteed: fairness between independent users; each owns its own :class:`Backoff`.

The defaults are client-go's reflector policy: 800 ms doubling to 30 s, jitter 1.0, reset after
two minutes of health.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kctl_runtime.clock import Clock, SystemClock

__all__ = ["Backoff"]


class Backoff:
    """One retry sequence; not shared between tasks."""

    def __init__(
        self,
        initial: float = 0.8,
        max: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        *,
        clock: Clock | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        if initial <= 0 or max < initial:
            raise ValueError(f"need 0 < initial <= max, got initial={initial} max={max}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        if reset_after <= 0:
            raise ValueError(f"reset_after must be > 0, got {reset_after}")
        self.initial = initial
        self.max = max
        self.factor = factor
        self.jitter = jitter
        self.reset_after = reset_after
        self._clock: Clock = clock or SystemClock()
        self._rand = rand or random.random
        self._attempt = 0
        self._last_delay_at: float | None = None
        self._healthy_since: float | None = None

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def reset(self) -> None:
        """Start the sequence over: the next delay is ``initial`` (jittered)."""
        self._attempt = 0
        self._last_delay_at = None
        self._healthy_since = None

    def mark_healthy(self, now: float) -> None:
        """Record that things work since ``now`` (a ``clock.monotonic()`` value).

        Cheap enough to call on every success; only the first call after a failure counts.
        """
        if self._healthy_since is None:
            self._healthy_since = now

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds."""
        now = self._clock.monotonic()
        if (self._healthy_since is not None and now - self._healthy_since >= self.reset_after) or (
            self._last_delay_at is not None and now - self._last_delay_at >= self.reset_after
        ):
            self.reset()
        base = min(self.max, self.initial * self.factor ** min(self._attempt, 64))
        self._attempt += 1
        self._last_delay_at = now
        self._healthy_since = None
        delay: float = base + base * self.jitter * self._rand()
        return min(self.max, delay)

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial}, max={self.max}, factor={self.factor}, "
            f"jitter={self.jitter}, reset_after={self.reset_after}, attempt={self._attempt})"
        )
