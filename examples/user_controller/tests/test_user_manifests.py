"""The User controller's manifests: they parse, they are hardened, and RBAC is exactly what it uses."""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from examples.user_controller.api import User
from examples.user_controller.controller import USERS, group_namespace
from examples.user_controller.permissions import permissions
from examples.user_controller.tests.harness import (
    cleanup,
    get_or_none,
    install_crd,
    namespace_gone,
    running_controller,
    user,
)

# The recording proxy and RBAC helpers are shared with the Website example's tests.
from examples.website_controller.tests.rbac_tools import (
    Call,
    as_service_account,
    granted,
    load_manifests,
    recording_proxy,
)
from kctl_runtime.client import Client
from kctl_runtime.config import load_config
from kctl_runtime.crdgen import crd_yaml
from kctl_runtime.errors import AlreadyExists, Forbidden, Invalid
from kctl_runtime.generated import assert_current
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.manager import _FLUSH_TIMEOUT, Manager
from kctl_runtime.rbac import rbac_yaml
from kctl_runtime.resource import NAMESPACES, SECRETS, SERVICEACCOUNTS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

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


def test_the_crd_is_generated_from_the_user_class() -> None:
    command = "python -m kctl_runtime crd examples.user_controller.api:User"
    assert_current(MANIFESTS / "crd.yaml", crd_yaml(User), command)


def test_the_rbac_is_generated_from_the_declared_permissions() -> None:
    source = "examples.user_controller.permissions:permissions"
    command = f"python -m kctl_runtime rbac {source}"
    assert_current(MANIFESTS / "rbac.yaml", rbac_yaml(permissions(), source=source), command)


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
    assert len(bindings) == 3  # the controller's calls, leader election, secure metrics' reviews
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


# --------------------------------------------------------------------------- against an API server


async def exercise(api: Client, namespace: str, groups: list[str]) -> None:
    """Every step of the workflow, so every kind of call the controllers make happens."""
    first, second = groups[0], groups[1]
    await api.create(USERS, user("tester3", namespace, first))
    await eventually(lambda: _account(api, "tester3", first), message="account created")
    await api.delete(SERVICEACCOUNTS, "tester3", namespace=group_namespace(first))
    await eventually(lambda: _account(api, "tester3", first), timeout=20, message="account recreated")
    await api.patch(
        SERVICEACCOUNTS, "tester3", {"automountServiceAccountToken": True}, namespace=group_namespace(first)
    )

    async def repaired() -> bool:
        sa = await api.get(SERVICEACCOUNTS, "tester3", group_namespace(first))
        assert sa["automountServiceAccountToken"] is False
        return True

    await eventually(repaired, timeout=20, message="account repaired")
    await api.patch(USERS, "tester3", {"spec": {"group": second}}, namespace=namespace)
    await eventually(lambda: _account(api, "tester3", second), message="account moved")
    await eventually(lambda: namespace_gone(api, first), timeout=20, message="old namespace collected")
    await api.delete(USERS, "tester3", namespace=namespace)

    async def cleaned() -> bool:
        assert await get_or_none(api, USERS, "tester3", namespace) is None
        return True

    await eventually(cleaned, timeout=20, message="user deleted")
    await eventually(lambda: namespace_gone(api, second), timeout=20, message="last namespace collected")


async def _account(api: Client, name: str, group: str) -> bool:
    ns = group_namespace(group)
    assert await get_or_none(api, SERVICEACCOUNTS, name, ns) is not None
    assert await get_or_none(api, SECRETS, f"{name}-token", ns) is not None
    return True


def election(namespace: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        lease_name="user-controller",
        lease_namespace=namespace,
        lease_duration=6.0,
        renew_deadline=4.0,
        retry_period=0.5,
    )


@pytest.fixture
async def groups(kube: KubeTarget) -> AsyncIterator[list[str]]:
    api = Client(kube.api_client)
    await install_crd(api)
    names = [unique_name("g") for _ in range(2)]
    yield names
    await cleanup(api, kube.namespace, names)


