"""Leader election between real replicas (issue 10, deliverable 3), on the real tier only.

Two processes of ``python -m examples.website_controller --leader-elect`` campaign for one Lease
with the default timings (lease 15 s, renew deadline 10 s, retry 2 s). Each scenario signals the
leader -- SIGKILL, SIGSTOP then SIGCONT, SIGTERM -- and checks, from the Lease as polled every
100 ms and from the processes' own JSON logs, that there were never two leaders, and how long the
takeover took against the documented bound (lease duration + retry period of the last renewal a
standby observed; the leader-election page documents up to 21.4 s with jitter).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from examples.website_controller.tests.harness import install_crd
from kctl_runtime.client import Client
from kctl_runtime.errors import NotFound
from kctl_runtime.resource import Resource
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

pytestmark = pytest.mark.real_only

LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0
#: lease + retry, the bound a standby aims for; the page documents 21.4 s including jitter.
TARGET_BOUND = LEASE_DURATION + RETRY_PERIOD
DOCUMENTED_BOUND = 21.4
SLACK = 5.0  # a loaded 2-core machine shared by several test runs
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Replica:
    index: int
    process: anyio.abc.Process
    events: list[tuple[float, str]] = field(default_factory=list)
    identity: str = ""

    def first(self, event: str, after: float = 0.0) -> float | None:
        return next((t for t, e in self.events if e == event and t >= after), None)


@dataclass
class LeaseWatch:
    """The Lease's holder as polled: (time, holderIdentity, leaseTransitions) on every change."""

    history: list[tuple[float, str, int]] = field(default_factory=list)


async def _read_logs(replica: Replica) -> None:
    assert replica.process.stdout is not None
    buffered = b""
    async for chunk in replica.process.stdout:
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                record: dict[str, Any] = json.loads(line)
                event = str(record.get("event", ""))
                if record.get("identity"):
                    replica.identity = str(record["identity"])
                replica.events.append((time.monotonic(), event))


async def _poll_lease(api: Client, namespace: str, name: str, watch: LeaseWatch) -> None:
    while True:
        with contextlib.suppress(NotFound, OSError):
            lease = await api.get(LEASES, name, namespace)
            spec = lease.get("spec") or {}
            entry = (str(spec.get("holderIdentity") or ""), int(spec.get("leaseTransitions") or 0))
            if not watch.history or watch.history[-1][1:] != entry:
                watch.history.append((time.monotonic(), *entry))
        await anyio.sleep(0.1)


@contextlib.asynccontextmanager
async def replicas(kube: KubeTarget, lease: str, count: int = 2) -> AsyncIterator[list[Replica]]:
    argv = [
        sys.executable,
        "-m",
        "examples.website_controller",
        f"--kubeconfig={kube.kubeconfig}",
        f"--namespace={kube.namespace}",
        "--leader-elect",
        f"--lease-namespace={kube.namespace}",
        f"--lease-name={lease}",
        "--health-bind=off",
        "--metrics-bind=off",
        "--log-format=json",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started: list[Replica] = []
    async with anyio.create_task_group() as tg:
        try:
            for index in range(count):
                process = await anyio.open_process(
                    argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
                replica = Replica(index, process)
                started.append(replica)
                tg.start_soon(_read_logs, replica)
            yield started
        finally:
            for replica in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.process.pid, signal.SIGCONT)
                    os.kill(replica.process.pid, signal.SIGKILL)
                with anyio.CancelScope(shield=True):
                    await replica.process.wait()
            tg.cancel_scope.cancel()


def never_two_leaders(
    history: list[tuple[float, str, int]], replicas_: list[Replica], halted: dict[int, float]
) -> None:
    """From the Lease: transitions only grow. From the logs: leading spans of different replicas do
    not overlap, where a span ends at a stopped / released / lost line, or when the replica was
    halted (``halted``: index -> time of its SIGKILL or SIGSTOP; a halted process cannot act)."""
    transitions = [t for _, _, t in history]
    assert transitions == sorted(transitions), history
    spans = []
    for replica in replicas_:
        begin = None
        for at, event in replica.events:
            if event == "started leading":
                begin = at
            elif begin is not None and (
                event in ("stopped leading", "released the lease") or event.startswith("leadership lost")
            ):
                spans.append((begin, min(at, halted.get(replica.index, at)), replica.index))
                begin = None
        if begin is not None:
            spans.append((begin, halted.get(replica.index, float("inf")), replica.index))
    spans.sort()
    for (_b1, e1, r1), (b2, _e2, r2) in itertools.pairwise(spans):
        assert r1 == r2 or b2 >= e1, f"replica {r2} led from {b2:.2f} while replica {r1} led until {e1:.2f}"


async def _leader(replicas_: list[Replica], after: float = 0.0, timeout: float = 60.0) -> Replica:
    async def found() -> Replica:
        leading = [r for r in replicas_ if r.first("started leading", after) is not None]
        assert leading, "no replica leads yet"
        return leading[0]

    return await eventually(found, timeout=timeout, interval=0.1, message="a replica leads")


@pytest.mark.parametrize("how", ["kill", "stop", "term"])
async def test_replicas_hand_over_the_lease_without_ever_two_leaders(kube: KubeTarget, how: str) -> None:
    api = Client(kube.api_client)
    await install_crd(api)
    lease = unique_name("lease")
    watch = LeaseWatch()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_poll_lease, api, kube.namespace, lease, watch)
        async with replicas(kube, lease) as pair:
            leader = await _leader(pair)
            await anyio.sleep(3.0)  # a renewal or two, and the standby has observed the lease
            standby = next(r for r in pair if r is not leader)
            signalled = time.monotonic()
            if how == "kill":
                os.kill(leader.process.pid, signal.SIGKILL)
            elif how == "stop":
                os.kill(leader.process.pid, signal.SIGSTOP)
            else:
                os.kill(leader.process.pid, signal.SIGTERM)
            await _leader([standby], after=signalled, timeout=60)
            started = standby.first("started leading", signalled)
            assert started is not None
            takeover = started - signalled
            if how == "stop":
                os.kill(leader.process.pid, signal.SIGCONT)
                resumed = time.monotonic()
                with anyio.fail_after(30):  # the resumed ex-leader notices and exits
                    await leader.process.wait()
                print(f"\n[stop] resumed ex-leader exited {time.monotonic() - resumed:.2f} s after SIGCONT")
            elif how == "term":
                with anyio.fail_after(30):
                    await leader.process.wait()
            await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    bounds = f"lease + retry = {TARGET_BOUND} s, documented {DOCUMENTED_BOUND} s"
    print(f"\n[{how}] takeover {takeover:.2f} s ({bounds}); lease history {watch.history}")
    holders = [h for _, h, _ in watch.history if h]
    assert len(set(holders)) == 2, watch.history
    never_two_leaders(watch.history, pair, {} if how == "term" else {leader.index: signalled})
    if how == "term":
        assert takeover < 3 * RETRY_PERIOD + SLACK, f"a released lease took {takeover:.1f} s to take over"
    else:
        assert takeover < DOCUMENTED_BOUND + SLACK, f"takeover {takeover:.1f} s"
