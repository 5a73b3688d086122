"""The manifest checks every example's Deployment manifests share, in one place.

Contract
--------
:class:`ExampleManifests` describes one example's ``manifests/`` folder (its namespace, service
account, the sample files kept out of the kustomization) and offers one method per shared check.
Each check asserts (an ``AssertionError`` names what is wrong) or calls ``pytest.skip`` / ``fail``
when the tool it needs is missing:

* :meth:`~ExampleManifests.check_documents` -- every document parses and has apiVersion, kind, name;
* :meth:`~ExampleManifests.check_packaged_crd` -- ``manifests/crd.yaml`` is the example's ``crd.yaml``;
* :meth:`~ExampleManifests.check_kustomization_lists_every_manifest` and
  :meth:`~ExampleManifests.check_kustomize_builds` (``kubectl kustomize``);
* :meth:`~ExampleManifests.check_leader_election_role` -- a Role in the controller's namespace
  granting exactly the elector's Lease calls;
* :meth:`~ExampleManifests.check_bindings` -- every binding names the controller's service account
  and none binds a built-in admin role;
* :meth:`~ExampleManifests.check_no_wildcards` -- no ``*`` in any rule of the named role;
* :meth:`~ExampleManifests.check_hardened_deployment` -- two replicas, leader election, probes on the
  health port, non-root with a read-only root filesystem and no capabilities;
* :meth:`~ExampleManifests.check_grace_period` -- the pod outlives a graceful shutdown, the event
  flush and the Lease release;
* :meth:`~ExampleManifests.server_side_dry_run` -- ``kubectl apply --dry-run=server`` of the
  kustomization (optionally without kinds the test cluster does not serve), returning kubectl's
  output.

What each example's controller may call (its ClusterRole) stays in that example's tests.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from examples.website_controller.tests.rbac_tools import granted, load_manifests
from kctl_runtime.client import Client
from kctl_runtime.errors import AlreadyExists
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.manager import _FLUSH_TIMEOUT, Manager
from kctl_runtime.resource import NAMESPACES
from kctl_runtime.testing.pytest_plugin import KubeTarget

__all__ = ["LEADER_ELECTION_CALLS", "ExampleManifests", "kubectl"]

LEADER_ELECTION_CALLS = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def kubectl() -> str | None:
    """The kubectl binary the tests use: ``$KCTL_KUBECTL`` or the one on PATH."""
    return os.environ.get("KCTL_KUBECTL") or shutil.which("kubectl")


@dataclass(frozen=True)
class ExampleManifests:
    """One example's ``manifests/`` folder and the facts the shared checks need (module doc)."""

    example: Path
    namespace: str
    service_account: str
    samples: tuple[str, ...]
    """Files in ``manifests/`` that are not part of the kustomization (sample resources)."""

    @property
    def folder(self) -> Path:
        return self.example / "manifests"

    def docs(self) -> list[dict[str, Any]]:
        return load_manifests(self.folder)

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        (found,) = [
            d for d in self.docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
        ]
        return found

    def sample_kinds(self) -> set[str]:
        return {
            d["kind"]
            for name in self.samples
            for d in yaml.safe_load_all((self.folder / name).read_text())
            if d
        }

    # ------------------------------------------------------------------ static checks

    def check_documents(self, minimum: int) -> None:
        found = self.docs()
        assert len(found) >= minimum, f"{len(found)} documents"
        for doc in found:
            assert doc.get("apiVersion"), doc
            assert doc.get("kind"), doc
            assert doc.get("metadata", {}).get("name"), doc

    def check_packaged_crd(self) -> None:
        assert (self.folder / "crd.yaml").read_text() == (self.example / "crd.yaml").read_text()

    def check_kustomization_lists_every_manifest(self) -> None:
        kustomization = yaml.safe_load((self.folder / "kustomization.yaml").read_text())
        files = {p.name for p in self.folder.glob("*.yaml")} - {"kustomization.yaml", *self.samples}
        assert set(kustomization["resources"]) == files

    def check_kustomize_builds(self) -> None:
        binary = kubectl()
        if binary is None:
            pytest.skip("kubectl not found (set KCTL_KUBECTL)")
        out = subprocess.run(
            [binary, "kustomize", str(self.folder)], check=True, capture_output=True, text=True
        )
        kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
        samples = self.sample_kinds()
        assert kinds == sorted(d["kind"] for d in self.docs() if d["kind"] not in samples)

    def check_no_wildcards(self, role: dict[str, Any]) -> None:
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule[field], rule

    def check_leader_election_role(self) -> None:
        role = self.one("Role")
        assert role["metadata"]["namespace"] == self.namespace
        assert granted([role]) == LEADER_ELECTION_CALLS

    def check_bindings(self, count: int = 2) -> None:
        sa = self.one("ServiceAccount")
        assert (sa["metadata"]["name"], sa["metadata"]["namespace"]) == (self.service_account, self.namespace)
        bindings = [d for d in self.docs() if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
        assert len(bindings) == count
        assert {b["roleRef"]["kind"] for b in bindings} == {"ClusterRole", "Role"}
        for binding in bindings:
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": self.service_account, "namespace": self.namespace}
            ]
            assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")

    def check_hardened_deployment(self) -> dict[str, Any]:
        """The shared checks of the controller Deployment; returns its container for more."""
        deployment = self.one("Deployment")
        assert deployment["metadata"]["namespace"] == self.namespace
        assert deployment["spec"]["replicas"] == 2
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == self.service_account
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert "--leader-elect" in container["args"]
        assert "--health-bind=0.0.0.0:8081" in container["args"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == 8081
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KCTL_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        return dict(container)

    def check_grace_period(self) -> None:
        """The kubelet's SIGKILL must not race the event flush and the Lease release (issue 10 item 8)."""
        pod = self.one("Deployment")["spec"]["template"]["spec"]
        graceful = inspect.signature(Manager).parameters["graceful_shutdown_timeout"].default
        release = LeaderElectionConfig.__dataclass_fields__["renew_deadline"].default
        assert pod["terminationGracePeriodSeconds"] >= graceful + _FLUSH_TIMEOUT + release + 5

    # ------------------------------------------------------------------ against an API server

    async def server_side_dry_run(
        self, kube: KubeTarget, tmp_path: Path, *, without_kinds: Iterable[str] = ()
    ) -> str:
        """``kubectl apply --dry-run=server`` of the kustomization; kubectl's stdout.

        ``without_kinds``: kinds left out because the test cluster does not serve them (e.g.
        cert-manager's). The controller's namespace is created first: a dry run creates nothing.
        """
        binary = kubectl()
        if binary is None:
            pytest.fail("the real tier needs kubectl: set KCTL_KUBECTL or put kubectl on PATH")
        with contextlib.suppress(AlreadyExists):
            await Client(kube.api_client).create(NAMESPACES, {"metadata": {"name": self.namespace}})
        built = await anyio.run_process([binary, "kustomize", str(self.folder)], check=True)
        skipped = set(without_kinds)
        kept = [d for d in yaml.safe_load_all(built.stdout.decode()) if d and d["kind"] not in skipped]
        rendered = tmp_path / "rendered.yaml"
        rendered.write_text(yaml.safe_dump_all(kept))
        result = await anyio.run_process(
            [
                *(binary, "--kubeconfig", str(kube.kubeconfig), "--cache-dir", str(tmp_path / "cache")),
                *("apply", "--dry-run=server", "-f", str(rendered)),
            ],
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()
