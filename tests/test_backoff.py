"""Backoff: client-go's reflector policy on a fake clock with a fixed random source."""

from __future__ import annotations

import pytest

from kctl_runtime.backoff import Backoff
from kctl_runtime.clock import FakeClock


def test_delays_double_from_initial_up_to_max_without_jitter() -> None:
    backoff = Backoff(0.8, 30.0, jitter=0.0, clock=FakeClock())
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_jitter_stretches_each_delay_by_up_to_its_fraction_and_never_past_max() -> None:
    values = iter([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    backoff = Backoff(1.0, 10.0, jitter=1.0, clock=FakeClock(), rand=lambda: next(values))
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 3.0, 8.0, 10.0, 10.0]


def test_reset_starts_the_sequence_over() -> None:
    backoff = Backoff(1.0, 60.0, jitter=0.0, clock=FakeClock())
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0


async def test_a_healthy_period_longer_than_reset_after_resets_the_sequence() -> None:
    clock = FakeClock()
    backoff = Backoff(1.0, 60.0, jitter=0.0, reset_after=120.0, clock=clock)
    backoff.next_delay()
    backoff.next_delay()
    backoff.mark_healthy(clock.monotonic())
    await clock.advance(60)
    backoff.mark_healthy(clock.monotonic())  # only the start of health counts
    assert backoff.next_delay() == 4.0
    backoff.mark_healthy(clock.monotonic())
    await clock.advance(120)
    assert backoff.next_delay() == 1.0


async def test_no_failure_for_reset_after_seconds_resets_the_sequence_like_client_go() -> None:
    clock = FakeClock()
    backoff = Backoff(1.0, 60.0, jitter=0.0, reset_after=120.0, clock=clock)
    backoff.next_delay()
    backoff.next_delay()
    await clock.advance(121)
    assert backoff.next_delay() == 1.0


def test_thousands_of_failures_stay_at_max_without_overflow() -> None:
    backoff = Backoff(0.8, 30.0, jitter=0.0, clock=FakeClock())
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0.0}, "initial"),
        ({"initial": 5.0, "max": 1.0}, "initial"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": -1.0}, "jitter"),
        ({"reset_after": 0.0}, "reset_after"),
    ],
)
def test_invalid_settings_are_rejected_with_a_clear_message(kwargs: dict[str, float], message: str) -> None:
    settings = {"initial": 0.8, "max": 30.0, "factor": 2.0, "jitter": 1.0, "reset_after": 120.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        Backoff(
            settings["initial"],
            settings["max"],
            settings["factor"],
            settings["jitter"],
            settings["reset_after"],
        )
