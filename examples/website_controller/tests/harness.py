"""Test harness for the Website controller: install the CRD, run managers, read children and events.

Everything here goes through real HTTP to the test's API server (fake or real), with the runtime's
own :class:`~kctl_runtime.client.Client` (no cache) for the test's reads and writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.website_controller.controller import (
    FIELD_MANAGER,
    WEBSITES,
    WebsiteReconciler,
    website_controller,
)
from kctl_runtime.client import Client
from kctl_runtime.config import load_config
from kctl_runtime.controller import Controller
from kctl_runtime.errors import NotFound
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.manager import Manager
from kctl_runtime.reconcile import Request, RequeueAfter
from kctl_runtime.resource import CORE_EVENTS, DEPLOYMENTS, PODS, Resource
from kctl_runtime.testing.helpers import install_crd as install_crd_and_wait
from kctl_runtime.testing.helpers import running_manager
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

CRD_PATH = Path(__file__).resolve().parents[1] / "manifests" / "crd.yaml"
REPO = "https://github.com/luksa/kubia-website-example.git"


async def install_crd(api: Client) -> None:
    """Create the Website CRD (once per server) and wait until it is established and served."""
    await install_crd_and_wait(api, CRD_PATH)


@dataclass
class CountingReconciler:
    """Wraps the real reconciler to count calls (which replica reconciled, and how often)."""

    inner: WebsiteReconciler
    calls: list[Request] = field(default_factory=list)

    async def reconcile(self, request: Request) -> RequeueAfter | None:
        self.calls.append(request)
        return await self.inner.reconcile(request)


@dataclass
class Running:
    manager: Manager
    reconciler: CountingReconciler


@contextlib.asynccontextmanager
async def running_controller(
    kube: KubeTarget,
    *,
    leader_election: LeaderElectionConfig | None = None,
    wait_leading: bool = True,
    kubeconfig: Path | None = None,
    rollout_grace_seconds: float = 5.0,
) -> AsyncIterator[Running]:
    """A manager running the Website controller for the test's namespace, stopped on exit.

    ``kubeconfig`` connects as someone else than the test's admin (see ``rbac_tools``).
    """
    api_client = await kube.new_api_client() if kubeconfig is None else await load_config(kubeconfig)
    manager = Manager(
        api_client,
        namespace=kube.namespace,
        health_bind="127.0.0.1:0",
        metrics_bind=None,
        leader_election=leader_election,
        handle_signals=False,
        cache_sync_timeout=30,
        graceful_shutdown_timeout=5,
        field_manager=FIELD_MANAGER,
    )
    recorder = manager.event_recorder("website-controller")
    shipped = website_controller(
        manager.client, recorder, conflict_retry_seconds=0.5, rollout_grace_seconds=rollout_grace_seconds
    )
    assert isinstance(shipped.reconciler, WebsiteReconciler)
    reconciler = CountingReconciler(shipped.reconciler)
    manager.add(  # the shipped controller, with a counting reconciler
        Controller(
            shipped.name,
            for_=shipped.for_,
            reconciler=reconciler,
            owns=shipped.owns,
            predicates=shipped.predicates,
            max_concurrent_reconciles=shipped.max_concurrent_reconciles,
        )
    )
    try:
        async with running_manager(manager, wait_leading=leader_election is None or wait_leading):
            yield Running(manager, reconciler)
    finally:
        if kubeconfig is not None:
            await api_client.close()


def website(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"gitRepo": REPO}
    body.update(spec)
    return {
        "apiVersion": WEBSITES.api_version,
        "kind": WEBSITES.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


async def get_or_none(api: Client, resource: Resource, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return await api.get(resource, name, namespace)
    except NotFound:
        return None


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (match,) = [c for c in containers if c["name"] == name]
    return match


def env(deployment: dict[str, Any], name: str = "git-sync") -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(deployment, name).get("env") or []}


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


async def events_for(api: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    """core/v1 Events about the object ``name`` in ``namespace`` (what the recorder writes; the
    real server also serves each of them as an events.k8s.io/v1 Event: do not count those twice)."""
    return [
        e
        for e in await api.list(CORE_EVENTS, namespace=namespace)
        if (e.get("involvedObject") or {}).get("name") == name
    ]


async def make_available(kube: KubeTarget, api: Client, name: str, replicas: int) -> None:
    """Make the Deployment ``name`` report ``replicas`` available replicas.

    Nothing runs pods on either backend. On the fake (no Deployment controller) the test writes the
    Deployment's status itself. On the real control plane the Deployment and ReplicaSet controllers
    own that status and would overwrite such a write, so the test does what a kubelet would: marks
    the Deployment's pods Running and Ready, and lets the real controllers count them.
    """
    namespace = kube.namespace
    if kube.is_fake:
        deployment = await api.get(DEPLOYMENTS, name, namespace)
        generation = deployment["metadata"].get("generation", 1)
        await api.patch(
            DEPLOYMENTS,
            name,
            {
                "status": {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "updatedReplicas": replicas,
                }
            },
            namespace=namespace,
            subresource="status",
        )
        return

    async def pods() -> list[dict[str, Any]]:
        found = await api.list(
            PODS, namespace=namespace, label_selector=f"website={name.removesuffix('-website')}"
        )
        assert len(found) >= replicas, f"{len(found)} pods so far"
        return found

    now = "2020-01-01T00:00:00Z"
    for pod in await eventually(pods, timeout=30, message="the ReplicaSet controller's pods"):
        status = {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
        }
        await api.patch(
            PODS, pod["metadata"]["name"], {"status": status}, namespace=namespace, subresource="status"
        )


Check = Callable[[], Any]