# Calls the proxy cannot see made: `get` is served from the cache once synced; events are patched
# only when they repeat; the finalizer helper GETs a User only after a conflict.
NOT_OBSERVABLE: set[Call] = {
    ("ch20.kiamol.net", "users", "get"),
    ("", "namespaces", "get"),
    ("", "serviceaccounts", "get"),
    ("", "events", "patch"),
}


@pytest.mark.fake_only
async def test_the_calls_the_controllers_make_are_the_declared_ones(
    kube: KubeTarget, groups: list[str], tmp_path: Path
) -> None:
    assert kube.fake is not None
    api = Client(kube.api_client)
    async with recording_proxy(kube.fake.url) as recorder:
        kubeconfig = recorder.kubeconfig(tmp_path / "proxy.kubeconfig")
        async with running_controller(kube, kubeconfig=kubeconfig, leader_election=election(kube.namespace)):
            await exercise(api, kube.namespace, groups)
    used = recorder.calls
    controller_calls = used - LEADER_ELECTION_CALLS
    assert controller_calls <= set(CONTROLLER_CALLS), (
        f"undeclared calls: {controller_calls - set(CONTROLLER_CALLS)}"
    )
    assert set(CONTROLLER_CALLS) - controller_calls <= NOT_OBSERVABLE, "declared but never made"
    assert used & LEADER_ELECTION_CALLS == LEADER_ELECTION_CALLS
    assert not {c for c in used if c[1] == "secrets" and c[2] in ("get", "list", "watch")}, "read a Secret"


@pytest.mark.real_only
async def test_the_controllers_work_with_nothing_but_their_rbac_and_the_policy_confines_them(
    kube: KubeTarget, groups: list[str], tmp_path: Path
) -> None:
    api = Client(kube.api_client)
    async with as_service_account(
        kube, docs(), service_account=SERVICE_ACCOUNT, tmp_path=tmp_path
    ) as kubeconfig:
        restricted_api = await load_config(kubeconfig)
        try:
            restricted = Client(restricted_api)
            with pytest.raises(Forbidden):
                await restricted.list(SECRETS, namespace=kube.namespace)

            async def confined() -> bool:
                body = {"metadata": {"generateName": "escape-", "namespace": kube.namespace}}
                denial: Exception | None = None
                try:
                    await restricted.create(SECRETS, body)
                except (Forbidden, Invalid) as exc:
                    denial = exc
                assert denial is not None, "the policy is not enforced yet"
                assert "kiamol-ch20-authn-" in str(denial), str(denial)
                return True

            await eventually(confined, timeout=20, message="the admission policy denies writes elsewhere")
        finally:
            await restricted_api.close()
        async with running_controller(kube, kubeconfig=kubeconfig, leader_election=election(kube.namespace)):
            await exercise(api, kube.namespace, groups)


@pytest.mark.real_only
async def test_kubectl_server_side_dry_run_accepts_the_kustomization(
    kube: KubeTarget, tmp_path: Path
) -> None:
    binary = os.environ.get("KCTL_KUBECTL") or shutil.which("kubectl")
    if binary is None:
        pytest.fail("the real tier needs kubectl: set KCTL_KUBECTL or put kubectl on PATH")
    api = Client(kube.api_client)
    with contextlib.suppress(AlreadyExists):
        await api.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
    result = await anyio.run_process(
        [
            *(binary, "--kubeconfig", str(kube.kubeconfig), "--cache-dir", str(tmp_path / "cache")),
            *("apply", "--dry-run=server", "-k", str(MANIFESTS)),
        ],
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/user-controller-scope" in out
    assert "deployment.apps/user-controller" in out


def test_the_pod_outlives_a_graceful_shutdown_and_the_lease_release() -> None:
    """Regression (issue 10 item 8): the grace period equalled graceful_shutdown_timeout, so the
    kubelet's SIGKILL raced the event flush and the lease release that follow it."""
    pod = one("Deployment")["spec"]["template"]["spec"]
    graceful = inspect.signature(Manager).parameters["graceful_shutdown_timeout"].default
    release = LeaderElectionConfig.__dataclass_fields__["renew_deadline"].default
    assert pod["terminationGracePeriodSeconds"] >= graceful + _FLUSH_TIMEOUT + release + 5
