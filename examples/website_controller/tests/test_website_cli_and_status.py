"""The command line (flags over KCTL_* environment, one-line errors), status helpers, and the demo."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from examples.website_controller.__main__ import lease_namespace, parse_args
from examples.website_controller.api import Website, WebsiteSpec
from examples.website_controller.controller import WEBSITES, Address, readiness, service_address
from examples.website_controller.tests.harness import get_or_none, install_crd, website
from kctl_runtime.client import Client
from kctl_runtime.config import ConfigError
from kctl_runtime.resource import DEPLOYMENTS, SERVICES
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_local_and_safe() -> None:
    args = parse_args([], environ={})
    assert args.kubeconfig is None
    assert args.namespace is None
    assert args.leader_elect is False
    assert args.health_bind == "127.0.0.1:8081"
    assert args.metrics_bind == "127.0.0.1:8080"
    assert (args.log_format, args.log_level) == ("console", "info")


def test_environment_variables_configure_and_flags_override_them() -> None:
    environ = {
        "KCTL_NAMESPACE": "web",
        "KCTL_LEADER_ELECT": "true",
        "KCTL_LEASE_NAMESPACE": "website-system",
        "KCTL_METRICS_BIND": "off",
        "KCTL_LOG_FORMAT": "json",
        "KCTL_LOG_LEVEL": "debug",
    }
    args = parse_args([], environ=environ)
    assert args.namespace == "web"
    assert args.leader_elect is True
    assert args.metrics_bind is None
    assert (args.log_format, args.log_level) == ("json", "debug")
    args = parse_args(
        ["--no-leader-elect", "--namespace", "other", "--log-format", "console"], environ=environ
    )
    assert args.leader_elect is False
    assert args.namespace == "other"
    assert args.log_format == "console"


def test_a_bad_environment_value_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([], environ={"KCTL_LEADER_ELECT": "maybe"})
    assert exc.value.code == 2


def test_the_lease_namespace_comes_from_the_flag_or_the_pod(tmp_path: Path) -> None:
    pod_file = tmp_path / "namespace"
    assert lease_namespace(parse_args(["--lease-namespace", "x"], environ={}), pod_file) == "x"
    pod_file.write_text("website-system\n")
    assert lease_namespace(parse_args([], environ={}), pod_file) == "website-system"
    with pytest.raises(ConfigError, match="--lease-namespace"):
        lease_namespace(parse_args([], environ={}), tmp_path / "absent")


@pytest.mark.parametrize(
    ("kubeconfig", "fragment"),
    [
        ("/nonexistent/kubeconfig", "no such file"),
        ("BROKEN", "not valid YAML"),
        ("UNREACHABLE", "cannot reach the API server"),
    ],
)
async def test_a_broken_kubeconfig_is_one_clear_error_line(
    tmp_path: Path, kubeconfig: str, fragment: str
) -> None:
    if kubeconfig == "BROKEN":
        path = tmp_path / "broken"
        path.write_text("clusters: [\n")
        kubeconfig = str(path)
    elif kubeconfig == "UNREACHABLE":
        path = tmp_path / "unreachable"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        )
        kubeconfig = str(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCTL_", "KUBE"))}
    result = await anyio.run_process(
        [sys.executable, "-m", "examples.website_controller", "--kubeconfig", kubeconfig],
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    stderr = result.stderr.decode().strip()
    assert result.returncode == 2
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("website-controller: error: ")
    assert fragment in stderr


def deployment(generation: int = 2, observed: int = 2, available: int = 0, **extra: Any) -> dict[str, Any]:
    status = {"observedGeneration": observed, "availableReplicas": available, **extra}
    return {"metadata": {"generation": generation}, "status": status}


def site(replicas: int = 2) -> Website:
    return Website(spec=WebsiteSpec(git_repo="https://example.com/site.git", replicas=replicas))


def test_ready_needs_every_requested_replica_available_for_the_current_generation() -> None:
    assert readiness(site(2), deployment(available=2)) == (
        True,
        "DeploymentAvailable",
        "2/2 replicas available",
    )
    assert readiness(site(2), deployment(available=1))[:2] == (False, "DeploymentProgressing")
    assert readiness(site(2), deployment(observed=1, available=2))[:2] == (False, "DeploymentProgressing")
    assert readiness(site(2), None)[:2] == (False, "DeploymentProgressing")
    assert readiness(site(0), deployment())[:2] == (False, "ScaledToZero")


def test_a_deployment_past_its_progress_deadline_is_reported_failed() -> None:
    stuck = deployment(
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "x"}
        ]
    )
    assert readiness(site(2), stuck) == (False, "DeploymentFailed", "x")


def test_the_address_comes_from_the_service() -> None:
    service = {"spec": {"clusterIP": "10.0.0.7", "ports": [{"port": 80, "nodePort": 31000}]}}
    assert service_address(service) == Address(
        cluster_ip="10.0.0.7", node_port=31000, url="http://10.0.0.7:80"
    )
    assert service_address({"spec": {"clusterIP": "None", "ports": []}}) == Address()
    assert service_address(None) == Address()


async def test_the_demo_runs_the_whole_story_and_exits_zero() -> None:
    result = await anyio.run_process(
        [sys.executable, "-m", "examples.demo", "--step-timeout", "20"], cwd=REPO_ROOT, check=False
    )
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    for expected in (
        "customresourcedefinition websites.extensions.example.com created",
        "Deployment kubia-website: replicas=1",
        "image=registry.k8s.io/git-sync/git-sync:v4",
        "Service kubia-website: type=NodePort",
        "condition Ready=True reason=DeploymentAvailable",
        "Normal  Created",
        "ref=gh-pages",
        "recreated by the controller",
        "are gone",
    ):
        assert expected in out, f"{expected!r} missing from the transcript:\n{out}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_command_runs_the_controller_until_sigterm(kube: KubeTarget) -> None:
    api = Client(kube.api_client)
    await install_crd(api)
    health = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCTL_", "KUBE"))}
    env.update(KCTL_NAMESPACE=kube.namespace, KCTL_LOG_FORMAT="json", KCTL_METRICS_BIND="off")
    command = [
        *(sys.executable, "-m", "examples.website_controller", "--kubeconfig", str(kube.kubeconfig)),
        *("--health-bind", f"127.0.0.1:{health}"),
    ]
    async with await anyio.open_process(command, cwd=REPO_ROOT, env=env) as process:
        try:
            async with aiohttp.ClientSession() as session:

                async def ready() -> bool:
                    try:
                        async with session.get(f"http://127.0.0.1:{health}/readyz") as response:
                            assert response.status == 200, response.status
                    except aiohttp.ClientConnectionError as exc:
                        raise AssertionError(str(exc)) from exc
                    return True

                await eventually(ready, timeout=30, message="/readyz answers 200")
            await api.create(WEBSITES, website("kubia", kube.namespace))

            async def children() -> bool:
                assert await get_or_none(api, DEPLOYMENTS, "kubia-website", kube.namespace) is not None
                assert await get_or_none(api, SERVICES, "kubia-website", kube.namespace) is not None
                return True

            await eventually(children, timeout=20, message="the command's controller creates the children")
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
    assert code == 0
