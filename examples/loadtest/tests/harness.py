"""Test harness for the LoadTest example: CRD and webhooks installed, the controller running, Jobs driven.

Everything goes through real HTTP to the test's API server (fake or real): the webhooks are served
by a local :class:`~kctl_runtime.webhook.WebhookServer` that the API server itself calls, and the
controller runs in a :class:`~kctl_runtime.manager.Manager`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from examples.loadtest.controller import FIELD_MANAGER, LOADTESTS, loadtest_controller
from examples.loadtest.webhooks import webhook_server
from kctl_runtime._rest import request_json
from kctl_runtime.client import Client
from kctl_runtime.config import load_config
from kctl_runtime.errors import Invalid, NotFound
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.manager import Manager
from kctl_runtime.resource import CORE_EVENTS, JOBS, PODS, Resource
from kctl_runtime.testing.envtest.webhooks import install_webhooks
from kctl_runtime.testing.helpers import install_crd, running_manager
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from kctl_runtime.webhook_certs import self_signed

HERE = Path(__file__).resolve().parents[1]


def loadtest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": LOADTESTS.api_version,
        "kind": LOADTESTS.kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def scoped_configurations(namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The shipped configurations, renamed and limited to one namespace (the real plane is shared)."""
    mutating: list[dict[str, Any]] = []
    validating: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all((HERE / "manifests" / "webhooks.yaml").read_text()):
        config = copy.deepcopy(doc)
        config["metadata"] = {"name": unique_name(doc["metadata"]["name"])}
        for hook in config["webhooks"]:
            hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        (mutating if doc["kind"] == "MutatingWebhookConfiguration" else validating).append(config)
    return mutating, validating


@contextlib.asynccontextmanager
async def admission(kube: KubeTarget, cert_dir: Path) -> AsyncIterator[str]:
    """The LoadTest CRD and both webhooks installed; yields the collection path in the test namespace.

    The configurations are in effect once this yields: a LoadTest without ``scheme`` (the
    defaulter must act before the validator lets it through) is probed with dry-run creates.
    """
    await install_crd(Client(kube.api_client), HERE / "crd.yaml")
    ca = self_signed(cert_dir)
    mutating, validating = scoped_configurations(kube.namespace)
    path = f"/apis/beta.kuar.com/v1/namespaces/{kube.namespace}/loadtests"
    async with (
        webhook_server(cert_dir, bind="127.0.0.1:0") as server,
        install_webhooks(kube.api_client, server, ca, mutating=mutating, validating=validating),
    ):

        async def both_in_effect() -> bool:
            probe = loadtest(unique_name("probe"), service="web", requestsPerSecond=1)
            try:
                made = await request_json(
                    kube.api_client, "POST", path, body=probe, query=[("dryRun", "All")]
                )
            except Invalid:  # validated, not yet defaulted
                return False
            return bool(made["spec"].get("scheme") == "http")

        await eventually(both_in_effect, timeout=30, interval=0.2, message="the webhooks never took effect")
        yield path


@contextlib.asynccontextmanager
async def running_controller(
    kube: KubeTarget,
    *,
    conflict_retry_seconds: float = 0.5,
    kubeconfig: Path | None = None,
    leader_election: LeaderElectionConfig | None = None,
) -> AsyncIterator[Manager]:
    """A manager running the shipped LoadTest controller for the test's namespace.

    ``kubeconfig`` connects as someone else than the test's admin (a recording proxy, a service
    account holding only the shipped RBAC).
    """
    await install_crd(Client(kube.api_client), HERE / "crd.yaml")
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
    manager.add(
        loadtest_controller(
            manager.client,
            manager.event_recorder("loadtest-controller"),
            conflict_retry_seconds=conflict_retry_seconds,
        )
    )
    try:
        async with running_manager(manager):
            yield manager
    finally:
        if kubeconfig is not None:
            await api_client.close()


async def get_or_none(
    api: Client, name: str, namespace: str, resource: Resource = JOBS
) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = await api.get(resource, name, namespace)
    except NotFound:
        return None
    return found


async def events_for(api: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    """core/v1 Events about ``name`` in ``namespace``."""
    return [
        e
        for e in await api.list(CORE_EVENTS, namespace=namespace)
        if (e.get("involvedObject") or {}).get("name") == name
    ]


_NOW = "2026-01-01T00:00:00Z"
_LATER = "2026-01-01T00:01:00Z"


async def drive_job(kube: KubeTarget, api: Client, name: str, outcome: str) -> None:
    """Make the Job ``name`` report ``outcome``: ``running``, ``succeeded`` or ``failed``.

    Nothing runs Pods on either tier. The fake runs no Job controller, so the test writes the Job's
    status as kube-controller-manager's Job controller would (the fake validates it like the real
    registry). On the real tier that controller owns the Job's status and overwrites such writes,
    so the test does what a kubelet would: it sets the status of the Pod the Job controller created,
    and the real Job controller counts it.
    """
    namespace = kube.namespace
    if kube.is_fake:
        status: dict[str, Any] = {"startTime": _NOW, "active": 1, "ready": 1}
        if outcome == "succeeded":
            reached = {"reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
            status = {
                "startTime": _NOW,
                "completionTime": _LATER,
                "active": 0,
                "ready": 0,
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", **reached},
                    {"type": "Complete", "status": "True", **reached},
                ],
            }
        elif outcome == "failed":
            exceeded = {
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
            status = {
                "startTime": _NOW,
                "active": 0,
                "ready": 0,
                "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", **exceeded},
                    {"type": "Failed", "status": "True", **exceeded},
                ],
            }
        await api.patch(JOBS, name, {"status": status}, namespace=namespace, subresource="status")
        return

    async def pod() -> dict[str, Any]:
        found = await api.list(
            PODS, namespace=namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
        )
        assert found, "no Pod yet"
        return found[0]

    target = await eventually(pod, timeout=30, message="the Job controller's Pod")
    phase = {"running": "Running", "succeeded": "Succeeded", "failed": "Failed"}[outcome]
    ready = "True" if outcome == "running" else "False"
    container: dict[str, Any] = {"name": "vegeta", "image": "vegeta", "imageID": "", "restartCount": 0}
    if outcome == "running":
        container.update(ready=True, started=True, state={"running": {"startedAt": _NOW}})
    else:
        code = 0 if outcome == "succeeded" else 1
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
        container.update(
            ready=False,
            started=False,
            state={"terminated": {**terminated, "startedAt": _NOW, "finishedAt": _LATER}},
        )
    pod_status = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": _NOW}],
        "containerStatuses": [container],
    }
    await api.patch(
        PODS, target["metadata"]["name"], {"status": pod_status}, namespace=namespace, subresource="status"
    )
