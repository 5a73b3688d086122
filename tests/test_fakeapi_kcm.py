"""The real kube-controller-manager against the fake API server.

The envtest build's kube-controller-manager runs its Deployment, ReplicaSet, garbage collector and
namespace controllers against a ``FakeApiServer(controllers=False)`` (the fake's own collectors step
aside). It is started with ``--kube-api-content-type=application/json``: the fake decodes protobuf
request bodies for a few core kinds only, and JSON is a supported content type of every real
kube-apiserver, so nothing about the controllers' behaviour changes. Skipped when the binary is not
in the envtest cache (``KUBEBUILDER_ASSETS``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.envtest import Binaries, EnvtestUnavailable
from kctl_runtime.testing.fakeapi import FakeApiServer
from kctl_runtime.testing.pytest_plugin import eventually

#: a loaded 2-core machine: the real controllers act within a second or two when idle
PATIENCE = 60.0


def _controller_manager() -> Path:
    try:
        binary = Binaries.find().kube_controller_manager
    except EnvtestUnavailable as exc:
        pytest.skip(f"no envtest binaries: {exc}")
    if binary is None:
        pytest.skip("no kube-controller-manager in the envtest binaries")
    return binary


@contextlib.asynccontextmanager
async def _running_kcm(
    binary: Path,
    server: FakeApiServer,
    log: Path,
    controllers: str = "deployment,replicaset,garbagecollector,namespace",
) -> AsyncIterator[None]:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            f"--kubeconfig={server.kubeconfig_path}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--kube-api-content-type=application/json",
            f"--controllers={controllers}",
            "--use-service-account-credentials=false",
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode is not None


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


async def test_the_real_controller_manager_runs_deployments_gc_and_namespaces_on_the_fake(
    tmp_path: Path,
) -> None:
    binary = _controller_manager()
    async with FakeApiServer(controllers=False) as server:
        api = await server.api_client()
        try:
            async with _running_kcm(binary, server, tmp_path / "kcm.log"):
                apps: Any = client.AppsV1Api(api)
                core: Any = client.CoreV1Api(api)
                await core.create_namespace({"metadata": {"name": "work"}})
                await apps.create_namespaced_deployment("work", _deployment("web"))

                async def scaled_out() -> bool:
                    sets = (await apps.list_namespaced_replica_set("work")).items
                    pods = (await core.list_namespaced_pod("work")).items
                    assert len(sets) == 1, [s.metadata.name for s in sets]
                    assert sets[0].metadata.owner_references[0].kind == "Deployment"
                    assert len(pods) == 2, [p.metadata.name for p in pods]
                    assert {p.status.phase for p in pods} == {"Pending"}
                    assert {p.metadata.owner_references[0].kind for p in pods} == {"ReplicaSet"}
                    return True

                await eventually(
                    scaled_out, timeout=PATIENCE, interval=0.2, message="Deployment -> RS -> Pods"
                )

                await apps.delete_namespaced_deployment("web", "work")

                async def collected() -> bool:
                    assert (await apps.list_namespaced_replica_set("work")).items == []
                    assert (await core.list_namespaced_pod("work")).items == []
                    return True

                await eventually(collected, timeout=PATIENCE, interval=0.2, message="GC removed RS and Pods")

                await core.create_namespaced_config_map("work", {"metadata": {"name": "left"}})
                await core.delete_namespace("work")

                async def namespace_gone() -> bool:
                    try:
                        await core.read_namespace("work")
                    except ApiException as exc:
                        return exc.status == 404
                    raise AssertionError("namespace still there")

                await eventually(namespace_gone, timeout=PATIENCE, interval=0.2, message="namespace deleted")
        finally:
            await api.close()


async def test_the_real_job_controller_runs_a_job_on_the_fake(tmp_path: Path) -> None:
    """The fake's Job registry (defaults, labels, status validation) holds up under the real Job
    controller: it creates the Pod, counts it as it runs and succeeds, and completes the Job with the
    conditions and counters the fake's status validation accepts."""
    binary = _controller_manager()
    async with FakeApiServer(controllers=False) as server:
        api = await server.api_client()
        try:
            async with _running_kcm(binary, server, tmp_path / "kcm.log", "job,garbagecollector"):
                batch: Any = client.BatchV1Api(api)
                core: Any = client.CoreV1Api(api)
                job = {
                    "metadata": {"name": "once"},
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}],
                            }
                        },
                    },
                }
                await batch.create_namespaced_job("default", job)

                async def started() -> Any:
                    pods = (await core.list_namespaced_pod("default", label_selector="job-name=once")).items
                    assert len(pods) == 1, [p.metadata.name for p in pods]
                    assert pods[0].metadata.owner_references[0].kind == "Job"
                    assert "batch.kubernetes.io/job-tracking" in (pods[0].metadata.finalizers or [])
                    status = (await batch.read_namespaced_job_status("once", "default")).status
                    assert status.active == 1, status
                    assert status.start_time is not None
                    return pods[0]

                pod = await eventually(started, timeout=PATIENCE, interval=0.2, message="the Job's Pod")
                now = "2026-01-01T00:00:00Z"
                terminated = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
                await core.patch_namespaced_pod_status(
                    pod.metadata.name,
                    "default",
                    {
                        "status": {
                            "phase": "Succeeded",
                            "containerStatuses": [
                                {
                                    "name": "c",
                                    "image": "busybox:1.36",
                                    "imageID": "",
                                    "ready": False,
                                    "restartCount": 0,
                                    "state": {"terminated": terminated},
                                }
                            ],
                        }
                    },
                )

                async def completed() -> bool:
                    status = (await batch.read_namespaced_job_status("once", "default")).status
                    types = {c.type: c.status for c in status.conditions or ()}
                    assert types.get("Complete") == "True", status
                    assert types.get("SuccessCriteriaMet") == "True", status
                    assert status.succeeded == 1
                    assert not status.active
                    assert status.completion_time is not None
                    return True

                await eventually(completed, timeout=PATIENCE, interval=0.2, message="the Job completed")
        finally:
            await api.close()
