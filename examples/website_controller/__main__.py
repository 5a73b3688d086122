"""``python -m examples.website_controller``: run the Website controller against a cluster.

Contract
--------
The options are the standard manager flags of :mod:`kctl_runtime.cli` (each also a ``KCTL_*``
environment variable; ``--help`` lists them); the in-cluster Deployment turns ``--leader-elect`` on.

Configuration problems -- a kubeconfig that is missing or broken, an API server that cannot be
reached, the Website CRD not installed, a bad option value -- end the process with ONE line
``website-controller: error: ...`` on stderr and exit status 2, never a traceback. SIGTERM/SIGINT
stop it gracefully (in-flight reconciles finish, the Lease is released); a second signal forces.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from examples.website_controller.controller import FIELD_MANAGER, WEBSITES, website_controller
from kctl_runtime.cli import add_manager_arguments, lease_namespace, manager_from_args
from kctl_runtime.config import run_cli

__all__ = ["lease_namespace", "main", "parse_args"]

PROG = "website-controller"
LEASE_NAME = "website-controller"


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags over ``KCTL_*`` environment variables over defaults (module doc)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Run the Website controller.")
    add_manager_arguments(parser, lease_name=LEASE_NAME, environ=environ)
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, connect, check, and run the manager until stopped."""
    args = parse_args(argv)
    manager = await manager_from_args(
        args,
        requires=[WEBSITES],
        install_hint="install the CRD (kubectl apply -f examples/website_controller/manifests/crd.yaml)",
        field_manager=FIELD_MANAGER,
    )
    manager.add(
        website_controller(
            manager.client,
            manager.event_recorder(PROG),
            namespace=args.namespace,
            max_concurrent_reconciles=args.workers,
        )
    )
    await manager.run()
    return 0


if __name__ == "__main__":
    sys.argv[0] = PROG
    run_cli(main, prog=PROG)
