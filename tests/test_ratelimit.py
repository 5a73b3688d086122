"""Tests for kctl_runtime.ratelimit: exact sequences on a FakeClock."""

from __future__ import annotations

import pytest

from kctl_runtime.clock import FakeClock
from kctl_runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)


def test_exponential_limiter_doubles_from_base_delay_per_item() -> None:
    limiter = ItemExponentialFailureRateLimiter(0.001, 1.0)
    assert [limiter.when("a") for _ in range(5)] == [0.001, 0.002, 0.004, 0.008, 0.016]
    assert limiter.num_requeues("a") == 5
    # another item has its own history
    assert limiter.when("b") == 0.001
    assert limiter.num_requeues("b") == 1


def test_exponential_limiter_caps_at_max_delay() -> None:
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    delays = [limiter.when("x") for _ in range(20)]
    assert delays[:3] == [0.005, 0.01, 0.02]
    assert delays[17] == 0.005 * 2**17  # 655.36 s, still under the cap
    assert delays[18:] == [1000.0, 1000.0]


def test_exponential_limiter_does_not_overflow_after_thousands_of_failures() -> None:
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    for _ in range(5000):
        last = limiter.when("x")
    assert last == 1000.0
    assert limiter.num_requeues("x") == 5000


def test_forget_resets_the_exponential_sequence() -> None:
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    limiter.when("a")
    limiter.when("a")
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.005


def test_exponential_limiter_rejects_a_cap_below_the_base() -> None:
    with pytest.raises(ValueError, match="max_delay"):
        ItemExponentialFailureRateLimiter(2.0, 1.0)


def test_fast_slow_limiter_switches_after_max_fast_attempts() -> None:
    limiter = ItemFastSlowRateLimiter(fast_delay=0.5, slow_delay=10.0, max_fast_attempts=3)
    assert [limiter.when("a") for _ in range(5)] == [0.5, 0.5, 0.5, 10.0, 10.0]
    assert limiter.num_requeues("a") == 5
    assert limiter.when("b") == 0.5
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.5


def test_bucket_allows_a_burst_then_spaces_retries_at_qps() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    assert [bucket.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    # the bucket is empty: each further token is borrowed 1/qps further in the future
    assert bucket.when("d") == pytest.approx(0.1)
    assert bucket.when("e") == pytest.approx(0.2)
    assert bucket.num_requeues("d") == 0


async def test_bucket_refills_with_time_up_to_burst() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=2.0, burst=4, clock=clock)
    for i in range(4):
        assert bucket.when(i) == 0.0
    assert bucket.tokens() == 0.0
    await clock.advance(1.0)  # +2 tokens
    assert bucket.tokens() == pytest.approx(2.0)
    assert bucket.when("x") == 0.0
    assert bucket.when("y") == 0.0
    assert bucket.when("z") == pytest.approx(0.5)
    await clock.advance(3600)  # long idle: refills only up to burst
    assert bucket.tokens() == pytest.approx(4.0)


async def test_bucket_debt_is_paid_back_before_new_tokens_are_free() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=1.0, burst=1, clock=clock)
    assert bucket.when("a") == 0.0
    assert bucket.when("b") == pytest.approx(1.0)
    assert bucket.when("c") == pytest.approx(2.0)
    await clock.advance(1.0)
    assert bucket.when("d") == pytest.approx(2.0)


def test_bucket_rejects_nonpositive_qps_and_empty_burst() -> None:
    with pytest.raises(ValueError, match="qps"):
        BucketRateLimiter(qps=0)
    with pytest.raises(ValueError, match="burst"):
        BucketRateLimiter(qps=1, burst=0)


def test_max_of_returns_the_longest_wait_and_every_limiter_records_the_failure() -> None:
    fast_slow = ItemFastSlowRateLimiter(0.1, 5.0, 2)
    exponential = ItemExponentialFailureRateLimiter(0.05, 100.0)
    limiter = MaxOfRateLimiter(fast_slow, exponential)
    assert [limiter.when("a") for _ in range(4)] == [0.1, 0.1, 5.0, 5.0]
    assert fast_slow.num_requeues("a") == 4
    assert exponential.num_requeues("a") == 4
    # 0.05 * 2**7 = 6.4 > 5.0: the exponential limiter wins from the 8th failure
    assert [limiter.when("a") for _ in range(4)] == [5.0, 5.0, 5.0, 6.4]
    assert limiter.num_requeues("a") == 8


def test_max_of_forget_forgets_in_every_limiter() -> None:
    a = ItemExponentialFailureRateLimiter(1.0, 100.0)
    b = ItemFastSlowRateLimiter(0.0, 3.0, 0)
    limiter = MaxOfRateLimiter(a, b)
    limiter.when("k")
    limiter.when("k")
    limiter.forget("k")
    assert a.num_requeues("k") == 0
    assert b.num_requeues("k") == 0
    assert limiter.num_requeues("k") == 0


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MaxOfRateLimiter()


def test_default_controller_limiter_is_exponential_until_the_bucket_runs_dry() -> None:
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)
    assert [limiter.when("a") for _ in range(3)] == [0.005, 0.01, 0.02]
    # 97 more distinct items drain the 100-token bucket (3 used above)...
    for i in range(97):
        assert limiter.when(f"item-{i}") == 0.005
    # ...so the next first failure waits for the bucket (1 token at 10 qps), not 5 ms
    assert limiter.when("fresh") == pytest.approx(0.1)
    assert limiter.num_requeues("a") == 3


def test_limiters_satisfy_the_protocol() -> None:
    limiters: list[RateLimiter[str]] = [
        ItemExponentialFailureRateLimiter(),
        BucketRateLimiter(),
        ItemFastSlowRateLimiter(0.1, 1.0, 1),
        MaxOfRateLimiter(BucketRateLimiter()),
        default_controller_rate_limiter(),
    ]
    for limiter in limiters:
        assert limiter.when("x") >= 0.0
        limiter.forget("x")
        assert limiter.num_requeues("x") == 0


async def test_bucket_allow_takes_a_token_only_when_one_is_available() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=0.5, burst=2, clock=clock)
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    assert bucket.tokens() == 0.0  # a refused allow() borrows nothing
    await clock.advance(1.9)
    assert not bucket.allow()
    await clock.advance(0.1)
    assert bucket.allow()
