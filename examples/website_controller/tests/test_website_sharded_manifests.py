"""The sharded Website controller's manifests (``manifests-sharded/``): a StatefulSet of shards, and
RBAC that is exactly what sharding adds to the base (docs/sharding.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import yaml

from examples.manifest_checks import LEADER_ELECTION_CALLS, kubectl
from examples.website_controller.controller import WEBSITES
from examples.website_controller.tests.harness import install_crd, website
from examples.website_controller.tests.rbac_tools import Call, granted, load_manifests, recording_proxy
from examples.website_controller.tests.test_website_manifests import (
    CONTROLLER_CALLS,
    MANIFESTS,
    NAMESPACE,
    SERVICE_ACCOUNT,
)
from kctl_runtime.client import Client
from kctl_runtime.sharding import HashRing, shard_label
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

SHARDED = MANIFESTS.parent / "manifests-sharded"
REPO = MANIFESTS.parents[2]

# What sharding adds to the base's calls, and why. manifests-sharded/rbac.yaml grants exactly these
# (together with the base's Lease Role: get, create, update).
SHARDING_CALLS: dict[Call, str] = {
    ("extensions.example.com", "websites", "patch"): "labels: sharder assigns/drains, shard acknowledges",
    ("coordination.k8s.io", "leases", "list"): "sharder: informer on the ring's Leases",
    ("coordination.k8s.io", "leases", "watch"): "sharder: informer on the ring's Leases",
}


def docs() -> list[dict[str, Any]]:
    """The overlay as kustomize builds it: the base without its Deployment, plus the overlay's files."""
    base = [d for d in load_manifests(MANIFESTS) if d["kind"] not in ("Deployment", "Website")]
    return base + load_manifests(SHARDED)


def test_the_overlay_replaces_the_deployment_with_a_statefulset_of_three_shards() -> None:
    (sts,) = [d for d in docs() if d["kind"] == "StatefulSet"]
    assert sts["metadata"]["namespace"] == NAMESPACE
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] in {d["metadata"]["name"] for d in docs() if d["kind"] == "Service"}
    pod = sts["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    (container,) = pod["containers"]
    assert "--shard" in container["args"]
    assert "--leader-elect" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KCTL_SHARD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["KCTL_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_kustomize_builds_the_overlay_without_the_deployment() -> None:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl not found (set KCTL_KUBECTL)")
    out = subprocess.run([binary, "kustomize", str(SHARDED)], check=True, capture_output=True, text=True)
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
    assert kinds == sorted(d["kind"] for d in docs())
    assert "Deployment" not in kinds


def test_the_overlay_grants_the_base_calls_plus_exactly_what_sharding_adds() -> None:
    assert granted(load_manifests(SHARDED)) == set(SHARDING_CALLS)
    base = granted(load_manifests(MANIFESTS))
    assert set(CONTROLLER_CALLS) | LEADER_ELECTION_CALLS <= base
    assert granted(docs()) == base | set(SHARDING_CALLS)


@contextlib.asynccontextmanager
async def shard_process(kubeconfig: Path, namespace: str, shard_id: str) -> AsyncIterator[anyio.abc.Process]:
    argv = [
        sys.executable,
        "-m",
        "examples.website_controller",
        f"--kubeconfig={kubeconfig}",
        f"--namespace={namespace}",
        "--shard",
        f"--shard-id={shard_id}",
        f"--lease-namespace={namespace}",
        "--shard-lease-duration=3",
        "--health-bind=off",
        "--metrics-bind=off",
        "--log-level=warning",
    ]
    process = await anyio.open_process(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=None)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        with anyio.move_on_after(20):
            await process.wait()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()


@pytest.mark.fake_only
async def test_sharded_replicas_make_only_calls_the_overlay_grants(kube: KubeTarget, tmp_path: Path) -> None:
    """Two shard processes of ``python -m examples.website_controller --shard`` behind a recording
    proxy: one first, then a second joins, so assignments, drains and children relabelled all
    happen. Every call they make is granted; every call sharding adds is made."""
    assert kube.fake is not None
    api = Client(kube.api_client)
    await install_crd(api)
    names = [f"site-{i}" for i in range(12)]
    label = shard_label("website")
    async with recording_proxy(kube.fake.url) as recorder:
        kubeconfig = recorder.kubeconfig(tmp_path / "proxy.kubeconfig")
        async with shard_process(kubeconfig, kube.namespace, "shard-a"):
            for name in names:
                await api.create(WEBSITES, website(name, kube.namespace))

            async def on(shards: set[str]) -> bool:
                ring = HashRing(shards)
                sites = {s["metadata"]["name"]: s for s in await api.list(WEBSITES, kube.namespace)}
                for name in names:
                    labels = sites[name]["metadata"].get("labels") or {}
                    assert labels.get(label) == ring.get(f"{kube.namespace}/{name}"), name
                    assert (sites[name].get("status") or {}).get("observedGeneration") == 1, name
                return True

            await eventually(lambda: on({"shard-a"}), timeout=30, message="all on shard-a")
            async with shard_process(kubeconfig, kube.namespace, "shard-b"):
                await eventually(lambda: on({"shard-a", "shard-b"}), timeout=30, message="split over a, b")
    used = recorder.calls
    allowed = granted(docs())
    assert used <= allowed, f"calls the overlay does not grant: {used - allowed}"
    assert set(SHARDING_CALLS) <= used, f"granted but never made: {set(SHARDING_CALLS) - used}"
