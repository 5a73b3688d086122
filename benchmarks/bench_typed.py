"""Typed reads: ``client.get(Website, ...)`` (parsed into the model) vs ``client.get(WEBSITES, ...)``.

Run: ``python -m benchmarks.bench_typed [--objects N] [--repeat R]``. Prints a markdown table and writes
``docs/benchmarks/typed.md``.

Both reads are served from the same synced cache (a :class:`~kctl_runtime.store.Store` of N Website
objects shaped like the example's, with status and a Ready condition), through the real
:class:`~kctl_runtime.client.Client`. The floor is the part every cached read must pay: one orjson
round trip of the object (the copy that keeps the cache safe from the caller), measured in the same
run. Each scenario is timed ``--repeat`` times (CPU time of this process, GC off as in the informer
benchmark); the table gives the median and the spread (min-max) as reads per second and as a ratio
to the floor's median.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from examples.website_controller.api import Website
from examples.website_controller.controller import WEBSITES
from kctl_runtime.client import Cache, Client
from kctl_runtime.store import Store


class _SyncedInformer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.has_synced = True


def website(i: int) -> dict[str, Any]:
    return {
        "apiVersion": WEBSITES.api_version,
        "kind": "Website",
        "metadata": {
            "name": f"site-{i}",
            "namespace": "web",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(1000 + i),
            "generation": 3,
            "creationTimestamp": "2026-12-05T09:00:00Z",
            "labels": {"team": "web", "tier": "frontend"},
            "annotations": {"example.com/owner": "someone@example.com"},
        },
        "spec": {"gitRepo": f"https://github.com/example/site-{i}.git", "branch": "main", "replicas": 2},
        "status": {
            "observedGeneration": 3,
            "url": "http://10.96.0.10:80",
            "clusterIP": "10.96.0.10",
            "nodePort": 30080,
            "availableReplicas": 2,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "DeploymentAvailable",
                    "message": "2/2 replicas available",
                    "observedGeneration": 3,
                    "lastTransitionTime": "2026-12-05T09:01:00Z",
                }
            ],
        },
    }


def _cpu_time(fn: Callable[[], Coroutine[Any, Any, None]]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        asyncio.run(fn())
        return time.process_time() - start
    finally:
        gc.enable()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks/typed.md"))
    args = parser.parse_args(argv)
    n: int = args.objects
    store = Store()
    objects = [website(i) for i in range(n)]
    for obj in objects:
        store.apply(obj)
    cache = Cache()
    cache.register(WEBSITES, _SyncedInformer(store))
    client = Client(api_client=None, cache=cache)
    names = [o["metadata"]["name"] for o in objects]

    async def floor() -> None:
        for obj in objects:
            orjson.loads(orjson.dumps(obj))

    async def dict_read() -> None:
        for name in names:
            await client.get(WEBSITES, name, "web")

    async def typed_read() -> None:
        for name in names:
            await client.get(Website, name, "web")

    scenarios: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "floor: orjson round trip": floor,
        "client.get(WEBSITES) -> dict": dict_read,
        "client.get(Website) -> model": typed_read,
    }
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    asyncio.run(typed_read())  # warm-up: pydantic builds its validators lazily
    for _ in range(args.repeat):
        for name, fn in scenarios.items():  # interleaved, so load changes hit every scenario alike
            times[name].append(_cpu_time(fn))
    floor_median = statistics.median(times["floor: orjson round trip"])
    rows = []
    for name, samples in times.items():
        rates = sorted(n / t for t in samples)
        ratios = sorted(t / floor_median for t in samples)
        rows.append(
            f"| {name} | {statistics.median(rates):,.0f} | {rates[0]:,.0f}-{rates[-1]:,.0f} | "
            f"{statistics.median(ratios):.1f}x | {ratios[0]:.1f}-{ratios[-1]:.1f}x | "
            f"{statistics.median(samples) / n * 1e6:.1f} |"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n".join(
        [
            "# Typed reads",
            "",
            "Generated by `python -m benchmarks.bench_typed`; do not edit by hand.",
            "",
            "Reads of one Website from a synced cache through `Client.get`: as a dict, and parsed into "
            "the `Website` pydantic model. The floor is one orjson round trip of the object (the copy "
            "every cached read makes).",
            "",
            f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.machine()} "
            f"with {os.cpu_count()} CPUs (load average after the run: {load}), {n:,} objects, "
            f"{args.repeat} runs each, CPU time of the process, GC off.",
            "",
            "| read | reads/CPU-s (median) | spread (min-max) | time vs floor (median) | spread | "
            "us per read |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "## Reading the numbers",
            "",
            "* The dict read costs the floor plus the client's lookup; the typed read adds pydantic's "
            "validation of every field into model instances (nested models for metadata, spec, status "
            "and each condition).",
            "* The informer cache is unchanged (dicts): the typed cost is paid per read, only by "
            "reconcilers that ask for the class.",
            "",
        ]
    )
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
