"""Fake API server benchmark: bulk load, HTTP create throughput, paginated LIST and watch fan-out.

Run: ``python -m benchmarks.bench_fakeapi [--objects 50000] [--creates 2000] [--watchers 50]
[--events 2000]``. Prints a markdown table and writes ``docs/benchmarks/fakeapi.md``.

What is measured (server and clients share one process and one event loop, so every number
includes the client's own cost; a real deployment would give the server its own core):

* **seed** -- ``FakeApiServer.seed`` of ``--objects`` ConfigMaps of about 1.3 KB each straight into
  storage (encoding each object once), no HTTP.
* **HTTP create** -- ``--creates`` ConfigMaps POSTed through kubernetes-asyncio's transport with 16
  requests in flight (bodies sent as JSON, answers read as bytes, not decoded into models); once with
  ``managedFields`` bookkeeping (the default, as kube-apiserver) and once without.
* **LIST, limit=500** -- every seeded object read back in pages of 500 following ``continue``
  tokens, each page decoded with orjson by the client.
* **watch fan-out** -- ``--watchers`` HTTP watches on one namespace; ``--events`` ConfigMap updates
  written straight into the cluster (no HTTP on the write side); time until every watcher has
  received every event. Each event is encoded once and the same bytes go to every watcher.

Bounded: every phase has a fixed count and the whole run takes well under a minute by default.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kctl_runtime.testing import FakeApiServer

NS = "bench"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "fakeapi.md"


def configmap(i: int, namespace: str = NS) -> dict[str, Any]:
    """About 1.3 KB once encoded, like a small real-world ConfigMap."""
    return {
        "metadata": {
            "name": f"cm-{i:06d}",
            "namespace": namespace,
            "labels": {"app": "bench", "shard": str(i % 16)},
            "annotations": {"bench.kctl.example.com/note": "x" * 64},
        },
        "data": {f"key-{k}": f"{i:06d}-" + "v" * 100 for k in range(9)},
    }


@dataclass
class Row:
    phase: str
    count: int
    seconds: float
    unit: str

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


async def _request(
    api: Any, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None
) -> bytes:
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = await api.call_api(
        path, method, query_params=query or [], header_params=headers, body=body, _preload_content=False
    )
    try:
        data: bytes = await response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return data
    finally:
        response.release()


async def bench_create(api: Any, count: int, namespace: str, phase: str) -> Row:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await _request(api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap(i, namespace))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    return Row(phase, count, time.perf_counter() - started, "objects/s")


async def bench_list(api: Any, expected: int) -> tuple[Row, int]:
    started = time.perf_counter()
    seen = 0
    pages = 0
    token = ""
    while True:
        query = [("limit", "500")] + ([("continue", token)] if token else [])
        page = orjson.loads(await _request(api, "GET", f"/api/v1/namespaces/{NS}/configmaps", query=query))
        pages += 1
        seen += len(page["items"])
        token = page["metadata"].get("continue", "")
        if not token:
            break
    elapsed = time.perf_counter() - started
    if seen != expected:
        raise RuntimeError(f"listed {seen} objects, expected {expected}")
    return Row(f"LIST all, limit=500 ({pages} pages)", seen, elapsed, "objects/s"), pages


async def bench_watch(server: FakeApiServer, api: Any, watchers: int, events: int) -> Row:
    cluster = server.cluster
    rt = cluster.registry.find_kind("v1", "ConfigMap")
    assert rt is not None
    cluster.create(rt, "bench-watch", configmap(0, "bench-watch"), manager="bench")
    start_rv = str(cluster.storage.rv)
    done = asyncio.Event()
    remaining = watchers
    responses = []
    for _ in range(watchers):
        responses.append(
            await api.call_api(
                "/api/v1/namespaces/bench-watch/configmaps",
                "GET",
                query_params=[("watch", "true"), ("resourceVersion", start_rv)],
                header_params={"Accept": "application/json"},
                _preload_content=False,
            )
        )

    async def consume(response: Any) -> None:
        nonlocal remaining
        got = 0
        pending = b""
        async for chunk in response.content.iter_any():
            pending += chunk
            got += pending.count(b"\n")
            pending = pending[pending.rfind(b"\n") + 1 :]
            if got >= events:
                break
        remaining -= 1
        if remaining == 0:
            done.set()

    tasks = [asyncio.create_task(consume(r)) for r in responses]
    await asyncio.sleep(0.2)
    started = time.perf_counter()

    def set_data(value: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda obj: {**obj, "data": {"i": value}}

    for i in range(events):
        cluster.patch_with(rt, "bench-watch", "cm-000000", set_data(str(i)), manager="bench")
        if i % 100 == 99:
            await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    for task in tasks:
        await task
    for response in responses:
        response.close()
    return Row(
        f"watch fan-out ({watchers} watchers x {events} events)", watchers * events, elapsed, "events/s"
    )


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    async with FakeApiServer(history_size=max(10_000, args.events * 2)) as server:
        server.seed(
            "v1",
            "Namespace",
            [{"metadata": {"name": n}} for n in (NS, "bench-http", "bench-http-nomf", "bench-watch")],
        )
        objects = [configmap(i) for i in range(args.objects)]
        started = time.perf_counter()
        server.seed("v1", "ConfigMap", objects)
        rows.append(
            Row("seed (in process, no HTTP)", args.objects, time.perf_counter() - started, "objects/s")
        )
        rt = server.cluster.registry.find_kind("v1", "ConfigMap")
        assert rt is not None
        size = len(server.cluster.raw(rt, next(server.cluster.storage.iter(rt.storage_key, NS))))
        api = await server.api_client()
        try:
            rows.append(await bench_create(api, args.creates, "bench-http", "HTTP create (16 in flight)"))
            server.cluster.track_managed_fields = False
            rows.append(
                await bench_create(
                    api, args.creates, "bench-http-nomf", "HTTP create, managed_fields=False (16 in flight)"
                )
            )
            server.cluster.track_managed_fields = True
            row, _ = await bench_list(api, args.objects)
            rows.append(row)
            rows.append(await bench_watch(server, api, args.watchers, args.events))
        finally:
            await api.close()
    print(f"object size: {size} bytes", file=sys.stderr)
    return rows


def render(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        "# Fake API server benchmark",
        "",
        "Generated by `python -m benchmarks.bench_fakeapi"
        f" --objects {args.objects} --creates {args.creates}"
        f" --watchers {args.watchers} --events {args.events}`"
        f" on Python {platform.python_version()} ({platform.machine()}). Server and clients share one",
        "process and event loop; see the module docstring for what each phase measures.",
        "",
        "| phase | count | seconds | rate |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row.phase} | {row.count:,} | {row.seconds:.2f} | {row.rate:,.0f} {row.unit} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--creates", type=int, default=2_000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks/fakeapi.md")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args))
    table = render(rows, args)
    print(table)
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
