"""The LoadTest webhooks, called for real by the fake API server and by kube-apiserver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from examples.loadtest.tests.harness import admission, loadtest
from examples.loadtest.webhooks import MAX_RPS, problems
from kctl_runtime._rest import request_json
from kctl_runtime.errors import Invalid
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name


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
    assert problems({"service": "web", "scheme": "http", "requestsPerSecond": 5, "durationSeconds": 0}) == [
        "spec.durationSeconds must be between 1 and 86400, got 0"
    ]
    # a path becomes part of a URL: no way to smuggle a second target or header into it
    assert problems(
        {"service": "web", "scheme": "http", "requestsPerSecond": 5, "paths": ["/a\nGET http://evil/"]}
    ) == ["spec.paths[0] must not contain whitespace or control characters, got '/a\\nGET http://evil/'"]


@pytest.fixture
async def admitted(kube: KubeTarget, tmp_path: Path) -> AsyncIterator[str]:
    """The LoadTest CRD and webhooks installed; yields the collection path in the test namespace."""
    async with admission(kube, tmp_path) as path:
        yield path


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
        "durationSeconds": 60,  # the CRD schema's default
        "paths": ["/"],
    }
