"""Invariant test: random writes, deletes and reconcile outcomes; the controller stays exclusive and live.

Safety: a key is never reconciled by two workers at once. Liveness (level-based): once the writes
stop and the queue settles, every key's last *successful* reconcile started after the last event
the informer delivered for it -- no change is left unreconciled, whatever failed on the way.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import anyio
import pytest

from kctl_runtime.client import Client
from kctl_runtime.controller import Controller
from kctl_runtime.errors import AlreadyExists, NotFound
from kctl_runtime.informer import InformerFactory, ResourceEventHandlerFuncs
from kctl_runtime.reconcile import Request, RequeueAfter, Result
from kctl_runtime.resource import CONFIGMAPS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

KEYS = [f"k{i}" for i in range(8)]
WRITES = 400
LABEL = "suite=invariants"


@pytest.mark.fake_only
@pytest.mark.parametrize("seed", [1, 2])
async def test_random_events_and_outcomes_never_overlap_a_key_and_leave_nothing_unreconciled(
    fake_kube: KubeTarget, seed: int
) -> None:
    rng = random.Random(seed)
    ns = fake_kube.namespace
    client = Client(fake_kube.api_client)
    last_event: dict[Request, float] = {}
    last_success_start: dict[Request, float] = {}
    in_flight: set[Request] = set()
    overlaps: list[Request] = []
    outcomes = {"error": 0, "requeue_after": 0, "success": 0}

    def record(obj: dict[str, Any]) -> None:
        last_event[Request.from_object(obj)] = time.monotonic()

    async def reconcile(request: Request) -> Result:
        started = time.monotonic()
        if request in in_flight:
            overlaps.append(request)
        in_flight.add(request)
        try:
            await anyio.sleep(rng.random() * 0.002)
            roll = rng.random()
            if roll < 0.2:
                outcomes["error"] += 1
                raise RuntimeError("random failure")
            outcomes["success"] += 1
            last_success_start[request] = started
            if roll < 0.3:
                outcomes["requeue_after"] += 1
                return RequeueAfter(0.01)
            return None
        finally:
            in_flight.discard(request)

    factory = InformerFactory(fake_kube.api_client)
    informer = factory.informer(CONFIGMAPS, namespace=ns, label_selector=LABEL)
    informer.add_handler(
        ResourceEventHandlerFuncs(
            add=lambda o, _initial: record(o), update=lambda _o, n: record(n), delete=record
        )
    )
    controller = Controller(
        f"inv-{uuid.uuid4().hex[:8]}",
        for_=CONFIGMAPS,
        reconciler=reconcile,
        namespace=ns,
        label_selector=LABEL,
        max_concurrent_reconciles=3,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        tg.start_soon(controller.run, factory)
        await factory.wait_for_sync(timeout=30)
        for i in range(WRITES):
            name = rng.choice(KEYS)
            action = rng.random()
            try:
                if action < 0.15:
                    await client.delete(CONFIGMAPS, name, namespace=ns)
                elif action < 0.4:
                    body = {"metadata": {"name": name, "namespace": ns, "labels": {"suite": "invariants"}}}
                    await client.create(CONFIGMAPS, body)
                else:
                    await client.patch(CONFIGMAPS, name, {"data": {"i": str(i)}}, namespace=ns)
            except (NotFound, AlreadyExists):
                pass

        async def settled() -> bool:
            snapshot = dict(last_event)
            await anyio.sleep(0.3)  # no event, no reconcile and no retry pending for a while
            return (
                snapshot == last_event
                and len(controller.queue) == 0
                and controller.queue.processing() == 0
                and all(last_success_start.get(k, -1.0) >= t for k, t in last_event.items())
            )

        await eventually(
            settled, timeout=30, interval=0.01, message="every key reconciled after its last event"
        )
        tg.cancel_scope.cancel()

    assert overlaps == []
    assert outcomes["error"] > 0
    assert outcomes["requeue_after"] > 0
    assert set(last_event) <= {Request(k, ns) for k in KEYS}
