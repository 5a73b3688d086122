"""What the typed User reconciler costs per steady-state reconcile, against the dict-based one.

Run: ``python -m benchmarks.bench_typed_user [--objects N] [--repeat R] [--before REV]``. Prints a
markdown table (no page is written; ``docs/examples/user.md`` quotes a run).

The example's :class:`~examples.user_controller.controller.UserReconciler` over a synced cache
(:class:`~kctl_runtime.store.Store`) of N converged Users (finalizer, status and a Ready condition
in place), their group namespaces and ServiceAccounts, with each User's token Secret proven
recently (as a running controller holds it between resyncs). A reconcile reads the User, its
namespace and its account from the cache, lists the User's accounts by the uid-label index, and
sends nothing (the client has no API connection: a request would fail the run). ``--before REV``
also times ``examples/user_controller/controller.py`` at git revision REV (``8670580``: the
dict-based reconciler) on the same cache, interleaved. CPU time of this process, GC off; the median
and the spread (min-max) of ``--repeat`` runs, in microseconds per reconcile.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from examples.user_controller import controller as typed
from examples.user_controller.api import User
from kctl_runtime.client import Cache, Client
from kctl_runtime.reconcile import Request, RequeueAfter
from kctl_runtime.resource import NAMESPACES, SERVICEACCOUNTS
from kctl_runtime.store import Store

_GROUPS = 10


class _SyncedInformer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.has_synced = True


class _NoEvents:
    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        raise AssertionError(f"a converged User recorded an event: {reason} {message}")


def user(i: int) -> dict[str, Any]:
    """A converged User as the server holds it."""
    name, namespace = f"user-{i}", typed.group_namespace(f"g{i % _GROUPS}")
    return {
        "apiVersion": typed.USERS.api_version,
        "kind": "User",
        "metadata": {
            "name": name,
            "namespace": "users",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(1000 + i),
            "generation": 1,
            "creationTimestamp": "2026-12-05T09:00:00Z",
            "finalizers": [typed.FINALIZER],
            "labels": {"team": "a"},
        },
        "spec": {"email": f"{name}@kiamol.net", "group": f"g{i % _GROUPS}"},
        "status": {
            "observedGeneration": 1,
            "namespace": namespace,
            "serviceAccount": name,
            "tokenSecret": f"{name}-token",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AccountReady",
                    "message": f"ServiceAccount {namespace}/{name} and its token Secret {name}-token exist",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-12-05T09:01:00Z",
                }
            ],
        },
    }


def _controller_at(revision: str) -> types.ModuleType:
    """``examples/user_controller/controller.py`` as it was at git ``revision``, as a module."""
    source = subprocess.run(
        ["git", "show", f"{revision}:examples/user_controller/controller.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"user_controller_at_{revision}")
    module.__file__ = f"{revision}:examples/user_controller/controller.py"
    sys.modules[module.__name__] = module  # dataclasses and typing look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--before", help="also time the User reconciler at this git revision")
    args = parser.parse_args(argv)
    n: int = args.objects
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    users, namespaces, accounts = Store(), Store(), Store()
    objects = [user(i) for i in range(n)]
    for g in range(_GROUPS):
        namespace = typed.desired_namespace(f"g{g}")
        namespace["metadata"].update(uid=f"ns-{g}", resourceVersion="5")
        namespaces.apply(namespace)
    for obj in objects:
        users.apply(obj)
        account = typed.desired_service_account(User.from_object(obj))
        account["metadata"].update(uid=f"sa-{obj['metadata']['uid']}", resourceVersion="7")
        accounts.apply(account)

    def reconciler(module: types.ModuleType) -> Any:
        cache = Cache()
        cache.register(typed.USERS, _SyncedInformer(users))
        cache.register(NAMESPACES, _SyncedInformer(namespaces))
        cache.register(SERVICEACCOUNTS, _SyncedInformer(accounts))
        made = module.UserReconciler(Client(api_client=None, cache=cache), None, _NoEvents())
        now = made.clock.monotonic()
        for obj in objects:  # each token Secret proven just now: the check is not due
            meta = obj["metadata"]
            made._token_checks[Request(meta["name"], meta["namespace"])] = module._TokenCheck(
                meta["uid"], obj["status"]["namespace"], f"sa-{meta['uid']}", now
            )
        return made

    requests = [Request(o["metadata"]["name"], "users") for o in objects]

    def reconcile_with(made: Any) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            for request in requests:
                outcome = await made.reconcile(request)
                assert isinstance(outcome, RequeueAfter), outcome  # converged: the next check only

        return run

    async def parse() -> None:
        for obj in objects:
            User.from_object(obj)

    scenarios: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "User.from_object (the parse alone)": parse,
        "reconcile, typed reconciler (this tree)": reconcile_with(reconciler(typed)),
    }
    if args.before:
        scenarios[f"reconcile, dict reconciler (at {args.before})"] = reconcile_with(
            reconciler(_controller_at(args.before))
        )
    for fn in scenarios.values():  # warm-up: pydantic builds its validators lazily
        asyncio.run(fn())
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(args.repeat):
        for name, fn in scenarios.items():  # interleaved, so load changes hit every scenario alike
            gc.collect()
            gc.disable()
            try:
                start = time.process_time()
                asyncio.run(fn())
                times[name].append(time.process_time() - start)
            finally:
                gc.enable()
    print(f"{n:,} Users, {args.repeat} runs each, CPU us per reconcile\n")
    print("| scenario | us (median) | spread (min-max) |\n| --- | --- | --- |")
    for name, samples in times.items():
        per_call = sorted(t / n * 1e6 for t in samples)
        print(f"| {name} | {statistics.median(per_call):.1f} | {per_call[0]:.1f}-{per_call[-1]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
