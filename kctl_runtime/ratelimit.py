"""Rate limiters for the work queue: how long an item waits before it is retried.

Contract
--------
A :class:`RateLimiter` answers one question, :meth:`~RateLimiter.when`: *how many seconds must this item
wait before it may be processed again?* Calling ``when`` **records a failure** (a retry) for the item,
so the next answer may be longer. :meth:`~RateLimiter.forget` clears an item's history (the controller
calls it after a successful reconcile); :meth:`~RateLimiter.num_requeues` reports how many failures
are on record. The semantics are those of client-go's ``util/workqueue`` limiters and the default
is controller-runtime's:

* :class:`ItemExponentialFailureRateLimiter` -- per item, ``base_delay * 2**failures`` capped at
  ``max_delay`` (5 ms, 10 ms, 20 ms, ... 1000 s by default).
* :class:`BucketRateLimiter` -- one token bucket shared by all items (``qps`` refill, ``burst``
  capacity). Every call takes a token *now* and reports how long until that token would have been
  available, so the bucket limits the overall retry rate; it keeps no per-item state
  (``num_requeues`` is always 0, ``forget`` does nothing). Its :meth:`~BucketRateLimiter.allow` takes a
  token only if one is available now (the event recorder's spam filter uses it).
* :class:`ItemFastSlowRateLimiter` -- ``fast_delay`` for the first ``max_fast_attempts`` failures of
  an item, then ``slow_delay``.
* :class:`MaxOfRateLimiter` -- asks every limiter (each records the failure) and returns the longest
  wait.
* :func:`default_controller_rate_limiter` -- max-of(exponential 5 ms..1000 s, bucket 10 qps burst 100).

Guarantees and limits
---------------------
* Time is read only from the injected :class:`~kctl_runtime.clock.Clock`, so behaviour is exact on a
  :class:`~kctl_runtime.clock.FakeClock`.
* Items are dictionary keys: they must be hashable, and equal items share one history.
* Per-item history lives until :meth:`~RateLimiter.forget`; an item that fails forever and is never
  forgotten keeps one small entry. Controllers forget on success, so the maps stay bounded by the
  number of failing keys.
* Limiters are not thread-safe; use them from one event loop (as the queue does).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from kctl_runtime.clock import Clock, SystemClock

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialFailureRateLimiter",
    "ItemFastSlowRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "default_controller_rate_limiter",
]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class RateLimiter(Protocol[T_contra]):
    """Decides how long an item waits before it is retried."""

    def when(self, item: T_contra) -> float:
        """Seconds to wait before ``item`` may be processed again; records one failure for it."""
        ...

    def forget(self, item: T_contra) -> None:
        """Drop the failure history of ``item`` (call it when the item finally succeeded)."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """How many failures are on record for ``item``."""
        ...


class ItemExponentialFailureRateLimiter:
    """Per-item exponential backoff: ``base_delay * 2**failures``, capped at ``max_delay``.

    The first call for an item returns ``base_delay``; each further call doubles it until the cap.

    Args:
        base_delay: the first delay, in seconds (default 0.005, as client-go). Must be ``>= 0``.
        max_delay: the cap, in seconds (default 1000, as controller-runtime). Must be ``>= base_delay``.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay < 0:
            raise ValueError(f"base_delay must be >= 0, got {base_delay}")
        if max_delay < base_delay:
            raise ValueError(f"max_delay ({max_delay}) must be >= base_delay ({base_delay})")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Any, int] = {}

    def when(self, item: object) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        try:
            backoff = self.base_delay * (2.0**exp)
        except OverflowError:
            return self.max_delay
        return min(backoff, self.max_delay)

    def forget(self, item: object) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: object) -> int:
        return self._failures.get(item, 0)

    def __repr__(self) -> str:
        return f"ItemExponentialFailureRateLimiter(base_delay={self.base_delay}, max_delay={self.max_delay})"


class ItemFastSlowRateLimiter:
    """``fast_delay`` for the first ``max_fast_attempts`` failures of an item, ``slow_delay`` after.

    Useful for "poll quickly a few times, then back off" (client-go uses it for node status).

    Args:
        fast_delay: seconds to wait for the first ``max_fast_attempts`` failures (``>= 0``).
        slow_delay: seconds to wait after that (``>= 0``).
        max_fast_attempts: how many failures get the fast delay (``>= 0``).
    """

    def __init__(self, fast_delay: float, slow_delay: float, max_fast_attempts: int) -> None:
        if fast_delay < 0 or slow_delay < 0:
            raise ValueError(f"delays must be >= 0, got fast={fast_delay} slow={slow_delay}")
        if max_fast_attempts < 0:
            raise ValueError(f"max_fast_attempts must be >= 0, got {max_fast_attempts}")
        self.fast_delay = fast_delay
        self.slow_delay = slow_delay
        self.max_fast_attempts = max_fast_attempts
        self._failures: dict[Any, int] = {}

    def when(self, item: object) -> float:
        failures = self._failures.get(item, 0) + 1
        self._failures[item] = failures
        return self.fast_delay if failures <= self.max_fast_attempts else self.slow_delay

    def forget(self, item: object) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: object) -> int:
        return self._failures.get(item, 0)

    def __repr__(self) -> str:
        return (
            f"ItemFastSlowRateLimiter(fast_delay={self.fast_delay}, slow_delay={self.slow_delay}, "
            f"max_fast_attempts={self.max_fast_attempts})"
        )


class BucketRateLimiter:
    """One token bucket for all items: at most ``burst`` retries at once, refilled at ``qps`` per second.

    The bucket starts full. Each :meth:`when` takes a token; when the bucket is empty the token is
    borrowed from the future and the answer is how long until it is earned (so the bucket's balance
    can go negative, like Go's ``rate.Limiter.Reserve``). The bucket has no per-item state.

    Args:
        qps: tokens added per second (default 10). Must be ``> 0``.
        burst: bucket capacity (default 100). Must be ``>= 1``.
        clock: the time source (default: the system clock).
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None) -> None:
        if not qps > 0:
            raise ValueError(f"qps must be > 0, got {qps}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self._clock: Clock = clock or SystemClock()
        self._tokens = float(burst)
        self._last = self._clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
            self._last = now

    def when(self, item: object) -> float:
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps

    def allow(self) -> bool:
        """Take a token if one is available now; never borrows (Go's ``Allow``, client-go's ``TryAccept``)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def tokens(self) -> float:
        """Tokens available now (negative while tokens are borrowed from the future)."""
        self._refill()
        return self._tokens

    def forget(self, item: object) -> None:
        """No per-item state: nothing to forget."""

    def num_requeues(self, item: object) -> int:
        """Always 0: the bucket does not count per item."""
        return 0

    def __repr__(self) -> str:
        return f"BucketRateLimiter(qps={self.qps}, burst={self.burst})"


class MaxOfRateLimiter:
    """Combines limiters: every one records the failure and the longest wait wins.

    ``num_requeues`` is the largest count any limiter reports; ``forget`` forgets in all of them.
    """

    def __init__(self, *limiters: RateLimiter[Any]) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters: tuple[RateLimiter[Any], ...] = limiters

    def when(self, item: object) -> float:
        return max([limiter.when(item) for limiter in self.limiters])

    def forget(self, item: object) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: object) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)

    def __repr__(self) -> str:
        return f"MaxOfRateLimiter({', '.join(map(repr, self.limiters))})"


def default_controller_rate_limiter(clock: Clock | None = None) -> RateLimiter[Any]:
    """controller-runtime's default: max-of(exponential 5 ms .. 1000 s per item, bucket 10 qps burst 100)."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
