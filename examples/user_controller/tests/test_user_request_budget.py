"""Regression guard (issue 15): how many API requests the User controller sends per User.

Both controllers of the example run against the fake API server through a counting HTTP proxy
(real HTTP, the real client; nothing is patched), so every request they send -- reads that missed
the cache, writes, events -- is seen. Not timed. The budgets:

* a new User in an existing group: the finalizer patch, the ServiceAccount, the token Secret, one
  status write, at most one event -- nothing else (its echoes -- the finalizer, status and account
  events -- send nothing);
* steady state: edits by someone else to a User's labels and to its ServiceAccount reconcile the
  User, which finds everything in place and sends nothing (the token Secret, which the controller
  cannot read, is re-checked once per ``resync_seconds``, not on every event);
* a group move to a group with a namespace: the new account and Secret, the old Secret and
  account deleted (one conditional delete each: the controller knows the Secret it created),
  one status write, at most one event.
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path

import anyio
import yaml

from examples.user_controller.controller import USERS, group_namespace
from examples.user_controller.tests.harness import cleanup, install_crd, running_controller, user
from kctl_runtime.client import Client
from kctl_runtime.resource import NAMESPACES, SECRETS, SERVICEACCOUNTS
from kctl_runtime.testing.proxy import CountingProxy, proxied_kubeconfig, request_kind
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name


def _budget(sent: list[tuple[str, str]]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(request_kind(method, path) for method, path in sent)


async def test_a_user_costs_four_writes_and_an_event_and_its_echoes_cost_nothing(
    fake_kube: KubeTarget, tmp_path: Path
) -> None:
    kube = fake_kube
    api = Client(kube.api_client)
    await install_crd(api)
    groups = [unique_name("g"), unique_name("g")]
    upstream = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    try:
        async with CountingProxy(upstream).running() as proxy:
            kubeconfig = proxied_kubeconfig(kube.kubeconfig, proxy.url, tmp_path)
            async with running_controller(kube, kubeconfig=kubeconfig, resync_seconds=300) as running:
                calls = running.reconciler.calls

                async def quiet() -> bool:
                    before = (len(calls), len(proxy.requests))
                    await anyio.sleep(1.0)
                    return before == (len(calls), len(proxy.requests))

                async def ready(name: str, group: str) -> bool:
                    got = await api.get(USERS, name, kube.namespace)
                    status = got.get("status") or {}
                    return status.get("namespace") == group_namespace(group) and any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in status.get("conditions") or ()
                    )

                # both group namespaces exist first (made by their first Users), so what follows is
                # the cost of a User in a group that has its namespace already
                for i, group in enumerate(groups):
                    await api.create(USERS, user(f"first-{i}", kube.namespace, group))
                    await eventually(functools.partial(ready, f"first-{i}", group), message="ready")
                await eventually(quiet, timeout=30, message="controller quiet")

                # a new User
                proxy.requests.clear()
                before = len(calls)
                await api.create(USERS, user("budget", kube.namespace, groups[0]))
                await eventually(lambda: ready("budget", groups[0]), message="budget User ready")
                await eventually(quiet, timeout=30, message="controller quiet")
                kinds = _budget(proxy.sent())
                events = kinds.pop(("POST", "events"), 0) + kinds.pop(("PATCH", "events"), 0)
                assert events <= 1, proxy.sent()
                assert kinds == {
                    ("PATCH", "users"): 1,  # the finalizer
                    ("POST", "serviceaccounts"): 1,
                    ("POST", "secrets"): 1,
                    ("PATCH", "status"): 1,
                }, proxy.sent()
                assert len(calls) - before >= 3, "the echoes (finalizer, status, account) reconciled"

                # steady state: someone else's edits reconcile the User, which sends nothing
                proxy.requests.clear()
                before = len(calls)
                await api.patch(
                    USERS, "budget", {"metadata": {"labels": {"touched": "yes"}}}, namespace=kube.namespace
                )
                await api.patch(
                    SERVICEACCOUNTS,
                    "budget",
                    {"metadata": {"labels": {"touched": "yes"}}},
                    namespace=group_namespace(groups[0]),
                )

                async def reconciled_twice() -> bool:
                    return len(calls) - before >= 2

                await eventually(reconciled_twice, message="two reconciles")
                await eventually(quiet, timeout=30, message="controller quiet")
                assert proxy.sent() == [], "steady-state reconciles sent requests"

                # a move to a group that has its namespace
                proxy.requests.clear()
                await api.patch(USERS, "budget", {"spec": {"group": groups[1]}}, namespace=kube.namespace)
                await eventually(lambda: ready("budget", groups[1]), message="moved")

                async def old_gone() -> bool:
                    old = group_namespace(groups[0])
                    left = await api.list(SERVICEACCOUNTS, old, label_selector="touched=yes")
                    secrets = [
                        s for s in await api.list(SECRETS, old) if s["metadata"]["name"] == "budget-token"
                    ]
                    return not left and not secrets

                await eventually(old_gone, message="old account removed")
                await eventually(quiet, timeout=30, message="controller quiet")
                kinds = _budget(proxy.sent())
                events = kinds.pop(("POST", "events"), 0) + kinds.pop(("PATCH", "events"), 0)
                assert events <= 1, proxy.sent()
                assert kinds == {
                    ("POST", "serviceaccounts"): 1,
                    ("POST", "secrets"): 1,
                    ("DELETE", "serviceaccounts"): 1,
                    ("DELETE", "secrets"): 1,
                    ("PATCH", "status"): 1,
                }, proxy.sent()
                assert await api.get(NAMESPACES, group_namespace(groups[0]))  # first-0 is still there
    finally:
        await cleanup(api, kube.namespace, groups)
