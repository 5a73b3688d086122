"""Tests for the injectable clock."""

from __future__ import annotations

import anyio

from kctl_runtime.clock import FakeClock, SystemClock


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woken: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "late", 3.0)
        tg.start_soon(sleeper, "early", 1.0)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleepers == 2
        await clock.advance(0.5)
        assert woken == []
        await clock.advance(3.0)
    assert woken == ["early", "late"]
    assert clock.monotonic() == 1003.5


async def test_a_cancelled_sleep_is_forgotten_by_the_fake_clock() -> None:
    clock = FakeClock()
    with anyio.move_on_after(0.01):
        await clock.sleep(10.0)
    assert clock.sleepers == 0
    assert clock.next_deadline() is None


async def test_fake_clock_wall_time_moves_with_monotonic_time() -> None:
    clock = FakeClock()
    before = clock.now()
    await clock.advance(90.0)
    assert (clock.now() - before).total_seconds() == 90.0


async def test_system_clock_sleep_of_zero_returns_at_once() -> None:
    clock = SystemClock()
    start = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= start
    assert clock.now().tzinfo is not None
