"""Work queue throughput: add + get + done cycles per second.

Run: ``python -m benchmarks.bench_queue [--items N] [--workers 1,4,16,64] [--repeat R]``.
Prints a markdown table and writes ``docs/benchmarks/queue.md``.

One *op* is one full cycle: ``add(key)``, a worker's ``async with queue.get() as key:`` and the done
recorded when the block exits. Scenarios:

* ``prefilled`` -- all keys are added first, then N workers drain the queue.
* ``streaming`` -- a producer adds keys in batches of 100 (yielding to the loop between batches) while
  N workers consume: workers park in ``get()`` and are woken, the usual controller shape.
* ``delayed`` -- every key goes through ``add_after(key, 0.0001)`` on the system clock and a
  timer getter promotes it.

Each is run without metrics (``name=None``) and with metrics (a named queue). The best of
``--repeat`` runs is reported (the machine is shared; the best run is the least disturbed), both as
wall-clock ops/s and as ops per CPU-second of this process (``time.process_time``), which other
processes competing for the cores disturb much less. The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from kctl_runtime.queue import ShutDown, WorkQueue

TARGET_OPS = 200_000.0


async def _drain(queue: WorkQueue[int], workers: int, total: int) -> None:
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                async with queue.get():
                    done += 1
            except ShutDown:
                return
            if done >= total:
                queue.shut_down()

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)


async def prefilled(queue: WorkQueue[int], workers: int, total: int) -> None:
    for i in range(total):
        queue.add(i)
    await _drain(queue, workers, total)


async def streaming(queue: WorkQueue[int], workers: int, total: int) -> None:
    async def producer() -> None:
        for start in range(0, total, 100):
            for i in range(start, min(start + 100, total)):
                queue.add(i)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        tg.start_soon(_drain, queue, workers, total)


async def delayed(queue: WorkQueue[int], workers: int, total: int) -> None:
    async def producer() -> None:
        for start in range(0, total, 100):
            for i in range(start, min(start + 100, total)):
                queue.add_after(i, 0.0001)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        tg.start_soon(_drain, queue, workers, total)


Scenario = Callable[[WorkQueue[int], int, int], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {"prefilled": prefilled, "streaming": streaming, "delayed": delayed}


async def _measure(
    scenario: Scenario, workers: int, total: int, named: bool, repeat: int
) -> tuple[float, float]:
    """Best wall-clock ops/s and best ops per CPU-second over ``repeat`` runs."""
    best_wall = best_cpu = 0.0
    for run in range(repeat):
        queue: WorkQueue[int] = WorkQueue(name=f"bench-{run}" if named else None)
        wall, cpu = time.perf_counter(), time.process_time()
        await scenario(queue, workers, total)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert queue.processing() == 0
        best_wall = max(best_wall, total / wall)
        best_cpu = max(best_cpu, total / max(cpu, 1e-9))
    return best_wall, best_cpu


async def run(items: int, workers: list[int], repeat: int, scenarios: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for name in scenarios:
        for n in workers:
            plain, plain_cpu = await _measure(SCENARIOS[name], n, items, named=False, repeat=repeat)
            named, named_cpu = await _measure(SCENARIOS[name], n, items, named=True, repeat=repeat)
            rows.append(
                [name, str(n), f"{plain:,.0f}", f"{plain_cpu:,.0f}", f"{named:,.0f}", f"{named_cpu:,.0f}"]
            )
            print(
                f"{name:>10} workers={n:<3} {plain:>10,.0f} ops/s ({plain_cpu:,.0f}/cpu-s)  "
                f"metrics: {named:>10,.0f} ops/s ({named_cpu:,.0f}/cpu-s)",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--workers", default="1,4,16,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks/queue.md"))
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    scenarios = [s for s in args.scenarios.split(",") if s]
    rows = asyncio.run(run(args.items, workers, args.repeat, scenarios))
    header = [
        "scenario",
        "workers",
        "ops/s",
        "ops/CPU-s",
        "ops/s (metrics)",
        "ops/CPU-s (metrics)",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    table = "\n".join(lines)
    print()
    print(table)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    environment = (
        f"Python {platform.python_version()} ({platform.python_implementation()}), asyncio via anyio, "
        f"{platform.machine()} with {os.cpu_count()} CPUs (load average after the run: {load}), "
        f"{args.items:,} items, best of {args.repeat}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        "# Work queue throughput\n\n"
        "Generated by `python -m benchmarks.bench_queue`; do not edit by hand.\n\n"
        "One op is one `add` + `async with queue.get()` + done cycle. Target: "
        f"{TARGET_OPS:,.0f} ops/s.\n\n"
        f"{environment}.\n\n{table}\n\n"
        "## Reading the numbers\n\n"
        "* **ops/s** is wall-clock throughput; on a shared machine it moves with the load of other "
        "processes. **ops/CPU-s** divides by the CPU time this process used, which is what the code "
        "costs.\n"
        "* **prefilled** is the hot path: a worker takes a ready key without suspending (an event-loop "
        "yield every 16th take), so the cost is a few dict/set/deque operations per cycle.\n"
        "* **streaming** with many workers is slower per op: workers drain each batch and park, and "
        "every park/wake is an `anyio.Event` plus an event-loop round trip.\n"
        "* **delayed** adds a heap push and pop per key and wakes the worker sleeping on the clock.\n"
        "* **metrics** cost about 0.6-0.7 us per cycle (three clock reads, two histogram "
        "observations); the exported values are computed at scrape time.\n"
    )
    print(f"\nwrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
