"""``python -m examples.website_controller``: run the Website controller against a cluster.

Contract
--------
Every option is a flag and an environment variable (the flag wins); ``--help`` lists them:

=====================  ===========================  =======================================
flag                   environment                  default
=====================  ===========================  =======================================
``--kubeconfig``       ``KCTL_KUBECONFIG``          ``$KUBECONFIG``, in-cluster, ``~/.kube/config``
``--context``          ``KCTL_CONTEXT``             the kubeconfig's current context
``--namespace``        ``KCTL_NAMESPACE``           all namespaces
``--leader-elect``     ``KCTL_LEADER_ELECT``        off (the in-cluster Deployment turns it on)
``--lease-namespace``  ``KCTL_LEASE_NAMESPACE``     the pod's namespace in a cluster
``--health-bind``      ``KCTL_HEALTH_BIND``         ``127.0.0.1:8081`` (``off`` disables)
``--metrics-bind``     ``KCTL_METRICS_BIND``        ``127.0.0.1:8080`` (``off`` disables)
``--log-format``       ``KCTL_LOG_FORMAT``          ``console`` (``json`` for log pipelines)
``--log-level``        ``KCTL_LOG_LEVEL``           ``info``
=====================  ===========================  =======================================

Configuration problems -- a kubeconfig that is missing or broken, an API server that cannot be
reached, the Website CRD not installed, a bad option value -- end the process with ONE line
``website-controller: error: ...`` on stderr and exit status 2, never a traceback. SIGTERM/SIGINT
stop it gracefully (in-flight reconciles finish, the Lease is released); a second signal forces.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from examples.website_controller.controller import FIELD_MANAGER, WEBSITES, website_controller
from kctl_runtime.config import ConfigError, load_config, run_cli
from kctl_runtime.errors import ApiError
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.logging import configure_logging
from kctl_runtime.manager import Manager
from kctl_runtime.resource import discover

PROG = "website-controller"
LEASE_NAME = "website-controller"
_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _bind(value: str) -> str | None:
    return None if value.strip().lower() in ("off", "none", "0", "") else value


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags over ``KCTL_*`` environment variables over defaults (module doc)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog=PROG, description="Run the Website controller.")
    parser.add_argument("--kubeconfig", default=env.get("KCTL_KUBECONFIG"), help="kubeconfig file")
    parser.add_argument("--context", default=env.get("KCTL_CONTEXT"), help="kubeconfig context")
    parser.add_argument(
        "--namespace", default=env.get("KCTL_NAMESPACE") or None, help="serve only this namespace"
    )
    try:
        leader_default = _bool(env.get("KCTL_LEADER_ELECT", "false"))
    except argparse.ArgumentTypeError as exc:
        parser.error(f"KCTL_LEADER_ELECT: {exc}")
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=leader_default,
        help="campaign for a Lease; only the leader reconciles",
    )
    parser.add_argument(
        "--lease-namespace",
        default=env.get("KCTL_LEASE_NAMESPACE") or None,
        help="namespace of the leader-election Lease (default: the pod's namespace)",
    )
    parser.add_argument("--lease-name", default=env.get("KCTL_LEASE_NAME", LEASE_NAME))
    parser.add_argument(
        "--health-bind", type=_bind, default=_bind(env.get("KCTL_HEALTH_BIND", "127.0.0.1:8081"))
    )
    parser.add_argument(
        "--metrics-bind", type=_bind, default=_bind(env.get("KCTL_METRICS_BIND", "127.0.0.1:8080"))
    )
    parser.add_argument(
        "--log-format", choices=["json", "console"], default=env.get("KCTL_LOG_FORMAT", "console")
    )
    parser.add_argument("--log-level", default=env.get("KCTL_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    if args.log_format not in ("json", "console"):
        parser.error(f"KCTL_LOG_FORMAT must be json or console, got {args.log_format!r}")
    return args


def lease_namespace(args: argparse.Namespace, pod_namespace_file: Path = _POD_NAMESPACE_FILE) -> str:
    """Where the Lease lives: the flag, else the pod's namespace; outside a cluster it must be given."""
    if args.lease_namespace:
        return str(args.lease_namespace)
    if pod_namespace_file.exists():
        return pod_namespace_file.read_text().strip()
    raise ConfigError("--leader-elect needs --lease-namespace (or KCTL_LEASE_NAMESPACE) outside a cluster")


async def preflight(api_client: Any) -> None:
    """Fail with one line if the API server cannot be reached or does not serve Websites."""
    try:
        await discover(api_client, WEBSITES.api_version, WEBSITES.kind)
    except (ApiError, LookupError) as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise ConfigError(f"the API server refused our credentials: {exc}") from None
        raise ConfigError(
            f"the API server does not serve {WEBSITES.api_version} {WEBSITES.kind}: install the CRD "
            "(kubectl apply -f examples/website_controller/crd.yaml)"
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        host = getattr(getattr(api_client, "configuration", None), "host", "?")
        raise ConfigError(f"cannot reach the API server at {host}: {exc or type(exc).__name__}") from None


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, connect, check, and run the manager until stopped."""
    args = parse_args(argv)
    try:
        configure_logging(format=args.log_format, level=args.log_level)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    leader_election = None
    if args.leader_elect:
        leader_election = LeaderElectionConfig(
            lease_name=args.lease_name, lease_namespace=lease_namespace(args)
        )
    probe = await load_config(args.kubeconfig, args.context)
    try:
        await preflight(probe)
    finally:
        await probe.close()
    try:
        manager = await Manager.from_config(
            kubeconfig=args.kubeconfig,
            context=args.context,
            namespace=args.namespace,
            health_bind=args.health_bind,
            metrics_bind=args.metrics_bind,
            leader_election=leader_election,
            field_manager=FIELD_MANAGER,
        )
    except ValueError as exc:  # a malformed bind address
        raise ConfigError(str(exc)) from None
    manager.add(website_controller(manager.client, manager.event_recorder(PROG), namespace=args.namespace))
    await manager.run()
    return 0


if __name__ == "__main__":
    sys.argv[0] = PROG
    run_cli(main, prog=PROG)
