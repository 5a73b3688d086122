"""The entry point shown in docs/manager.md and docs/configuration.md, run as a real process.

``python -m tests.test_manager_docs --kubeconfig ...`` runs the snippet's ``main``; the tests below
start it against the API server, read its probes, stop it with SIGTERM, and break its kubeconfig.
"""

from __future__ import annotations  # noqa: I001 - the snippet below brings its own import block

from tests.test_controller_docs import DeploymentInfo  # the reconciler shown in docs/controllers.md

# --8<-- [start:main]
import argparse

from kctl_runtime.cli import add_manager_arguments, manager_from_args
from kctl_runtime.config import run_cli
from kctl_runtime.controller import Controller
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS

# DeploymentInfo is the reconciler of the controllers page, imported from your own package.


async def main() -> None:
    parser = argparse.ArgumentParser(
        prog="deployment-info", description="Run the deployment-info controller."
    )
    # --kubeconfig, --context, --namespace, --leader-elect, --lease-namespace, --lease-name,
    # --health-bind, --metrics-bind, --log-format, --log-level; each also a KCTL_* variable
    add_manager_arguments(parser, lease_name="deployment-info")
    args = parser.parse_args()
    # logging, a preflight (server reachable, Deployments and ConfigMaps served), then the manager
    manager = await manager_from_args(args, requires=[DEPLOYMENTS, CONFIGMAPS])
    manager.add(
        Controller(
            "deployment-info",
            for_=DEPLOYMENTS,
            owns=[CONFIGMAPS],
            reconciler=DeploymentInfo(manager.client),
        )
    )
    await manager.run()  # until SIGTERM/SIGINT; a second signal forces exit


if __name__ == "__main__":
    run_cli(main)  # a broken kubeconfig prints "error: ..." and exits 2
# --8<-- [end:main]

import signal  # noqa: E402 - test-only imports follow the snippet
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402
import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_manager_docs", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def status(port: int, path: str) -> int:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            return response.status
    except aiohttp.ClientConnectionError:
        return 0


async def test_doc_snippet_main_serves_probes_and_exits_cleanly_on_sigterm(kube: KubeTarget) -> None:
    health, metrics = free_port(), free_port()
    process = start(
        "--kubeconfig",
        str(kube.kubeconfig),
        "--namespace",
        kube.namespace,
        "--health-bind",
        f"127.0.0.1:{health}",
        "--metrics-bind",
        f"127.0.0.1:{metrics}",
        "--log-format",
        "json",
    )
    try:

        async def ready() -> bool:
            return await status(health, "/readyz") == 200

        await eventually(ready, timeout=60, message="the process became ready")
        assert await status(metrics, "/metrics") == 200
        process.send_signal(signal.SIGTERM)
        await anyio.to_thread.run_sync(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert '"event":"manager stopped"' in stderr


def test_doc_snippet_main_reports_a_broken_kubeconfig_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [\n  oops: :\n")
    process = start("--kubeconfig", str(broken))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stdout == ""
    assert stderr.startswith(f"error: kubeconfig {broken}: not valid YAML (line ")
    assert stderr.count("\n") == 1
