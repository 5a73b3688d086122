"""``python -m examples.website_controller``: run the Website controller against a cluster.

Contract
--------
The options are the standard manager flags of :mod:`kctl_runtime.cli` (each also a ``KCTL_*``
environment variable; ``--help`` lists them); the in-cluster Deployment turns ``--leader-elect`` on.

``--shard`` (``KCTL_SHARD``) runs the controller sharded instead (:mod:`kctl_runtime.sharding`,
ring ``website``): every replica reconciles the Websites labelled with its ``--shard-id`` (the pod
name by default) and their Deployments and Services, and one replica's sharder assigns them; the
StatefulSet in ``manifests-sharded/`` runs three such replicas.

Configuration problems -- a kubeconfig that is missing or broken, an API server that cannot be
reached, the Website CRD not installed, a bad option value -- end the process with ONE line
``website-controller: error: ...`` on stderr and exit status 2, never a traceback. SIGTERM/SIGINT
stop it gracefully (in-flight reconciles finish, the Lease is released); a second signal forces.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence

from examples.website_controller.controller import FIELD_MANAGER, WEBSITES, website_controller
from kctl_runtime.cli import (
    add_manager_arguments,
    add_sharding_arguments,
    lease_namespace,
    manager_from_args,
    sharding_from_args,
)
from kctl_runtime.config import connect, run_cli
from kctl_runtime.controller import Controller
from kctl_runtime.informer import compact_object
from kctl_runtime.resource import DEPLOYMENTS, SERVICES
from kctl_runtime.sharding import Shard, Sharder, shard_label

__all__ = ["lease_namespace", "main", "parse_args"]

PROG = "website-controller"
LEASE_NAME = "website-controller"
RING = "website"


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags over ``KCTL_*`` environment variables over defaults (module doc)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Run the Website controller.")
    add_manager_arguments(parser, lease_name=LEASE_NAME, environ=environ)
    add_sharding_arguments(parser, ring=RING, environ=environ)
    return parser.parse_args(argv)


async def main(
    argv: Sequence[str] | None = None, *, instrument: Callable[[Controller], None] | None = None
) -> int:
    """Parse options, connect, check, and run the manager until stopped.

    ``instrument(controller)`` is called on the controller before it is added (tests record
    reconciles with it).
    """
    args = parse_args(argv)
    sharding = sharding_from_args(args, WEBSITES, owns=[DEPLOYMENTS, SERVICES])
    manager = await manager_from_args(
        args,
        requires=[WEBSITES],
        install_hint="install the CRD (kubectl apply -f examples/website_controller/manifests/crd.yaml)",
        field_manager=FIELD_MANAGER,
        informer_transform=compact_object,  # thousands of similar children: shared strings (docs/informer.md)
    )
    if sharding is None:
        controller = website_controller(
            manager.client,
            manager.event_recorder(PROG),
            namespace=args.namespace,
            max_concurrent_reconciles=args.workers,
        )
        if instrument is not None:
            instrument(controller)
        manager.add(controller)
        await manager.run()
        return 0
    # Sharded: Lease and label traffic on their own connection pools, never queued behind reconciles.
    shard_client = await connect(args.kubeconfig, args.context)
    sharder_client = await connect(args.kubeconfig, args.context)
    try:
        shard = Shard(
            shard_client, sharding, args.shard_id, graceful_shutdown_timeout=manager.graceful_shutdown_timeout
        )
        controller = website_controller(
            manager.client,
            manager.event_recorder(PROG),
            namespace=args.namespace,
            max_concurrent_reconciles=args.workers,
            child_labels={shard_label(sharding.ring): args.shard_id},
        )
        if instrument is not None:
            instrument(controller)
        shard.add(controller)
        shard.attach(manager)
        Sharder(sharder_client, sharding, identity=f"{args.shard_id}-{shard.identity[-8:]}").attach(manager)
        await manager.run()
    finally:
        await shard_client.close()
        await sharder_client.close()
    return 0


if __name__ == "__main__":
    sys.argv[0] = PROG
    run_cli(main, prog=PROG)
