"""The real kubectl binary against the server: apply, get (table and YAML), patch, watch, delete.

Skipped when kubectl is absent (set ``$KCTL_KUBECTL`` to point at one)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

KUBECTL = os.environ.get("KCTL_KUBECTL") or shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not found on PATH (set $KCTL_KUBECTL)")


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.base = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache)]

    async def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        process = await asyncio.create_subprocess_exec(
            *self.base,
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
        if check and process.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({process.returncode}): {err.decode()}")
        return out.decode()


def _crd(group: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }


async def test_kubectl_applies_gets_patches_watches_and_deletes_a_custom_resource(
    kube: KubeTarget, tmp_path: Path
) -> None:
    kubectl = Kubectl(kube.kubeconfig, tmp_path / "cache")
    group = f"{unique_name('k')}.kctl.example.com"
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(_crd(group)))
    out = await kubectl.run("apply", "-f", str(crd_file))
    assert f"customresourcedefinition.apiextensions.k8s.io/gadgets.{group} created" in out
    try:
        await kubectl.run("wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=30s")
        resource = f"gadgets.{group}"

        cr_file = tmp_path / "cr.yaml"
        cr_file.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Gadget",
                    "metadata": {"name": "g1", "namespace": kube.namespace},
                    "spec": {"size": 3},
                }
            )
        )

        async def applied() -> bool:
            out = await kubectl.run("apply", "-f", str(cr_file), check=False)
            assert "gadget" in out, out
            return True

        await eventually(applied, timeout=30, message="kubectl apply of the custom resource")

        table = await kubectl.run("get", resource, "-n", kube.namespace)
        header, row = table.strip().splitlines()
        assert header.split() == ["NAME", "SIZE"]
        assert row.split() == ["g1", "3"]

        as_yaml = yaml.safe_load(await kubectl.run("get", resource, "g1", "-n", kube.namespace, "-o", "yaml"))
        assert as_yaml["spec"] == {"size": 3}
        assert as_yaml["metadata"]["generation"] == 1
        assert "kubectl.kubernetes.io/last-applied-configuration" in as_yaml["metadata"]["annotations"]

        await kubectl.run(
            "patch", resource, "g1", "-n", kube.namespace, "--type=merge", "-p", '{"spec":{"size":5}}'
        )
        patched = yaml.safe_load(await kubectl.run("get", resource, "g1", "-n", kube.namespace, "-o", "yaml"))
        assert patched["spec"]["size"] == 5
        assert patched["metadata"]["generation"] == 2

        cr_file.write_text(cr_file.read_text().replace("size: 3", "size: 4"))
        await kubectl.run("apply", "-f", str(cr_file))
        reapplied = yaml.safe_load(
            await kubectl.run("get", resource, "g1", "-n", kube.namespace, "-o", "yaml")
        )
        assert reapplied["spec"]["size"] == 4

        dry = await kubectl.run("apply", "-f", str(cr_file), "--dry-run=server")
        assert "server dry run" in dry

        watcher = await asyncio.create_subprocess_exec(
            *kubectl.base,
            "get",
            resource,
            "-n",
            kube.namespace,
            "--watch",
            "--output-watch-events",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert watcher.stdout is not None
            first = await asyncio.wait_for(watcher.stdout.readline(), 30)
            second = await asyncio.wait_for(watcher.stdout.readline(), 30)
            assert first.decode().split()[:2] == ["EVENT", "NAME"]
            assert second.decode().split()[:2] == ["ADDED", "g1"]
            await kubectl.run("label", resource, "g1", "-n", kube.namespace, "touched=yes")
            third = await asyncio.wait_for(watcher.stdout.readline(), 30)
            assert third.decode().split()[:2] == ["MODIFIED", "g1"]
        finally:
            watcher.kill()
            await watcher.wait()

        out = await kubectl.run("delete", resource, "g1", "-n", kube.namespace)
        assert "deleted" in out
        left = await kubectl.run("get", resource, "-n", kube.namespace, "-o", "name")
        assert left.strip() == ""
    finally:
        await kubectl.run("delete", "-f", str(crd_file), "--wait=false", check=False)


async def test_kubectl_applies_and_reconfigures_built_in_objects(kube: KubeTarget, tmp_path: Path) -> None:
    kubectl = Kubectl(kube.kubeconfig, tmp_path / "cache")
    manifest = tmp_path / "objects.yaml"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": kube.namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "main", "image": "nginx", "env": [{"name": "A", "value": "1"}]}]
                },
            },
        },
    }
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": kube.namespace},
        "data": {"a": "1"},
    }
    manifest.write_text(yaml.safe_dump_all([cm, deployment]))
    out = await kubectl.run("apply", "-f", str(manifest))
    assert "configmap/settings created" in out
    assert "deployment.apps/web created" in out
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]  # type: ignore[index]
    manifest.write_text(yaml.safe_dump_all([cm, deployment]))
    out = await kubectl.run("apply", "-f", str(manifest))
    assert "deployment.apps/web configured" in out
    got = yaml.safe_load(await kubectl.run("get", "deployment", "web", "-n", kube.namespace, "-o", "yaml"))
    assert got["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert got["metadata"]["generation"] == 2
    table = await kubectl.run("get", "configmaps", "settings", "-n", kube.namespace)
    assert table.split()[:3] == ["NAME", "DATA", "AGE"]


async def test_kubectl_create_generators_that_send_protobuf_work(kube: KubeTarget, tmp_path: Path) -> None:
    kubectl = Kubectl(kube.kubeconfig, tmp_path / "cache")
    namespace = unique_name("kc")
    assert f"namespace/{namespace} created" in await kubectl.run("create", "namespace", namespace)
    try:
        ns = kube.namespace
        out = await kubectl.run(
            "create", "configmap", "settings", "-n", ns, "--from-literal=a=1", "--from-literal=b=2"
        )
        assert "configmap/settings created" in out
        await kubectl.run("create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=hunter2")
        await kubectl.run("create", "serviceaccount", "robot", "-n", ns)
        cm = yaml.safe_load(await kubectl.run("get", "configmap", "settings", "-n", ns, "-o", "yaml"))
        assert cm["data"] == {"a": "1", "b": "2"}
        secret = yaml.safe_load(await kubectl.run("get", "secret", "creds", "-n", ns, "-o", "yaml"))
        assert secret["type"] == "Opaque"
        assert secret["data"] == {"password": "aHVudGVyMg=="}
        names = await kubectl.run("get", "serviceaccounts", "-n", ns, "-o", "name")
        assert "serviceaccount/robot" in names.split()
        created = yaml.safe_load(await kubectl.run("get", "namespace", namespace, "-o", "yaml"))
        assert created["status"]["phase"] == "Active"
    finally:
        await kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


async def test_kubectl_server_side_apply_reports_conflicts_and_forces_them(
    kube: KubeTarget, tmp_path: Path
) -> None:
    kubectl = Kubectl(kube.kubeconfig, tmp_path / "cache")
    manifest = tmp_path / "cm.yaml"

    def write(value: str) -> None:
        manifest.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "ssa", "namespace": kube.namespace},
                    "data": {"owner": value},
                }
            )
        )

    write("first")
    out = await kubectl.run("apply", "--server-side", "--field-manager", "first", "-f", str(manifest))
    assert "configmap/ssa serverside-applied" in out
    write("second")
    process = await asyncio.create_subprocess_exec(
        *kubectl.base,
        "apply",
        "--server-side",
        "--field-manager",
        "second",
        "-f",
        str(manifest),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "first": .data.owner' in err.decode()
    await kubectl.run(
        "apply", "--server-side", "--force-conflicts", "--field-manager", "second", "-f", str(manifest)
    )
    got = yaml.safe_load(
        await kubectl.run(
            "get", "configmap", "ssa", "-n", kube.namespace, "-o", "yaml", "--show-managed-fields"
        )
    )
    assert got["data"] == {"owner": "second"}
    assert [m["manager"] for m in got["metadata"]["managedFields"]] == ["second"]
