"""Typed reads: ``client.get(Website, ...)`` (parsed into the model) vs ``client.get(WEBSITES, ...)``,
and what parsing costs the Website reconciler per (steady-state) reconcile.

Run: ``python -m benchmarks.bench_typed [--objects N] [--repeat R] [--before REV]``. Prints markdown
tables and writes ``docs/benchmarks/typed.md``.

Both reads are served from the same synced cache (a :class:`~kctl_runtime.store.Store` of N Website
objects shaped like the example's, with status and a Ready condition), through the real
:class:`~kctl_runtime.client.Client`. The floor is the part every cached read must pay: one orjson
round trip of the object (the copy that keeps the cache safe from the caller), measured in the same
run. Each scenario is timed ``--repeat`` times (CPU time of this process, GC off as in the informer
benchmark); the table gives the median and the spread (min-max) as reads per second and as a ratio
to the floor's median.

Reconcile: the example's :class:`~examples.website_controller.controller.WebsiteReconciler` over a
cache of N converged Websites with their Deployments and Services (status up to date), so a reconcile
reads three objects from the cache, parses the Website, builds the desired children, compares, and
sends nothing (the client has no API connection: a request would fail the run). ``--before REV``
also times the reconciler of ``examples/website_controller/controller.py`` at git revision REV (the
dict-based one before the typed model, ``a1020cd``) on the same cache, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from examples.website_controller.api import Website
from examples.website_controller.controller import (
    WEBSITES,
    WebsiteReconciler,
    desired_deployment,
    desired_service,
)
from kctl_runtime.client import Cache, Client
from kctl_runtime.reconcile import Request
from kctl_runtime.resource import DEPLOYMENTS, SERVICES
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


def children(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Website's Deployment and Service as the server holds them once converged."""
    website = Website.from_object(obj)
    deployment = desired_deployment(website)
    deployment["metadata"].update(uid=f"d-{obj['metadata']['uid']}", resourceVersion="7", generation=1)
    deployment["status"] = {"observedGeneration": 1, "replicas": 2, "availableReplicas": 2}
    service = desired_service(website)
    service["metadata"].update(uid=f"s-{obj['metadata']['uid']}", resourceVersion="8")
    service["spec"].update(clusterIP="10.96.0.10")
    service["spec"]["ports"][0]["nodePort"] = 30080
    return deployment, service


class _NoEvents:
    def event(self, obj: Any, type: str, reason: str, message: str) -> None:
        raise AssertionError(f"a converged Website recorded an event: {reason} {message}")


def _controller_at(revision: str) -> types.ModuleType:
    """``examples/website_controller/controller.py`` as it was at git ``revision``, as a module."""
    source = subprocess.run(
        ["git", "show", f"{revision}:examples/website_controller/controller.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"website_controller_at_{revision}")
    module.__file__ = f"{revision}:examples/website_controller/controller.py"
    sys.modules[module.__name__] = module  # dataclasses and typing look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


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
    parser.add_argument("--before", help="also time the Website reconciler at this git revision")
    args = parser.parse_args(argv)
    n: int = args.objects
    store, deployments, services = Store(), Store(), Store()
    objects = [website(i) for i in range(n)]
    for obj in objects:
        store.apply(obj)
        deployment, service = children(obj)
        deployments.apply(deployment)
        services.apply(service)
    cache = Cache()
    cache.register(WEBSITES, _SyncedInformer(store))
    cache.register(DEPLOYMENTS, _SyncedInformer(deployments))
    cache.register(SERVICES, _SyncedInformer(services))
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

    async def parse() -> None:
        for obj in objects:
            Website.from_object(obj)

    requests = [Request(name, "web") for name in names]

    def reconcile_with(reconciler: Any) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            for request in requests:
                await reconciler.reconcile(request)

        return run

    reads: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "floor: orjson round trip": floor,
        "client.get(WEBSITES) -> dict": dict_read,
        "client.get(Website) -> model": typed_read,
    }
    reconciles: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "Website.from_object (the parse alone)": parse,
        "reconcile, typed reconciler (this tree)": reconcile_with(WebsiteReconciler(client, _NoEvents())),
    }
    if args.before:
        before = _controller_at(args.before)
        reconciles[f"reconcile, dict reconciler (at {args.before})"] = reconcile_with(
            before.WebsiteReconciler(client, _NoEvents())
        )
    scenarios = {**reads, **reconciles}
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    for fn in scenarios.values():  # warm-up: pydantic builds its validators lazily
        asyncio.run(fn())
    for _ in range(args.repeat):
        for name, fn in scenarios.items():  # interleaved, so load changes hit every scenario alike
            times[name].append(_cpu_time(fn))
    floor_median = statistics.median(times["floor: orjson round trip"])
    rows = []
    for name in reads:
        samples = times[name]
        rates = sorted(n / t for t in samples)
        ratios = sorted(t / floor_median for t in samples)
        rows.append(
            f"| {name} | {statistics.median(rates):,.0f} | {rates[0]:,.0f}-{rates[-1]:,.0f} | "
            f"{statistics.median(ratios):.1f}x | {ratios[0]:.1f}-{ratios[-1]:.1f}x | "
            f"{statistics.median(samples) / n * 1e6:.1f} |"
        )
    reconcile_rows = []
    for name in reconciles:
        per_call = sorted(t / n * 1e6 for t in times[name])
        reconcile_rows.append(
            f"| {name} | {statistics.median(per_call):.1f} | {per_call[0]:.1f}-{per_call[-1]:.1f} |"
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
            "## Per reconcile",
            "",
            "A steady-state reconcile of the Website example (everything converged: three cache reads, "
            "desired children built and compared, nothing sent), and the parse of the Website it now "
            "makes. CPU microseconds per reconcile, same runs as above"
            + (
                f"; the dict reconciler is the example at git revision `{args.before}`."
                if args.before
                else "."
            ),
            "",
            "| step | us per reconcile (median) | spread (min-max) |",
            "| --- | --- | --- |",
            *reconcile_rows,
            "",
        ]
    )
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
