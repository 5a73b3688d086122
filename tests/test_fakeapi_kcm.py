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
async def _running_kcm(binary: Path, server: FakeApiServer, log: Path) -> AsyncIterator[None]:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            f"--kubeconfig={server.kubeconfig_path}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--kube-api-content-type=application/json",
            "--controllers=deployment,replicaset,garbagecollector,namespace",
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
