"""``python -m examples.loadtest``: run the LoadTest controller and, optionally, its webhooks.

Contract
--------
The options are the standard manager flags of :mod:`kctl_runtime.cli` (each also a ``KCTL_*``
environment variable; ``--help`` lists them) plus:

=========================  ==========================  =============================================
flag                       environment                 meaning
=========================  ==========================  =============================================
``--webhook-cert-dir``     ``KCTL_WEBHOOK_CERT_DIR``   serve the admission webhooks with ``tls.crt``
                                                       / ``tls.key`` from here (reloaded on
                                                       rotation); unset: no webhook server
``--webhook-bind``         ``KCTL_WEBHOOK_BIND``       ``127.0.0.1:9443`` (``:9443`` in a Pod)
``--dev-webhooks``         ``KCTL_DEV_WEBHOOKS``       development: write a self-signed pair into
                                                       the cert dir and install the shipped
                                                       webhook configurations aimed at
                                                       ``https://127.0.0.1:PORT`` (deleted on exit)
=========================  ==========================  =============================================

The webhook server runs on every replica (not only the leader) and joins ``/readyz``. With
``--dev-webhooks`` an existing configuration of the same name is an error (the controller never
overwrites objects it did not create): delete it or drop the flag.

Configuration problems -- a kubeconfig that is missing or broken, an API server that cannot be
reached, the LoadTest CRD not installed, a bad option value, a certificate directory without a key
pair -- end the process with ONE line ``loadtest-controller: error: ...`` on stderr and exit status
2, never a traceback. SIGTERM/SIGINT stop it gracefully; a second signal forces.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import yaml

from examples.loadtest.controller import FIELD_MANAGER, LOADTESTS, loadtest_controller
from examples.loadtest.webhooks import webhook_server
from kctl_runtime.cli import add_manager_arguments, add_switch, flag_help, manager_from_args
from kctl_runtime.config import ConfigError, run_cli
from kctl_runtime.errors import AlreadyExists
from kctl_runtime.manager import Manager
from kctl_runtime.webhook import WebhookServer

__all__ = ["add_webhooks", "main", "parse_args", "webhook_server_from_args"]

PROG = "loadtest-controller"
LEASE_NAME = "loadtest-controller"
WEBHOOKS_MANIFEST = Path(__file__).resolve().parent / "manifests" / "webhooks.yaml"


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags over ``KCTL_*`` environment variables over defaults (module doc)."""
    import os

    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog=PROG, description="Run the LoadTest controller.")
    add_manager_arguments(parser, lease_name=LEASE_NAME, environ=env)
    parser.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=env.get("KCTL_WEBHOOK_CERT_DIR") or None,
        help=flag_help(
            "serve the admission webhooks with tls.crt/tls.key from this directory (reloaded on rotation)",
            "KCTL_WEBHOOK_CERT_DIR",
            "none: no webhook server",
        ),
    )
    parser.add_argument(
        "--webhook-bind",
        default=env.get("KCTL_WEBHOOK_BIND", "127.0.0.1:9443"),
        help=flag_help("HOST:PORT of the webhook server", "KCTL_WEBHOOK_BIND", "127.0.0.1:9443"),
    )
    add_switch(
        parser,
        "--dev-webhooks",
        env,
        "KCTL_DEV_WEBHOOKS",
        "development: self-sign a certificate into --webhook-cert-dir and install the webhook "
        "configurations aimed at this process",
    )
    args = parser.parse_args(argv)
    if args.dev_webhooks and args.webhook_cert_dir is None:
        parser.error("--dev-webhooks needs --webhook-cert-dir (where to write the certificate)")
    return args


def webhook_server_from_args(args: argparse.Namespace) -> tuple[WebhookServer, bytes | None] | None:
    """The webhook server the flags ask for and, in development, the CA it was self-signed with.

    Called before connecting to the API server, so a bad certificate directory is reported (one
    line) before anything else is opened.
    """
    if args.webhook_cert_dir is None:
        return None
    ca: bytes | None = None
    if args.dev_webhooks:
        from kctl_runtime.webhook_certs import self_signed

        ca = self_signed(args.webhook_cert_dir, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    try:
        return webhook_server(args.webhook_cert_dir, bind=args.webhook_bind), ca
    except (OSError, ValueError) as exc:
        raise ConfigError(f"webhook server: {exc}") from None


def add_webhooks(manager: Manager, served: tuple[WebhookServer, bytes | None] | None) -> None:
    """Serve the webhooks with ``manager`` (and, in development, install their configurations)."""
    if served is None:
        return
    server, ca = served
    manager.add_webhook_server(server)
    if ca is not None:
        manager.add_runnable(_installer(manager, server, ca), needs_leader=False, name="dev webhooks")


def _installer(manager: Manager, server: WebhookServer, ca: bytes) -> Any:
    """A runnable installing the shipped configurations once ``server`` listens; removed on stop."""
    from kctl_runtime.testing.envtest.webhooks import install_webhooks

    manifests = list(yaml.safe_load_all(WEBHOOKS_MANIFEST.read_text()))
    mutating = [m for m in manifests if m["kind"] == "MutatingWebhookConfiguration"]
    validating = [m for m in manifests if m["kind"] == "ValidatingWebhookConfiguration"]

    async def install() -> None:
        installed = install_webhooks(manager.api_client, server, ca, mutating=mutating, validating=validating)
        try:
            await installed.__aenter__()
        except AlreadyExists as exc:
            raise ConfigError(f"--dev-webhooks: {exc}; delete it first") from None
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):  # remove them even when cancelled
                await installed.__aexit__(None, None, None)

    return install


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, connect, check, and run the manager until stopped."""
    args = parse_args(argv)
    served = webhook_server_from_args(args)
    manager = await manager_from_args(
        args,
        requires=[LOADTESTS],
        install_hint="install the CRD (kubectl apply -f examples/loadtest/crd.yaml)",
        field_manager=FIELD_MANAGER,
    )
    add_webhooks(manager, served)
    manager.add(loadtest_controller(manager.client, manager.event_recorder(PROG), namespace=args.namespace))
    await manager.run()
    return 0


if __name__ == "__main__":
    sys.argv[0] = PROG
    run_cli(main, prog=PROG)
