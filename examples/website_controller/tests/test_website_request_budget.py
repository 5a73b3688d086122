"""Regression guard (issue 15): how many API requests the Website controller sends per reconcile.

The controller runs against the fake API server through a counting HTTP proxy (real HTTP, the real
client; nothing is patched), so every request it sends -- reads that missed the cache, writes,
events -- is seen. In steady state a reconcile must send nothing: reads come from the cache, and a
child that already matches is not applied again. A spec change costs one Deployment apply, at most
two status writes and one event. Not timed.
"""

from __future__ import annotations

import collections
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from examples.website_controller.controller import WEBSITES, child_name
from examples.website_controller.tests.harness import Running, install_crd, running_controller, website
from kctl_runtime.client import Client
from kctl_runtime.errors import NotFound
from kctl_runtime.informer import Informer, ResourceEventHandlerFuncs
from kctl_runtime.resource import DEPLOYMENTS, SERVICES
from kctl_runtime.testing.proxy import CountingProxy, proxied_kubeconfig, request_kind
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from kctl_runtime.watcher import WatcherConfig

OTHER_REPO = "https://example.com/other/site.git"


async def test_steady_state_reconciles_send_no_requests_and_a_spec_change_costs_one_apply(
    fake_kube: KubeTarget, tmp_path: Path
) -> None:
    kube = fake_kube
    api = Client(kube.api_client)
    await install_crd(api)
    names = [f"budget-{i}" for i in range(3)]
    for name in names:
        await api.create(WEBSITES, website(name, kube.namespace), namespace=kube.namespace)
    upstream = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    async with CountingProxy(upstream).running() as proxy:
        kubeconfig = proxied_kubeconfig(kube.kubeconfig, proxy.url, tmp_path)
        async with running_controller(kube, kubeconfig=kubeconfig) as running:

            async def converged() -> bool:
                for name in names:
                    current = await api.get(WEBSITES, name, kube.namespace)
                    if (current.get("status") or {}).get("observedGeneration") != 1:
                        return False
                return True

            await eventually(converged, message="Websites converged")

            async def quiet() -> bool:
                before = (len(running.reconciler.calls), len(proxy.requests))
                await anyio.sleep(1.0)
                return before == (len(running.reconciler.calls), len(proxy.requests))

            await eventually(quiet, timeout=30, message="controller quiet")

            # steady state: someone else edits a field we do not manage on each child; each edit
            # reconciles the Website, which must find everything in place and send nothing
            proxy.requests.clear()
            calls = len(running.reconciler.calls)
            for name in names:
                for resource in (DEPLOYMENTS, SERVICES):
                    await api.patch(
                        resource,
                        child_name(name),
                        {"metadata": {"labels": {"touched-by": "someone-else"}}},
                        namespace=kube.namespace,
                    )

            async def reconciled_all() -> bool:
                return len(running.reconciler.calls) - calls >= 2 * len(names)

            await eventually(reconciled_all, message="a reconcile per edited child")
            await eventually(quiet, timeout=30, message="controller quiet")
            assert proxy.sent() == [], "steady-state reconciles sent requests"

            # a spec change: one Deployment apply, at most two status writes, at most one event
            proxy.requests.clear()
            await api.patch(
                WEBSITES,
                names[0],
                {"spec": {"gitRepo": "https://example.com/other/site.git"}},
                namespace=kube.namespace,
            )

            async def rolled() -> bool:
                deployment = await api.get(DEPLOYMENTS, child_name(names[0]), kube.namespace)
                return "other/site.git" in str(deployment["spec"]["template"])

            await eventually(rolled, message="spec change rolled out")
            await eventually(quiet, timeout=30, message="controller quiet")
            sent = proxy.sent()
            kinds = collections.Counter(request_kind(method, path) for method, path in sent)
            assert kinds[("PATCH", "deployments")] == 1, sent
            assert kinds[("PATCH", "status")] <= 2, sent
            assert kinds[("POST", "events")] + kinds[("PATCH", "events")] <= 1, sent
            assert (
                sum(kinds.values())
                - kinds[("PATCH", "deployments")]
                - kinds[("PATCH", "status")]
                - (kinds[("POST", "events")] + kinds[("PATCH", "events")])
                == 0
            ), f"unexpected requests: {sent}"


