"""The User controller's manifests: they parse, they are hardened, and RBAC is exactly what it uses."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

# The recording proxy and RBAC helpers are shared with the Website example's tests.
from examples.website_controller.tests.rbac_tools import Call, granted, load_manifests

HERE = Path(__file__).resolve().parents[1]
MANIFESTS = HERE / "manifests"
NAMESPACE = "user-system"
SERVICE_ACCOUNT = "user-controller"

# Every API call the User controllers make, and why. The ClusterRole must grant exactly these.
CONTROLLER_CALLS: dict[Call, str] = {
    ("ch20.kiamol.net", "users", "list"): "informer",
    ("ch20.kiamol.net", "users", "watch"): "informer",
    ("ch20.kiamol.net", "users", "get"): "finalizer(): re-read after a conflict; get before the cache syncs",
    ("ch20.kiamol.net", "users", "patch"): "finalizer add/remove (JSON patch with test)",
    ("ch20.kiamol.net", "users/status", "patch"): "status merge patch",
    ("", "namespaces", "list"): "informer (the namespace collector)",
    ("", "namespaces", "watch"): "informer (the namespace collector)",
    (
        "",
        "namespaces",
        "get",
    ): "client.get before the cache has synced",
    ("", "namespaces", "create"): "the group namespace",
    ("", "namespaces", "delete"): "an empty group namespace",
    ("", "serviceaccounts", "list"): "informer (watches); the collector's uncached list",
    ("", "serviceaccounts", "watch"): "informer (watches)",
    ("", "serviceaccounts", "get"): "client.get before the cache has synced",
    ("", "serviceaccounts", "create"): "the account",
    ("", "serviceaccounts", "patch"): "repair labels / automount",
    ("", "serviceaccounts", "delete"): "moving or deleting a user",
    ("", "secrets", "create"): "the token Secret",
    ("", "secrets", "patch"): "ownership test (JSON patch of tests) and repair",
    ("", "secrets", "delete"): "moving or deleting a user",
    ("", "events", "create"): "event recorder: a new event",
    ("", "events", "patch"): "event recorder: a repeated event (count)",
}
LEADER_ELECTION_CALLS: set[Call] = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def docs() -> list[dict[str, Any]]:
    return load_manifests(MANIFESTS)


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def test_every_manifest_parses_and_names_its_kind() -> None:
    found = docs()
    assert len(found) >= 10
    for doc in found:
        assert doc.get("apiVersion"), doc
        assert doc.get("kind"), doc
        assert doc.get("metadata", {}).get("name"), doc


def test_the_packaged_crd_is_the_examples_crd() -> None:
    assert (MANIFESTS / "crd.yaml").read_text() == (HERE / "crd.yaml").read_text()


def test_the_crd_has_the_promised_shape() -> None:
    crd = one("CustomResourceDefinition")
    assert crd["metadata"]["name"] == "users.ch20.kiamol.net"
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:2] == ["Email", "Group"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["email", "group"]
    assert spec["properties"]["group"]["maxLength"] == 63 - len("kiamol-ch20-authn-")


def test_the_kustomization_lists_every_manifest_but_the_sample() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", "sample-users.yaml"}
    assert set(kustomization["resources"]) == files


def test_kustomize_builds_the_manifests() -> None:
    binary = os.environ.get("KCTL_KUBECTL") or shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl not found (set KCTL_KUBECTL)")
    out = subprocess.run([binary, "kustomize", str(MANIFESTS)], check=True, capture_output=True, text=True)
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
    assert kinds == sorted(d["kind"] for d in docs() if d["kind"] != "User")


def test_the_cluster_role_grants_exactly_the_calls_the_controllers_make() -> None:
    role = one("ClusterRole", "user-controller")
    assert granted([role]) == set(CONTROLLER_CALLS)
    for rule in role["rules"]:
        for field in ("verbs", "resources", "apiGroups"):
            assert "*" not in rule[field]


def test_the_controller_can_never_read_a_secret() -> None:
    role = one("ClusterRole", "user-controller")
    secret_verbs = {verb for group, resource, verb in granted([role]) if (group, resource) == ("", "secrets")}
    assert secret_verbs == {"create", "patch", "delete"}


def test_leader_election_is_granted_by_a_role_in_the_controllers_namespace() -> None:
    role = one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert granted([role]) == LEADER_ELECTION_CALLS


def test_every_binding_names_the_controllers_service_account() -> None:
    bindings = [d for d in docs() if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert len(bindings) == 2
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
        ]
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_the_admission_policy_confines_the_controller_to_group_namespaces() -> None:
    policy = one("ValidatingAdmissionPolicy")
    (condition,) = policy["spec"]["matchConditions"]
    assert f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}" in condition["expression"]
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {"namespaces", "serviceaccounts", "secrets"}
    (validation,) = policy["spec"]["validations"]
    assert '"kiamol-ch20-authn-"' in validation["expression"]
    binding = one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_the_controller_deployment_is_hardened_and_runs_two_replicas_with_leader_election() -> None:
    deployment = one("Deployment")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert "--leader-elect" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
