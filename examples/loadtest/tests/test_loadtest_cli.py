"""``python -m examples.loadtest``: flags over KCTL_* environment, one-line errors, dev webhooks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from examples.loadtest.__main__ import parse_args
from examples.loadtest.controller import LOADTESTS, job_name
from examples.loadtest.tests.harness import HERE, get_or_none, loadtest
from kctl_runtime.client import Client
from kctl_runtime.errors import Invalid, NotFound
from kctl_runtime.resource import MUTATINGWEBHOOKCONFIGURATIONS, VALIDATINGWEBHOOKCONFIGURATIONS
from kctl_runtime.testing.helpers import install_crd
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIGURATIONS = (
    (VALIDATINGWEBHOOKCONFIGURATIONS, "loadtest-validation"),
    (MUTATINGWEBHOOKCONFIGURATIONS, "loadtest-defaults"),
)


def test_defaults_serve_no_webhooks_and_bind_locally() -> None:
    args = parse_args([], environ={})
    assert args.webhook_cert_dir is None
    assert args.webhook_bind == "127.0.0.1:9443"
    assert args.dev_webhooks is False
    assert args.health_bind == "127.0.0.1:8081"


def test_environment_variables_configure_the_webhooks_and_flags_override_them(tmp_path: Path) -> None:
    environ = {
        "KCTL_WEBHOOK_CERT_DIR": str(tmp_path),
        "KCTL_WEBHOOK_BIND": ":9443",
        "KCTL_DEV_WEBHOOKS": "true",
    }
    args = parse_args([], environ=environ)
    assert (args.webhook_cert_dir, args.webhook_bind, args.dev_webhooks) == (tmp_path, ":9443", True)
    args = parse_args(["--no-dev-webhooks", "--webhook-bind", "127.0.0.1:0"], environ=environ)
    assert (args.webhook_bind, args.dev_webhooks) == ("127.0.0.1:0", False)


def test_dev_webhooks_need_a_certificate_directory() -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--dev-webhooks"], environ={})
    assert exc.value.code == 2


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCTL_", "KUBE"))}
    env.update(extra)
    return env


@pytest.mark.fake_only  # the real plane is shared: other tests install the CRD there
async def test_a_missing_crd_is_one_clear_error_line(kube: KubeTarget) -> None:
    result = await anyio.run_process(
        [sys.executable, "-m", "examples.loadtest", "--kubeconfig", str(kube.kubeconfig)],
        cwd=REPO_ROOT,
        env=clean_env(),
        check=False,
    )
    stderr = result.stderr.decode().strip()
    assert result.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr == (
        "loadtest-controller: error: the API server does not serve beta.kuar.com/v1 LoadTest: "
        "install the CRD (kubectl apply -f examples/loadtest/crd.yaml)"
    )


async def test_a_missing_certificate_directory_is_one_clear_error_line(
    kube: KubeTarget, tmp_path: Path
) -> None:
    await install_crd(Client(kube.api_client), HERE / "crd.yaml")
    result = await anyio.run_process(
        [
            *(sys.executable, "-m", "examples.loadtest", "--kubeconfig", str(kube.kubeconfig)),
            *(
                "--webhook-cert-dir",
                str(tmp_path / "absent"),
                "--health-bind",
                "off",
                "--metrics-bind",
                "off",
            ),
        ],
        cwd=REPO_ROOT,
        env=clean_env(),
        check=False,
    )
    stderr = result.stderr.decode().strip()
    assert result.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("loadtest-controller: error: webhook server: webhook certificate: ")
    assert "absent/tls.key not found (need tls.crt, tls.key)" in stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _configurations(api: Client) -> list[str]:
    found = []
    for resource, name in CONFIGURATIONS:
        with contextlib.suppress(NotFound):
            found.append((await api.get(resource, name))["metadata"]["name"])
    return found


async def test_the_command_serves_and_installs_dev_webhooks_and_removes_them_on_sigterm(
    kube: KubeTarget, tmp_path: Path
) -> None:
    api = Client(kube.api_client)
    await install_crd(api, HERE / "crd.yaml")
    assert await _configurations(api) == [], "configurations left over by another test"
    health = free_port()
    command = [
        *(sys.executable, "-m", "examples.loadtest", "--kubeconfig", str(kube.kubeconfig)),
        *("--namespace", kube.namespace, "--health-bind", f"127.0.0.1:{health}", "--metrics-bind", "off"),
        *("--webhook-cert-dir", str(tmp_path / "certs"), "--webhook-bind", "127.0.0.1:0", "--dev-webhooks"),
    ]
    process = await anyio.open_process(command, cwd=REPO_ROOT, env=clean_env(KCTL_LOG_FORMAT="json"))
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

        async def rejected() -> str:
            bad = loadtest("bad", service="web", scheme="gopher", requestsPerSecond=1)
            try:
                await api.create(LOADTESTS, bad, namespace=kube.namespace, dry_run=True)
            except Invalid as exc:
                return str(exc)
            return ""

        message = await eventually(
            rejected, timeout=30, interval=0.2, message="the dev webhooks never rejected"
        )
        assert "spec.scheme must be http or https, got 'gopher'" in message

        async def defaulted() -> dict[str, Any]:
            try:
                made = await api.create(
                    LOADTESTS, loadtest("ok", service="web", requestsPerSecond=1), namespace=kube.namespace
                )
            except Invalid:  # the validator is in effect, the defaulter not yet
                return {}
            return made

        made = await eventually(defaulted, timeout=30, interval=0.2, message="never defaulted")
        assert made["spec"]["scheme"] == "http"

        async def job() -> bool:
            return await get_or_none(api, job_name("ok"), kube.namespace) is not None

        await eventually(job, timeout=30, message="the command's controller creates the Job")
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            code = await process.wait()
        assert code == 0
        assert await _configurations(api) == [], "the dev webhook configurations outlived the process"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for resource, name in CONFIGURATIONS:  # never leave a failurePolicy Fail webhook behind
            with contextlib.suppress(NotFound):
                await api.delete(resource, name)
        await process.aclose()


@pytest.mark.fake_only  # cluster-scoped objects of a fixed name: not on the shared real plane
async def test_dev_webhooks_never_overwrite_a_configuration_they_did_not_create(
    kube: KubeTarget, tmp_path: Path
) -> None:
    api = Client(kube.api_client)
    await install_crd(api, HERE / "crd.yaml")
    theirs = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "loadtest-validation", "labels": {"owner": "someone-else"}},
        "webhooks": [],
    }
    before = await api.create(VALIDATINGWEBHOOKCONFIGURATIONS, theirs)
    result = await anyio.run_process(
        [
            *(sys.executable, "-m", "examples.loadtest", "--kubeconfig", str(kube.kubeconfig)),
            *("--health-bind", "off", "--metrics-bind", "off", "--webhook-bind", "127.0.0.1:0"),
            *("--webhook-cert-dir", str(tmp_path / "certs"), "--dev-webhooks"),
        ],
        cwd=REPO_ROOT,
        env=clean_env(),
        check=False,
    )
    stderr = result.stderr.decode().strip()
    assert result.returncode == 2, stderr
    (last,) = [line for line in stderr.splitlines() if "error:" in line]
    assert last.startswith("loadtest-controller: error: --dev-webhooks: ")
    assert "loadtest-validation" in last
    after = await api.get(VALIDATINGWEBHOOKCONFIGURATIONS, "loadtest-validation")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    with pytest.raises(NotFound):  # nothing half-installed is left behind
        await api.get(MUTATINGWEBHOOKCONFIGURATIONS, "loadtest-defaults")
    await api.delete(VALIDATINGWEBHOOKCONFIGURATIONS, "loadtest-validation")
