"""The entry point shown in docs/manager.md and docs/configuration.md, run as a real process.

``python -m tests.test_manager_docs --kubeconfig ...`` runs the snippet's ``main``; the tests below
start it against the API server, read its probes, stop it with SIGTERM, and break its kubeconfig.
"""

from __future__ import annotations

# --8<-- [start:main]
import argparse
import os

from kctl_runtime.config import run_cli
from kctl_runtime.controller import Controller
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.logging import configure_logging
from kctl_runtime.manager import Manager
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS
from tests.test_controller_docs import DeploymentInfo


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deployment-info")
    parser.add_argument(
        "--kubeconfig", help="path to a kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: current-context)")
    parser.add_argument("--namespace", help="watch only this namespace (default: all)")
    parser.add_argument("--health-probe-bind-address", default="127.0.0.1:8081")
    parser.add_argument("--metrics-bind-address", default="127.0.0.1:8080")
    parser.add_argument("--leader-elect", action="store_true", help="run controllers only while leading")
    parser.add_argument("--log-format", choices=["json", "console"], default="json")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    configure_logging(args.log_format)
    leader_election = None
    if args.leader_elect:
        leader_election = LeaderElectionConfig(
            lease_name="deployment-info", lease_namespace=os.environ.get("POD_NAMESPACE", "default")
        )
    manager = await Manager.from_config(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        health_bind=args.health_probe_bind_address,
        metrics_bind=args.metrics_bind_address,
        leader_election=leader_election,
    )
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
        "--health-probe-bind-address",
        f"127.0.0.1:{health}",
        "--metrics-bind-address",
        f"127.0.0.1:{metrics}",
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
