"""The Website controller's manifests: they parse, they are hardened, and RBAC is exactly what it uses."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from examples.manifest_checks import LEADER_ELECTION_CALLS, ExampleManifests, kubectl
from examples.website_controller.api import Website
from examples.website_controller.controller import WEBSITES
from examples.website_controller.permissions import permissions
from examples.website_controller.tests.harness import (
    env,
    events_for,
    get_or_none,
    install_crd,
    running_controller,
    website,
)
from examples.website_controller.tests.rbac_tools import (
    Call,
    as_service_account,
    granted,
    rbac_call,
    recording_proxy,
)
from kctl_runtime.client import Client
from kctl_runtime.config import load_config
from kctl_runtime.crdgen import crd_yaml
from kctl_runtime.errors import AlreadyExists, Forbidden
from kctl_runtime.generated import assert_current
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.rbac import rbac_yaml
from kctl_runtime.resource import DEPLOYMENTS, NAMESPACES, SECRETS, SERVICES
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

HERE = Path(__file__).resolve().parents[1]
MANIFESTS = HERE / "manifests"
NAMESPACE = "website-system"
SERVICE_ACCOUNT = "website-controller"
EXAMPLE = ExampleManifests(
    HERE, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, samples=("sample-website.yaml",)
)

# Every API call the Website controller makes, and why. The ClusterRole must grant exactly these.
CONTROLLER_CALLS: dict[Call, str] = {
    ("extensions.example.com", "websites", "list"): "informer: initial list and relists",
    ("extensions.example.com", "websites", "watch"): "informer: watch",
    ("extensions.example.com", "websites", "get"): "client.get before the cache has synced",
    ("extensions.example.com", "websites/status", "patch"): "status merge patch",
    ("apps", "deployments", "list"): "informer (owns)",
    ("apps", "deployments", "watch"): "informer (owns)",
    ("apps", "deployments", "get"): "client.get before the cache has synced",
    ("apps", "deployments", "patch"): "server-side apply onto a Deployment it controls",
    ("apps", "deployments", "create"): "create of a missing Deployment (never an apply: no takeover)",
    ("", "services", "list"): "informer (owns)",
    ("", "services", "watch"): "informer (owns)",
    ("", "services", "get"): "client.get before the cache has synced",
    ("", "services", "patch"): "server-side apply onto a Service it controls",
    ("", "services", "create"): "create of a missing Service (never an apply: no takeover)",
    ("", "events", "create"): "event recorder: a new event",
    ("", "events", "patch"): "event recorder: a repeated event (count)",
}
# Calls a recording proxy cannot see made, though the server authorizes them: gets are served from
# the cache once it has synced; an event is only patched when it repeats.
NOT_OBSERVABLE: set[Call] = {
    ("extensions.example.com", "websites", "get"),
    ("apps", "deployments", "get"),
    ("", "services", "get"),
    ("", "events", "patch"),
}
docs = EXAMPLE.docs
one = EXAMPLE.one


def test_every_manifest_parses_and_names_its_kind() -> None:
    EXAMPLE.check_documents(minimum=8)


def test_the_crd_is_generated_from_the_website_class() -> None:
    command = "python -m kctl_runtime crd examples.website_controller.api:Website"
    assert_current(MANIFESTS / "crd.yaml", crd_yaml(Website), command)


def test_the_rbac_is_generated_from_the_declared_permissions() -> None:
    source = "examples.website_controller.permissions:permissions"
    command = f"python -m kctl_runtime rbac {source}"
    assert_current(MANIFESTS / "rbac.yaml", rbac_yaml(permissions(), source=source), command)
    variant = rbac_yaml(permissions(), source=source, watch_namespace="web")
    assert_current(HERE / "manifests-namespaced" / "rbac.yaml", variant, f"{command} --watch-namespace web")
    sharded = rbac_yaml(permissions(), source=source, sharded=True)
    assert_current(HERE / "manifests-sharded" / "rbac.yaml", sharded, f"{command} --sharded")


def test_the_crd_has_the_promised_shape() -> None:
    crd = one("CustomResourceDefinition")
    assert crd["metadata"]["name"] == "websites.extensions.example.com"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["ws"]
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["GitRepo", "Ready", "URL", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["gitRepo"]
    assert spec["properties"]["branch"]["default"] == "main"
    replicas = spec["properties"]["replicas"]
    assert (replicas["default"], replicas["minimum"], replicas["maximum"]) == (1, 0, 10)


def test_the_kustomization_lists_every_manifest_but_the_sample() -> None:
    EXAMPLE.check_kustomization_lists_every_manifest()


def test_kustomize_builds_the_manifests() -> None:
    EXAMPLE.check_kustomize_builds()


def test_the_cluster_role_grants_exactly_the_calls_the_controller_makes() -> None:
    role = one("ClusterRole", "website-controller")
    assert granted([role]) == set(CONTROLLER_CALLS)
    EXAMPLE.check_no_wildcards(role)


def test_leader_election_is_granted_by_a_role_in_the_controllers_namespace() -> None:
    EXAMPLE.check_leader_election_role()


def test_every_binding_names_the_controllers_service_account() -> None:
    EXAMPLE.check_bindings(count=3)  # the controller's calls, leader election, secure metrics' reviews


def test_the_controller_deployment_is_hardened_and_runs_two_replicas_with_leader_election() -> None:
    EXAMPLE.check_hardened_deployment()


@pytest.mark.parametrize(
    ("method", "path", "query", "call"),
    [
        ("GET", "/apis/apps/v1/deployments", {"watch": "true"}, ("apps", "deployments", "watch")),
        ("GET", "/apis/apps/v1/namespaces/x/deployments", {}, ("apps", "deployments", "list")),
        ("PATCH", "/apis/apps/v1/namespaces/x/deployments/d", {}, ("apps", "deployments", "patch")),
        ("PATCH", "/apis/g.io/v1/namespaces/x/websites/w/status", {}, ("g.io", "websites/status", "patch")),
        ("POST", "/api/v1/namespaces/x/events", {}, ("", "events", "create")),
        ("GET", "/api/v1/namespaces/kube-system", {}, ("", "namespaces", "get")),
        ("DELETE", "/api/v1/namespaces/x", {}, ("", "namespaces", "delete")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("", "namespaces/finalize", "update")),
        ("GET", "/apis/apps/v1", {}, None),
        ("GET", "/version", {}, None),
    ],
)
def test_the_recorder_names_requests_as_rbac_does(
    method: str, path: str, query: dict[str, str], call: Call | None
) -> None:
    assert rbac_call(method, path, query) == call


# --------------------------------------------------------------------------- against an API server


async def exercise(api: Client, namespace: str) -> None:
    """Every step of the workflow, so every kind of call the controller makes happens."""
    await api.create(WEBSITES, website("kubia", namespace))
    await eventually(lambda: _children(api, namespace), message="children created")
    await api.patch(WEBSITES, "kubia", {"spec": {"branch": "gh-pages"}}, namespace=namespace)

    async def updated() -> bool:
        deployment = await api.get(DEPLOYMENTS, "kubia-website", namespace)
        assert env(deployment)["GITSYNC_REF"] == "gh-pages"
        return True

    await eventually(updated, message="update applied")
    await api.patch(SERVICES, "kubia-website", {"spec": {"selector": {"website": "x"}}}, namespace=namespace)

    async def repaired() -> bool:
        service = await api.get(SERVICES, "kubia-website", namespace)
        assert service["spec"]["selector"]["website"] == "kubia"
        return True

    await eventually(repaired, message="service drift repaired")
    old = await api.get(SERVICES, "kubia-website", namespace)
    await api.delete(SERVICES, "kubia-website", namespace=namespace)

    async def recreated() -> bool:
        current = await get_or_none(api, SERVICES, "kubia-website", namespace)
        assert current is not None
        assert current["metadata"]["uid"] != old["metadata"]["uid"]
        return True

    await eventually(recreated, timeout=20, message="service recreated")
    await api.create(WEBSITES, website("broken", namespace, gitRepo="http://example.com/x.git"))

    async def warned() -> bool:
        found = [e for e in await events_for(api, namespace, "broken") if e.get("reason") == "InvalidSpec"]
        assert found, "no InvalidSpec event"
        return True

    await eventually(warned, message="warning event")

    async def ready_reported() -> bool:
        status = (await api.get(WEBSITES, "kubia", namespace)).get("status") or {}
        assert status.get("url"), status
        return True

    await eventually(ready_reported, message="status written")


async def _children(api: Client, namespace: str) -> bool:
    assert await get_or_none(api, DEPLOYMENTS, "kubia-website", namespace) is not None
    assert await get_or_none(api, SERVICES, "kubia-website", namespace) is not None
    return True


def election(namespace: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        lease_name="website-controller",
        lease_namespace=namespace,
        lease_duration=6.0,
        renew_deadline=4.0,
        retry_period=0.5,
    )


@pytest.mark.fake_only
async def test_the_calls_the_controller_makes_are_the_declared_ones(kube: KubeTarget, tmp_path: Path) -> None:
    assert kube.fake is not None
    api = Client(kube.api_client)
    await install_crd(api)
    async with recording_proxy(kube.fake.url) as recorder:
        kubeconfig = recorder.kubeconfig(tmp_path / "proxy.kubeconfig")
        async with running_controller(kube, kubeconfig=kubeconfig, leader_election=election(kube.namespace)):
            await exercise(api, kube.namespace)
    used = recorder.calls
    controller_calls = used - LEADER_ELECTION_CALLS
    assert controller_calls <= set(CONTROLLER_CALLS), (
        f"undeclared calls: {controller_calls - set(CONTROLLER_CALLS)}"
    )
    assert set(CONTROLLER_CALLS) - controller_calls <= NOT_OBSERVABLE, "declared but never made"
    assert used & LEADER_ELECTION_CALLS == LEADER_ELECTION_CALLS, "the Role grants more than the elector uses"


@pytest.mark.real_only
async def test_the_controller_works_with_nothing_but_its_rbac(kube: KubeTarget, tmp_path: Path) -> None:
    api = Client(kube.api_client)
    await install_crd(api)
    async with as_service_account(
        kube, docs(), service_account=SERVICE_ACCOUNT, tmp_path=tmp_path
    ) as kubeconfig:
        restricted = await load_config(kubeconfig)
        try:
            with pytest.raises(Forbidden):
                await Client(restricted).list(SECRETS, namespace=kube.namespace)
        finally:
            await restricted.close()
        async with running_controller(kube, kubeconfig=kubeconfig, leader_election=election(kube.namespace)):
            await exercise(api, kube.namespace)


@pytest.mark.real_only
async def test_kubectl_server_side_dry_run_accepts_the_kustomization(
    kube: KubeTarget, tmp_path: Path
) -> None:
    out = await EXAMPLE.server_side_dry_run(kube, tmp_path)
    assert "customresourcedefinition.apiextensions.k8s.io/websites.extensions.example.com" in out
    assert "deployment.apps/website-controller" in out


NAMESPACED = HERE / "manifests-namespaced"


async def kustomize(directory: Path) -> list[dict[str, Any]]:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl not found (set KCTL_KUBECTL)")
    result = await anyio.run_process([binary, "kustomize", str(directory)], check=True)
    return [d for d in yaml.safe_load_all(result.stdout.decode()) if d]


async def test_the_namespace_scoped_variant_grants_the_same_calls_in_one_namespace_only() -> None:
    built = await kustomize(NAMESPACED)
    kinds = {d["kind"] for d in built}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, (
        "cluster-wide grants left in the namespaced variant"
    )
    roles = {d["metadata"]["namespace"]: d for d in built if d["kind"] == "Role"}
    assert granted([roles["web"]]) == set(CONTROLLER_CALLS)
    assert granted([roles[NAMESPACE]]) == LEADER_ELECTION_CALLS
    bindings = [d for d in built if d["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"web", NAMESPACE}
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
        ]
    (deployment,) = [d for d in built if d["kind"] == "Deployment"]
    assert "--namespace=web" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.real_only
async def test_kubectl_server_side_dry_run_accepts_the_namespace_scoped_variant(
    kube: KubeTarget, tmp_path: Path
) -> None:
    binary = kubectl()
    if binary is None:
        pytest.fail("the real tier needs kubectl: set KCTL_KUBECTL or put kubectl on PATH")
    api = Client(kube.api_client)
    for name in (NAMESPACE, "web"):
        with contextlib.suppress(AlreadyExists):
            await api.create(NAMESPACES, {"metadata": {"name": name}})
    result = await anyio.run_process(
        [
            *(binary, "--kubeconfig", str(kube.kubeconfig), "--cache-dir", str(tmp_path / "cache")),
            *("apply", "--dry-run=server", "-k", str(NAMESPACED)),
        ],
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "role.rbac.authorization.k8s.io/website-controller" in result.stdout.decode()


def test_the_pod_outlives_a_graceful_shutdown_and_the_lease_release() -> None:
    """Regression (issue 10 item 8): the grace period equalled graceful_shutdown_timeout, so the
    kubelet's SIGKILL raced the event flush and the lease release that follow it."""
    EXAMPLE.check_grace_period()
