"""Run the fake API server from the command line until SIGINT / SIGTERM.

Usage::

    python -m kctl_runtime.testing.fakeapi --port 8001 --kubeconfig /tmp/fake.kubeconfig
    kubectl --kubeconfig /tmp/fake.kubeconfig get namespaces

Contract: binds 127.0.0.1 only; writes a kubeconfig (plain http, no credentials) to ``--kubeconfig``
(default ``./fakeapi.kubeconfig``) once listening, prints the URL, and exits 0 on SIGINT / SIGTERM.
An invalid option (e.g. ``--service-node-port-range 32767-30000``) exits 2 with argparse's one-line
message naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from kctl_runtime.testing.portrange import DEFAULT_SERVICE_NODE_PORT_RANGE, parse_port_range

from .server import FakeApiServer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kctl_runtime.testing.fakeapi", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument(
        "--kubeconfig", type=Path, default=Path("fakeapi.kubeconfig"), help="kubeconfig to write"
    )
    parser.add_argument("--history-size", type=int, default=10_000, help="watch event history length")
    parser.add_argument(
        "--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks"
    )
    parser.add_argument(
        "--service-node-port-range",
        default=DEFAULT_SERVICE_NODE_PORT_RANGE,
        help="ports for NodePort Services, as kube-apiserver's flag: LOW-HIGH, LOW+OFFSET or PORT "
        f"(default {DEFAULT_SERVICE_NODE_PORT_RANGE})",
    )
    args = parser.parse_args(argv)
    try:
        parse_port_range(args.service_node_port_range)
    except ValueError as exc:
        parser.error(f"--service-node-port-range: {exc}")
    return args


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = FakeApiServer(
        port=args.port,
        kubeconfig_path=args.kubeconfig.resolve(),
        history_size=args.history_size,
        bookmark_interval=args.bookmark_interval,
        service_node_port_range=args.service_node_port_range,
    )
    async with server:
        print(f"fake API server listening on {server.url}; kubeconfig: {server.kubeconfig_path}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
