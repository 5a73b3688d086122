"""Secure metrics: HTTPS, TokenReview authentication and SubjectAccessReview authorization.

The full path needs a real API server (the fake serves neither review): service accounts with and
without a ClusterRole granting ``get`` on ``/metrics``, tokens minted with the TokenRequest API.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from kctl_runtime._rest import request_json
from kctl_runtime.authfilter import AuthFilter
from kctl_runtime.cli import add_manager_arguments
from kctl_runtime.client import Client
from kctl_runtime.clock import FakeClock
from kctl_runtime.config import load_config
from kctl_runtime.manager import Manager
from kctl_runtime.resource import SERVICEACCOUNTS, Resource
from kctl_runtime.servingcert import CERT_FILE, KEY_FILE, server_ssl_context
from kctl_runtime.testing.envtest._pki import write_pki
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from tests.test_manager import local_manager, managing

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ("website", "user")
REVIEWS_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]

CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)


@pytest.fixture
def cert_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A serving certificate for 127.0.0.1 as a TLS Secret mounts it, and the CA that signed it."""
    pki = write_pki(tmp_path / "pki", admin_user="unused")
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / CERT_FILE).write_bytes(pki.serving_cert.read_bytes())
    (folder / KEY_FILE).write_bytes(pki.serving_key.read_bytes())
    return folder, pki.ca_cert


async def scrape(port: int | None, ca: Path, token: str | None = None) -> tuple[int, str]:
    assert port is not None
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    context = ssl.create_default_context(cafile=str(ca))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://127.0.0.1:{port}/metrics", headers=headers, ssl=context) as response,
    ):
        return response.status, await response.text()


