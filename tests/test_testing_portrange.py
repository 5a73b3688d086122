"""The Service node-port range (kctl_runtime.testing.portrange): parsing, the fake's allocator inside a
configured range, and its errors compared with a real kube-apiserver started with the same range."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kctl_runtime.testing import FakeApiServer, envtest
from kctl_runtime.testing.portrange import (
    DEFAULT_SERVICE_NODE_PORT_RANGE,
    NODE_PORT_RANGE_ENV,
    PortRange,
    node_port_range_from_environment,
    parse_port_range,
)
from kctl_runtime.testing.pytest_plugin import envtest_binaries
from kctl_runtime.testing.target import api_client_for

# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30000-32767", PortRange(30000, 2768)),
        ("30000+2767", PortRange(30000, 2768)),
        ("31000", PortRange(31000, 1)),
        (" 1-65535 ", PortRange(1, 65535)),
    ],
)
def test_a_range_is_read_as_kube_apiserver_reads_its_flag(text: str, expected: PortRange) -> None:
    parsed = parse_port_range(text)
    assert parsed == expected
    assert str(parsed) == f"{expected.base}-{expected.last}"
    assert expected.base in parsed
    assert expected.last in parsed
    assert expected.last + 1 not in parsed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected LOW-HIGH"),
        ("30000-", "expected LOW-HIGH"),
        ("thirty", "expected LOW-HIGH"),
        ("30000-32767-1", "expected LOW-HIGH"),
        ("-5", "expected LOW-HIGH"),
        ("32767-30000", "end port cannot be less than start port"),
        ("0-100", "within 1-65535"),
        ("65000+1000", "within 1-65535"),
    ],
)
def test_an_invalid_range_is_refused_with_the_value_and_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        parse_port_range(text)
    assert repr(text) in str(refused.value)


def test_the_environment_sets_the_range_and_an_invalid_one_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(NODE_PORT_RANGE_ENV, raising=False)
    assert node_port_range_from_environment() == parse_port_range(DEFAULT_SERVICE_NODE_PORT_RANGE)
    monkeypatch.setenv(NODE_PORT_RANGE_ENV, "30000-35999")
    assert node_port_range_from_environment() == PortRange(30000, 6000)
    monkeypatch.setenv(NODE_PORT_RANGE_ENV, "35999-30000")
    with pytest.raises(ValueError, match=NODE_PORT_RANGE_ENV):
        node_port_range_from_environment()
    with pytest.raises(ValueError, match=NODE_PORT_RANGE_ENV):
        envtest.ControlPlane.from_environment()


def test_both_tiers_refuse_an_invalid_range_at_construction() -> None:
    with pytest.raises(ValueError, match="invalid service node-port range '40000-30000'"):
        FakeApiServer(service_node_port_range="40000-30000")
    python = Path(sys.executable)  # never run: the range is checked before anything starts
    binaries = envtest.Binaries(
        etcd=python, kube_apiserver=python, kube_controller_manager=None, kubectl=None, source="nowhere"
    )
    with pytest.raises(ValueError, match="invalid service node-port range"):
        envtest.ControlPlane(binaries, service_node_port_range="30000+x")


def test_the_command_takes_the_flag_and_refuses_an_invalid_range() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "kctl_runtime.testing.fakeapi", "--service-node-port-range", "9-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--service-node-port-range: invalid service node-port range '9-1'" in refused.stderr


# -- the fake's allocator --------------------------------------------------------------------------


def _service(name: str, node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": 8080}
    if node_port is not None:
        port["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]},
    }


async def test_the_fakes_node_ports_come_from_its_configured_range() -> None:
    async with FakeApiServer(service_node_port_range="40000-40999") as server:
        assert str(server.service_node_port_range) == "40000-40999"
        api = await server.api_client()
        try:
            core: Any = client.CoreV1Api(api)
            ports = set()
            for i in range(1000):
                made = await core.create_namespaced_service("default", _service(f"s{i}"))
                ports.add(made.spec.ports[0].node_port)
            assert ports == set(range(40000, 41000))
        finally:
            await api.close()


# -- the errors, on both tiers ---------------------------------------------------------------------

RANGE = "30100-30102"


async def _scenario(api: client.ApiClient, namespace: str) -> list[Any]:
    """What a 3-port range answers: a requested port (free, taken, outside), automatic ones until the
    range is full, and a freed port allocated again."""
    core: Any = client.CoreV1Api(api)
    answers: list[Any] = []

    async def create(name: str, node_port: int | None = None) -> int | None:
        try:
            made = await core.create_namespaced_service(namespace, _service(name, node_port))
        except ApiException as exc:
            answers.append((name, exc.status, json.loads(exc.body or b"")))
            return None
        port: int = made.spec.ports[0].node_port
        answers.append((name, "created", port in parse_port_range(RANGE)))
        return port

    requested = await create("requested", 30100)
    assert requested == 30100
    await create("taken", 30100)
    await create("outside", 30200)
    second = await create("second")
    await create("third")
    await create("full")
    await core.delete_namespaced_service("second", namespace)
    answers.append(("again gets the freed port", await create("again") == second))
    return answers


@contextlib.asynccontextmanager
async def _real_api() -> AsyncIterator[client.ApiClient]:
    plane = envtest.ControlPlane(envtest_binaries(), controller_manager=False, service_node_port_range=RANGE)
    await anyio.to_thread.run_sync(plane.start)
    try:
        api = await api_client_for(plane.kubeconfig_path)
        try:
            yield api
        finally:
            await api.close()
    finally:
        await anyio.to_thread.run_sync(plane.stop)


async def test_a_full_range_and_a_bad_requested_port_fail_on_the_fake_as_on_kube_apiserver() -> None:
    async with FakeApiServer(service_node_port_range=RANGE) as server:
        api = await server.api_client()
        try:
            fake = await _scenario(api, "default")
        finally:
            await api.close()
    assert fake[-1] == ("again gets the freed port", True)
    (full,) = [a for a in fake if a[0] == "full"]
    assert full[1] == 500
    assert full[2]["message"] == "Internal error occurred: failed to allocate a nodePort: range is full"
    async with _real_api() as api:
        real = await _scenario(api, "default")
    assert fake == real
