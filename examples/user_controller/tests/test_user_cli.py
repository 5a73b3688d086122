"""The User controller's command line: options, one-line errors, and a real run until SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import anyio
import pytest

from examples.user_controller.__main__ import parse_args
from examples.user_controller.controller import USERS, group_namespace
from examples.user_controller.tests.harness import cleanup, get_or_none, install_crd, user
from kctl_runtime.client import Client
from kctl_runtime.resource import SERVICEACCOUNTS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_the_resync_period_is_an_option_and_must_be_positive() -> None:
    assert parse_args([], environ={}).resync_seconds == 300.0
    assert parse_args([], environ={"KCTL_RESYNC_SECONDS": "30"}).resync_seconds == 30.0
    assert parse_args(["--resync-seconds", "5"], environ={"KCTL_RESYNC_SECONDS": "30"}).resync_seconds == 5.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            parse_args(["--resync-seconds", bad], environ={})


async def test_a_missing_kubeconfig_is_one_clear_error_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCTL_", "KUBE"))}
    result = await anyio.run_process(
        [sys.executable, "-m", "examples.user_controller", "--kubeconfig", "/nonexistent/kubeconfig"],
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    stderr = result.stderr.decode().strip()
    assert result.returncode == 2
    assert stderr.splitlines() == ["user-controller: error: kubeconfig /nonexistent/kubeconfig: no such file"]


async def test_the_command_runs_the_controllers_until_sigterm(kube: KubeTarget) -> None:
    api = Client(kube.api_client)
    await install_crd(api)
    group = unique_name("g")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        health = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCTL_", "KUBE"))}
    env.update(KCTL_NAMESPACE=kube.namespace, KCTL_METRICS_BIND="off", KCTL_HEALTH_BIND=f"127.0.0.1:{health}")
    command = [sys.executable, "-m", "examples.user_controller", "--kubeconfig", str(kube.kubeconfig)]
    try:
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
                await api.create(USERS, user("tester3", kube.namespace, group))

                async def account() -> bool:
                    sa = await get_or_none(api, SERVICEACCOUNTS, "tester3", group_namespace(group))
                    assert sa is not None, "no account yet"
                    return True

                await eventually(account, timeout=20, message="the command's controller creates the account")
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(15):
                    code = await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
        assert code == 0
    finally:
        await cleanup(api, kube.namespace, [group])
