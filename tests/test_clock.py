"""Tests for the injectable clock."""

from __future__ import annotations

import anyio
import pytest

from kctl_runtime.clock import FakeClock, SystemClock, fail_after, move_on_after


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


async def test_move_on_after_cancels_the_body_on_the_injected_clock_not_real_time() -> None:
    clock = FakeClock()
    reached_end = False
    async with anyio.create_task_group() as tg:

        async def body() -> None:
            nonlocal reached_end
            async with move_on_after(clock, 5.0) as timeout:
                await anyio.Event().wait()
                reached_end = True
            results.append(timeout.expired)

        results: list[bool] = []
        tg.start_soon(body)
        await anyio.wait_all_tasks_blocked()
        await anyio.sleep(0.05)  # real time passes: nothing happens
        assert results == []
        await clock.advance(4.9)
        assert results == []
        await clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
    assert results == [True]
    assert not reached_end
    assert clock.sleepers == 0


async def test_move_on_after_that_does_not_expire_leaves_no_watchdog_behind() -> None:
    clock = FakeClock()
    async with move_on_after(clock, 5.0) as timeout:
        await anyio.lowlevel.checkpoint()
    assert not timeout.expired
    assert clock.sleepers == 0
    async with move_on_after(clock, None) as never:
        await anyio.lowlevel.checkpoint()
    assert not never.expired


async def test_an_exception_from_the_body_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with move_on_after(FakeClock(), 5.0):
            raise KeyError("spec")


async def test_an_outer_cancellation_is_not_an_expiry() -> None:
    with anyio.CancelScope() as outer:
        async with move_on_after(FakeClock(), 5.0) as timeout:
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught
    assert not timeout.expired


async def test_fail_after_raises_timeout_error_with_its_message() -> None:
    clock = FakeClock()

    async def body() -> None:
        async with fail_after(clock, 1.0, "caches did not sync"):
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        failures: list[BaseException] = []

        async def run() -> None:
            try:
                await body()
            except TimeoutError as exc:
                failures.append(exc)

        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(1.0)
    assert [str(f) for f in failures] == ["caches did not sync"]
