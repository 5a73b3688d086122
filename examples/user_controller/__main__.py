"""``python -m examples.user_controller``: run the User controller against a cluster.

Contract
--------
The options are the standard manager flags of :mod:`kctl_runtime.cli` (each also a ``KCTL_*``
environment variable; ``--help`` lists them), where ``--namespace`` scopes Users only (accounts and
group namespaces are cluster-wide), plus ``--resync-seconds`` / ``KCTL_RESYNC_SECONDS`` (default
``300``): how soon a deleted token Secret returns, since Secrets are not watched.

Configuration problems -- a kubeconfig that is missing or broken, an API server that cannot be
reached, the User CRD not installed, a bad option value -- end the process with ONE line
``user-controller: error: ...`` on stderr and exit status 2, never a traceback. SIGTERM/SIGINT
stop it gracefully (in-flight reconciles finish, the Lease is released); a second signal forces.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from examples.user_controller.controller import FIELD_MANAGER, USERS, user_controllers
from kctl_runtime.cli import (
    add_manager_arguments,
    flag_help,
    lease_namespace,
    manager_from_args,
    positive_seconds,
)
from kctl_runtime.config import run_cli

__all__ = ["lease_namespace", "main", "parse_args"]

PROG = "user-controller"
LEASE_NAME = "user-controller"


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags over ``KCTL_*`` environment variables over defaults (module doc)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog=PROG, description="Run the User controller.")
    add_manager_arguments(
        parser, lease_name=LEASE_NAME, environ=env, namespace_help="serve only Users in this namespace"
    )
    parser.add_argument(
        "--resync-seconds",
        type=positive_seconds,
        default=env.get("KCTL_RESYNC_SECONDS", "300"),
        help=flag_help(
            "re-check every User this often, in seconds; Secrets are not watched",
            "KCTL_RESYNC_SECONDS",
            "300",
        ),
    )
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, connect, check, and run the manager until stopped."""
    args = parse_args(argv)
    # No namespace on the manager: accounts and group namespaces are cluster-wide whatever --namespace
    # says; the User controller applies --namespace to Users itself (see user_controllers).
    manager = await manager_from_args(
        args,
        requires=[USERS],
        install_hint="install the CRD (kubectl apply -f examples/user_controller/manifests/crd.yaml)",
        scope_manager=False,
        field_manager=FIELD_MANAGER,
    )
    for controller in user_controllers(
        manager.client,
        manager.api_client,
        manager.event_recorder(PROG),
        namespace=args.namespace,
        resync_seconds=args.resync_seconds,
        max_concurrent_reconciles=args.workers,
    ):
        manager.add(controller)
    await manager.run()
    return 0


if __name__ == "__main__":
    sys.argv[0] = PROG
    run_cli(main, prog=PROG)