async def _deployment_controller(
    api: Client, namespace: str, name: str, reports: list[int], limit: int
) -> None:
    """On the fake API server (no kube-controller-manager): report on the Deployment as its
    controller would -- ``status.observedGeneration`` -- for its first ``limit`` generations."""
    while True:
        try:
            deployment = await api.get(DEPLOYMENTS, name, namespace)
        except NotFound:
            deployment = None
        if deployment is not None:
            generation = deployment["metadata"]["generation"]
            observed = (deployment.get("status") or {}).get("observedGeneration") or 0
            if observed < generation <= limit:
                await api.patch(
                    DEPLOYMENTS,
                    name,
                    {"status": {"observedGeneration": generation}},
                    namespace=namespace,
                    subresource="status",
                )
                reports.append(generation)
        await anyio.sleep(0.05)


class _StatusWrites:
    """Every change of one Website's status, as its watch shows it (real HTTP, the runtime's Informer)."""

    def __init__(self, kube: KubeTarget, name: str) -> None:
        self.seen: list[dict[str, Any]] = []
        config = WatcherConfig(namespace=kube.namespace, field_selector=f"metadata.name={name}")
        self.informer = Informer(kube.api_client, WEBSITES, config=config)
        self.informer.add_handler(ResourceEventHandlerFuncs(update=self._update))

    def _update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old.get("status") != new.get("status"):
            self.seen.append(new.get("status") or {})


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or () if c["type"] == "Ready"), {})


async def _status_is(api: Client, kube: KubeTarget, name: str, generation: int, message: str) -> bool:
    got = (await api.get(WEBSITES, name, kube.namespace)).get("status") or {}
    return got.get("observedGeneration") == generation and _ready(got).get("message") == message


@dataclass
class _Rollout:
    api: Client
    name: str
    writes: _StatusWrites
    reports: list[int]
    running: Running


@contextlib.asynccontextmanager
async def _rollout(
    kube: KubeTarget, prefix: str, *, reports_up_to: int, grace: float
) -> AsyncIterator[_Rollout]:
    """A Website, the controller (``rollout_grace_seconds=grace``) and a watch on the Website's
    status; on the fake, a stand-in Deployment controller reporting generations up to ``reports_up_to``."""
    api = Client(kube.api_client)
    await install_crd(api)
    name = unique_name(prefix)
    await api.create(WEBSITES, website(name, kube.namespace), namespace=kube.namespace)
    writes = _StatusWrites(kube, name)
    reports: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(writes.informer.run)
        if kube.is_fake:  # envtest runs the real Deployment controller
            tg.start_soon(
                _deployment_controller, api, kube.namespace, child_name(name), reports, reports_up_to
            )
        async with running_controller(kube, rollout_grace_seconds=grace) as running:
            yield _Rollout(api, name, writes, reports, running)
        tg.cancel_scope.cancel()


async def test_a_spec_change_writes_status_once_when_the_deployment_controller_reports(
    kube: KubeTarget,
) -> None:
    """Not "waiting for the Deployment controller" and then the real status at once: one write."""
    available = "0/1 replicas available"
    async with _rollout(kube, "rollout", reports_up_to=99, grace=3.0) as r:
        await eventually(functools.partial(_status_is, r.api, kube, r.name, 1, available), message="reported")
        r.writes.seen.clear()
        await r.api.patch(WEBSITES, r.name, {"spec": {"gitRepo": OTHER_REPO}}, namespace=kube.namespace)
        await eventually(
            functools.partial(_status_is, r.api, kube, r.name, 2, available), message="the change"
        )
        calls = len(r.running.reconciler.calls)
        await anyio.sleep(3.5)  # past the grace: its timer reconciles once more, writing nothing
        assert len(r.running.reconciler.calls) > calls
    assert [(s.get("observedGeneration"), _ready(s).get("message")) for s in r.writes.seen] == [
        (2, available)
    ]


@pytest.mark.fake_only
async def test_without_a_report_the_status_is_written_after_the_grace(kube: KubeTarget) -> None:
    """A Deployment controller that reported once and then went away: the status still moves on."""
    waiting = "waiting for the Deployment controller to roll out the change"
    async with _rollout(kube, "noreport", reports_up_to=1, grace=0.5) as r:
        reported = functools.partial(_status_is, r.api, kube, r.name, 1, "0/1 replicas available")
        await eventually(reported, message="reported")
        r.writes.seen.clear()
        await r.api.patch(WEBSITES, r.name, {"spec": {"gitRepo": OTHER_REPO}}, namespace=kube.namespace)
        await eventually(
            functools.partial(_status_is, r.api, kube, r.name, 2, waiting), message="after the grace"
        )
    assert r.reports == [1]
    assert [(s.get("observedGeneration"), _ready(s).get("reason")) for s in r.writes.seen] == [
        (2, "DeploymentProgressing")
    ]
