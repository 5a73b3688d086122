"""The LoadTest webhooks, called for real by the fake API server and by kube-apiserver."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.loadtest.webhooks import MAX_RPS, problems, webhook_server
from kctl_runtime._rest import request_json
from kctl_runtime.client import Client
from kctl_runtime.errors import Invalid
from kctl_runtime.testing.envtest.webhooks import install_webhooks
from kctl_runtime.testing.helpers import install_crd
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from kctl_runtime.webhook_certs import self_signed

HERE = Path(__file__).resolve().parents[1]


def loadtest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "beta.kuar.com/v1", "kind": "LoadTest", "metadata": {"name": name}, "spec": spec}


def test_problems_lists_every_broken_rule() -> None:
    assert (
        problems({"service": "web.shop.svc", "scheme": "https", "requestsPerSecond": 5, "paths": ["/"]}) == []
    )
    found = problems({"service": "Not_DNS", "scheme": "ftp", "requestsPerSecond": 0, "paths": ["x", "/ok"]})
    assert found == [
        f"spec.requestsPerSecond must be between 1 and {MAX_RPS}, got 0",
        "spec.scheme must be http or https, got 'ftp'",
        "spec.paths[0] must start with '/', got 'x'",
        "spec.service must be a DNS name (e.g. web or web.shop.svc), got 'Not_DNS'",
    ]
    assert problems({"service": "web", "scheme": "http", "requestsPerSecond": True})


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


@pytest.fixture
async def admitted(kube: KubeTarget, tmp_path: Path) -> AsyncIterator[str]:
    """The LoadTest CRD and webhooks installed; yields the collection path in the test namespace."""
    await install_crd(Client(kube.api_client), HERE / "crd.yaml")
    ca = self_signed(tmp_path)
    mutating, validating = scoped_configurations(kube.namespace)
    async with (
        webhook_server(tmp_path, bind="127.0.0.1:0") as server,
        install_webhooks(kube.api_client, server, ca, mutating=mutating, validating=validating),
    ):
        yield f"/apis/beta.kuar.com/v1/namespaces/{kube.namespace}/loadtests"


async def test_an_invalid_loadtest_is_rejected_with_every_problem(kube: KubeTarget, admitted: str) -> None:
    bad = loadtest("bad", service="web", scheme="gopher", requestsPerSecond=10**6, paths=["index.html"])

    async def rejected() -> str:
        try:
            await request_json(kube.api_client, "POST", admitted, body=bad, query=[("dryRun", "All")])
        except Invalid as exc:
            return str(exc)
        return ""

    message = await eventually(rejected, timeout=30, interval=0.2, message="the webhook never rejected")
    assert 'admission webhook "validate.loadtests.beta.kuar.com" denied the request: ' in message
    assert "spec.requestsPerSecond must be between 1 and 10000, got 1000000" in message
    assert "spec.scheme must be http or https, got 'gopher'" in message
    assert "spec.paths[0] must start with '/', got 'index.html'" in message


async def test_scheme_defaults_to_http_and_a_valid_loadtest_is_stored(
    kube: KubeTarget, admitted: str
) -> None:
    async def defaulted() -> dict[str, Any]:
        name = unique_name("lt")
        try:
            created: dict[str, Any] = await request_json(
                kube.api_client, "POST", admitted, body=loadtest(name, service="web", requestsPerSecond=50)
            )
        except Invalid:  # the validator runs before the defaulter is in effect: no scheme yet
            return {}
        await request_json(kube.api_client, "DELETE", f"{admitted}/{name}")
        return created if created["spec"].get("scheme") == "http" else {}

    await eventually(defaulted, timeout=30, interval=0.2, message="scheme never defaulted")
    kept = await request_json(
        kube.api_client,
        "POST",
        admitted,
        body=loadtest("secure", service="web.shop.svc", scheme="https", requestsPerSecond=1000, paths=["/"]),
    )
    assert kept["spec"] == {
        "service": "web.shop.svc",
        "scheme": "https",
        "requestsPerSecond": 1000,
        "paths": ["/"],
    }