async def plain_http_status(port: int | None) -> int | None:
    """The status of a plain-HTTP GET /metrics, or ``None`` when no HTTP answer comes back."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            return response.status
    except aiohttp.ClientError:
        return None


async def service_account_token(kube: KubeTarget, name: str) -> str:
    """A fresh ServiceAccount ``name`` in the test namespace and a token for it (TokenRequest API)."""
    await Client(kube.api_client).create(
        SERVICEACCOUNTS, {"metadata": {"name": name}}, namespace=kube.namespace
    )
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    answer: dict[str, Any] = await request_json(
        kube.api_client, "POST", SERVICEACCOUNTS.path(kube.namespace, name) + "/token", body=request
    )
    return str(answer["status"]["token"])


@contextlib.asynccontextmanager
async def metrics_reader(kube: KubeTarget, service_account: str) -> AsyncIterator[None]:
    """A ClusterRole granting ``get`` on ``/metrics``, bound to ``service_account``; removed after."""
    client = Client(kube.api_client)
    name = unique_name("metrics-reader")
    await client.create(
        CLUSTER_ROLES,
        {"metadata": {"name": name}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
    )
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": kube.namespace}],
    }
    await client.create(CLUSTER_ROLE_BINDINGS, binding)
    try:
        yield
    finally:
        await client.delete(CLUSTER_ROLE_BINDINGS, name)
        await client.delete(CLUSTER_ROLES, name)


@pytest.mark.real_only
async def test_metrics_answer_only_tokens_the_api_server_authorizes(
    kube: KubeTarget, cert_dir: tuple[Path, Path]
) -> None:
    folder, ca = cert_dir
    reader = await service_account_token(kube, "scraper")
    stranger = await service_account_token(kube, "stranger")
    async with metrics_reader(kube, "scraper"):
        manager = local_manager(  # health on the same bind would share the server: none here
            kube.api_client, health_bind=None, metrics_secure=True, metrics_cert_dir=str(folder)
        )
        async with managing(manager):

            async def serving() -> bool:
                return manager.metrics_port is not None

            await eventually(serving, message="metrics served")
            assert await scrape(manager.metrics_port, ca) == (401, "Unauthorized\n")
            assert (await scrape(manager.metrics_port, ca, "not-a-token"))[0] == 401
            status, text = await scrape(manager.metrics_port, ca, stranger)
            assert status == 403
            assert f"system:serviceaccount:{kube.namespace}:stranger" in text

            async def allowed() -> bool:  # RBAC reaches the authorizer's cache within moments
                return (await scrape(manager.metrics_port, ca, reader))[0] == 200

            await eventually(allowed, timeout=20, message="the reader is allowed")
            status, text = await scrape(manager.metrics_port, ca, reader)
            assert status == 200
            assert "rest_client_requests_total{" in text
            assert "_created" not in text
            assert await plain_http_status(manager.metrics_port) is None  # no plain HTTP


def example_rbac(example: str) -> dict[str, dict[str, Any]]:
    path = REPO / "examples" / f"{example}_controller" / "manifests" / "metrics-auth.yaml"
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(path.read_text()) if d}


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_examples_grant_the_reviews_and_ship_a_metrics_reader_role(example: str) -> None:
    docs = example_rbac(example)
    auth = docs[f"ClusterRole/{example}-controller-metrics-auth"]
    assert auth["rules"] == REVIEWS_RULES
    binding = docs[f"ClusterRoleBinding/{example}-controller-metrics-auth"]
    assert binding["roleRef"]["name"] == f"{example}-controller-metrics-auth"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{example}-controller", "namespace": f"{example}-system"}
    ]
    reader = docs[f"ClusterRole/{example}-controller-metrics-reader"]
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


async def token_client(kube: KubeTarget, token: str, folder: Path) -> Any:
    """An ``ApiClient`` for the same server that authenticates with ``token`` only."""
    config = yaml.safe_load(kube.kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    context["user"] = "token"
    config["contexts"] = [{"name": config["current-context"], "context": context}]
    config["users"] = [{"name": "token", "user": {"token": token}}]
    path = folder / "token-kubeconfig.yaml"
    path.write_text(yaml.safe_dump(config))
    return await load_config(path)


@pytest.mark.real_only
async def test_the_examples_metrics_auth_role_is_all_the_filter_needs(
    kube: KubeTarget, tmp_path: Path
) -> None:
    controller = await service_account_token(kube, "controller")
    reader = await service_account_token(kube, "scraper")
    client = Client(kube.api_client)
    name = unique_name("metrics-auth")
    await client.create(CLUSTER_ROLES, {"metadata": {"name": name}, "rules": REVIEWS_RULES})
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": kube.namespace}],
    }
    api = await token_client(kube, controller, tmp_path)
    try:
        unprivileged = AuthFilter(api)  # before the binding: the TokenReview is refused, 401
        assert (await unprivileged.decide(f"Bearer {reader}", "/metrics", "get")).status == 401
        await client.create(CLUSTER_ROLE_BINDINGS, binding)
        async with metrics_reader(kube, "scraper"):

            async def allowed() -> bool:
                return (await AuthFilter(api).decide(f"Bearer {reader}", "/metrics", "get")).allowed

            await eventually(allowed, timeout=20, message="the controller's reviews allow the reader")
    finally:
        await api.close()
        with contextlib.suppress(Exception):
            await client.delete(CLUSTER_ROLE_BINDINGS, name)
        await client.delete(CLUSTER_ROLES, name)


@pytest.mark.real_only
async def test_decisions_are_cached_for_controller_runtimes_durations(kube: KubeTarget) -> None:
    reader = await service_account_token(kube, "scraper")
    stranger = await service_account_token(kube, "stranger")
    clock = FakeClock()
    auth = AuthFilter(kube.api_client, clock=clock)
    async with metrics_reader(kube, "scraper"):

        async def allowed() -> bool:
            fresh = AuthFilter(kube.api_client)
            return (await fresh.decide(f"Bearer {reader}", "/metrics", "get")).allowed

        await eventually(allowed, timeout=20, message="the reader is allowed")
        assert (await auth.decide(f"Bearer {reader}", "/metrics", "get")).status == 200
        assert auth.reviews == 2  # one TokenReview, one SubjectAccessReview
        assert (await auth.decide(f"Bearer {reader}", "/metrics", "get")).status == 200
        assert auth.reviews == 2
        await clock.advance(61)  # the token's review expired, the allowed decision has not
        assert (await auth.decide(f"Bearer {reader}", "/metrics", "get")).status == 200
        assert auth.reviews == 3
        denied = await auth.decide(f"Bearer {stranger}", "/metrics", "get")
        assert denied.status == 403
        assert auth.reviews == 5
        assert (await auth.decide(f"Bearer {stranger}", "/metrics", "get")).status == 403
        assert auth.reviews == 5
        await clock.advance(31)  # denials are reconsidered after 30 s
        assert (await auth.decide(f"Bearer {stranger}", "/metrics", "get")).status == 403
        assert auth.reviews == 6
        assert (await auth.decide(f"Bearer {reader}", "/metrics", "post")).status == 403  # only get


async def test_no_bearer_token_is_refused_without_asking_the_api_server(kube: KubeTarget) -> None:
    auth = AuthFilter(kube.api_client)
    for header in (None, "", "Basic dXNlcjpwdw==", "Bearer ", "Bearer"):
        decision = await auth.decide(header, "/metrics", "get")
        assert (decision.status, decision.reason) == (401, "no bearer token")
    assert auth.reviews == 0


@pytest.mark.fake_only
async def test_a_review_the_api_server_cannot_answer_fails_closed_and_is_not_cached(
    fake_kube: KubeTarget,
) -> None:
    auth = AuthFilter(fake_kube.api_client)  # the fake serves no TokenReview: a 404 each time
    assert (await auth.decide("Bearer some-token", "/metrics", "get")).status == 401
    assert (await auth.decide("Bearer some-token", "/metrics", "get")).status == 401
    assert auth.reviews == 2


async def test_secure_metrics_without_a_certificate_or_on_the_health_bind_is_refused(
    kube: KubeTarget, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="metrics_cert_dir"):
        Manager(kube.api_client, metrics_secure=True, handle_signals=False)
    with pytest.raises(ValueError, match="apart from health_bind"):
        Manager(
            kube.api_client,
            metrics_secure=True,
            metrics_cert_dir=str(tmp_path),
            health_bind="127.0.0.1:9999",
            metrics_bind="127.0.0.1:9999",
        )
    with pytest.raises(ValueError, match=r"tls\.crt.*tls\.key.*not found"):
        Manager(kube.api_client, metrics_secure=True, metrics_cert_dir=str(tmp_path))
    (tmp_path / CERT_FILE).write_text("not a certificate")
    (tmp_path / KEY_FILE).write_text("not a key")
    with pytest.raises(ValueError, match="cannot load"):
        server_ssl_context(tmp_path)


def test_the_secure_metrics_flags_read_the_environment() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_manager_arguments(
        parser, lease_name="x", environ={"KCTL_METRICS_SECURE": "true", "KCTL_METRICS_CERT_DIR": "/certs"}
    )
    args = parser.parse_args([])
    assert (args.metrics_secure, args.metrics_cert_dir) == (True, "/certs")
    args = parser.parse_args(["--no-metrics-secure", "--metrics-cert-dir", "/other"])
    assert (args.metrics_secure, args.metrics_cert_dir) == (False, "/other")
    defaults = argparse.ArgumentParser()
    add_manager_arguments(defaults, lease_name="x", environ={})
    assert (defaults.parse_args([]).metrics_secure, defaults.parse_args([]).metrics_cert_dir) == (False, None)
