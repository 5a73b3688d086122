"""A shard process for tests/test_sharding_processes.py: the Website example's own ``main`` with
``--shard``, its reconciler wrapped to append one JSON line per reconcile start and end to the file
``KCTL_TEST_RECORDS`` (``time.monotonic()`` is one clock for every process on a host)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO

from examples.website_controller.__main__ import main
from kctl_runtime.config import run_cli
from kctl_runtime.controller import Controller
from kctl_runtime.reconcile import Reconciler, Request, Result


class _Recording:
    def __init__(self, inner: Reconciler, shard: str, out: IO[str]) -> None:
        self.inner = inner
        self.shard = shard
        self.out = out

    def _write(self, event: str, request: Request) -> None:
        self.out.write(
            json.dumps({"e": event, "s": self.shard, "k": str(request), "t": time.monotonic()}) + "\n"
        )
        self.out.flush()

    async def reconcile(self, request: Request) -> Result:
        self._write("start", request)
        try:
            return await self.inner.reconcile(request)
        finally:
            self._write("end", request)


def _instrument(controller: Controller) -> None:
    out = open(os.environ["KCTL_TEST_RECORDS"], "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    controller.reconciler = _Recording(controller.reconciler, os.environ["KCTL_SHARD_ID"], out)


async def _main() -> int:
    return await main(sys.argv[1:], instrument=_instrument)


if __name__ == "__main__":
    run_cli(_main, prog="shard-worker")
