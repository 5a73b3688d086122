"""Command-line plumbing every controller binary needs: the standard flags, leader election from
them, and a preflight check that turns "cannot run here" into one clear line.

Contract
--------
:func:`add_manager_arguments` adds these options to an :class:`argparse.ArgumentParser`, each a flag
and a ``KCTL_*`` environment variable (the flag wins; ``--help`` lists them):

flag                   environment                  default
=====================  ===========================  =======================================
``--kubeconfig``       ``KCTL_KUBECONFIG``          ``$KUBECONFIG``, in-cluster, ``~/.kube/config``
``--context``          ``KCTL_CONTEXT``             the kubeconfig's current context
``--namespace``        ``KCTL_NAMESPACE``           all namespaces
``--leader-elect``     ``KCTL_LEADER_ELECT``        off
``--lease-namespace``  ``KCTL_LEASE_NAMESPACE``     the pod's namespace in a cluster
``--lease-name``       ``KCTL_LEASE_NAME``          the program's lease name
``--health-bind``      ``KCTL_HEALTH_BIND``         ``127.0.0.1:8081`` (``off`` disables)
``--metrics-bind``     ``KCTL_METRICS_BIND``        ``127.0.0.1:8080`` (``off`` disables)
``--log-format``       ``KCTL_LOG_FORMAT``          ``console`` (``json`` for log pipelines)
``--log-level``        ``KCTL_LOG_LEVEL``           ``info``
``--workers``          ``KCTL_WORKERS``             ``16`` concurrent reconciles per controller
=====================  ===========================  =======================================
=======
=======================  ===========================  =======================================
flag                     environment                  default
=======================  ===========================  =======================================
``--kubeconfig``         ``KCTL_KUBECONFIG``          ``$KUBECONFIG``, in-cluster, ``~/.kube/config``
``--context``            ``KCTL_CONTEXT``             the kubeconfig's current context
``--namespace``          ``KCTL_NAMESPACE``           all namespaces
``--leader-elect``       ``KCTL_LEADER_ELECT``        off
``--lease-namespace``    ``KCTL_LEASE_NAMESPACE``     the pod's namespace in a cluster
``--lease-name``         ``KCTL_LEASE_NAME``          the program's lease name
``--health-bind``        ``KCTL_HEALTH_BIND``         ``127.0.0.1:8081`` (``off`` disables)
``--metrics-bind``       ``KCTL_METRICS_BIND``        ``127.0.0.1:8080`` (``off`` disables)
``--metrics-secure``     ``KCTL_METRICS_SECURE``      off (HTTPS + TokenReview/SubjectAccessReview)
``--metrics-cert-dir``   ``KCTL_METRICS_CERT_DIR``    none (``tls.crt`` and ``tls.key``)
``--log-format``         ``KCTL_LOG_FORMAT``          ``console`` (``json`` for log pipelines)
``--log-level``          ``KCTL_LOG_LEVEL``           ``info``
``--workers``            ``KCTL_WORKERS``             ``16`` concurrent reconciles per controller
=======================  ===========================  =======================================

With :func:`add_sharding_arguments` (for controllers that support :mod:`kctl_runtime.sharding`):

=========================  ===========================  =======================================
flag                       environment                  default
=========================  ===========================  =======================================
``--shard``                ``KCTL_SHARD``               off: one active replica (or leader election)
``--shard-id``             ``KCTL_SHARD_ID``            the host name (the pod name in a cluster)
``--shard-ring``           ``KCTL_SHARD_RING``          the program's ring name
``--shard-lease-duration`` ``KCTL_SHARD_LEASE_DURATION`` ``15`` s (renew deadline 2/3, retry 2/15 of it)
=========================  ===========================  =======================================

``--shard`` and ``--leader-elect`` exclude each other: every shard is active on its own share, and
the sharder among them is leader-elected on its own Lease.

``--workers`` defaults to :data:`DEFAULT_WORKERS` (16), not controller-runtime's 1: a reconciler
spends nearly all its time waiting for the API server, so one worker leaves the process idle while a
burst of changes queues up. Workers are coroutines (no threads), and the work queue still hands a
key to one worker at a time, so more workers never reconcile one object twice at once.

A program's own flags use the same vocabulary: :func:`flag_help` writes a help text as "what it
is (env NAME; default: ...)", and :func:`add_switch` adds an on/off ``--flag`` / ``--no-flag`` whose
environment variable takes true/false, 1/0, yes/no or on/off.

A bad value in the environment is reported like a bad flag (argparse's one-line usage error, exit 2).
:func:`manager_from_args` configures logging, checks that the API server is reachable and serves
the resources the controller needs (:func:`preflight`), and builds the
:class:`~kctl_runtime.manager.Manager`; every problem it finds is a
:class:`~kctl_runtime.config.ConfigError`, which :func:`~kctl_runtime.config.run_cli` prints as one
``PROG: error: ...`` line with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kctl_runtime.config import SERVICE_ACCOUNT_DIR, ConfigError
from kctl_runtime.errors import TRANSPORT_ERRORS, ApiError
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.logging import configure_logging
from kctl_runtime.manager import Manager
from kctl_runtime.resource import Resource, discover
from kctl_runtime.sharding import ShardingConfig

__all__ = [
    "DEFAULT_WORKERS",
    "POD_NAMESPACE_FILE",
    "add_manager_arguments",
    "add_sharding_arguments",
    "add_switch",
    "flag_help",
    "leader_election_from_args",
    "lease_namespace",
    "manager_from_args",
    "positive_int",
    "positive_seconds",
    "preflight",
    "sharding_from_args",
]

POD_NAMESPACE_FILE = SERVICE_ACCOUNT_DIR / "namespace"
"""Where a pod finds its own namespace (the service-account mount)."""

DEFAULT_WORKERS = 16
"""Concurrent reconciles per controller unless ``--workers`` / ``KCTL_WORKERS`` says otherwise."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _bind(value: str) -> str | None:
    return None if value.strip().lower() in ("off", "none", "0", "") else value


def _log_format(value: str) -> str:
    if value not in ("json", "console"):
        raise argparse.ArgumentTypeError(f"must be json or console, got {value!r}")
    return value


def positive_seconds(value: str) -> float:
    """An argparse ``type`` for a duration in seconds that must be > 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return number


def positive_int(value: str) -> int:
    """An argparse ``type`` for a count that must be >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value!r}")
    return number


def flag_help(text: str, env_name: str, default: str) -> str:
    """One help vocabulary for every flag: what it is, its environment variable, its default."""
    return f"{text} (env {env_name}; default: {default})".replace("%", "%%")


def add_switch(
    parser: argparse.ArgumentParser, flag: str, env: Mapping[str, str], env_name: str, text: str
) -> None:
    """Add ``flag`` / ``--no-...``: off unless ``env_name`` says true; a bad value is a usage error."""
    try:
        default = _bool(env.get(env_name, "false"))
    except argparse.ArgumentTypeError as exc:
        parser.error(f"{env_name}: {exc}")
    parser.add_argument(
        flag, action=argparse.BooleanOptionalAction, default=default, help=flag_help(text, env_name, "off")
    )


def add_manager_arguments(
    parser: argparse.ArgumentParser,
    *,
    lease_name: str,
    environ: Mapping[str, str] | None = None,
    namespace_help: str = "serve only this namespace",
) -> None:
    """Add the standard manager options (module doc) to ``parser``, defaults from ``environ``."""
    env = os.environ if environ is None else environ
    parser.add_argument(
        "--kubeconfig",
        default=env.get("KCTL_KUBECONFIG"),
        help=flag_help("kubeconfig file", "KCTL_KUBECONFIG", "$KUBECONFIG, in-cluster, ~/.kube/config"),
    )
    parser.add_argument(
        "--context",
        default=env.get("KCTL_CONTEXT"),
        help=flag_help("kubeconfig context", "KCTL_CONTEXT", "the kubeconfig's current context"),
    )
    parser.add_argument(
        "--namespace",
        default=env.get("KCTL_NAMESPACE") or None,
        help=flag_help(namespace_help, "KCTL_NAMESPACE", "all namespaces"),
    )
    add_switch(
        parser, "--leader-elect", env, "KCTL_LEADER_ELECT", "campaign for a Lease; only the leader reconciles"
    )
    parser.add_argument(
        "--lease-namespace",
        default=env.get("KCTL_LEASE_NAMESPACE") or None,
        help=flag_help(
            "namespace of the leader-election Lease", "KCTL_LEASE_NAMESPACE", "the pod's namespace"
        ),
    )
    parser.add_argument(
        "--lease-name",
        default=env.get("KCTL_LEASE_NAME", lease_name),
        help=flag_help("name of the leader-election Lease", "KCTL_LEASE_NAME", lease_name),
    )
    parser.add_argument(
        "--health-bind",
        type=_bind,
        default=_bind(env.get("KCTL_HEALTH_BIND", "127.0.0.1:8081")),
        help=flag_help("HOST:PORT of /healthz and /readyz, or off", "KCTL_HEALTH_BIND", "127.0.0.1:8081"),
    )
    parser.add_argument(
        "--metrics-bind",
        type=_bind,
        default=_bind(env.get("KCTL_METRICS_BIND", "127.0.0.1:8080")),
        help=flag_help("HOST:PORT of /metrics, or off", "KCTL_METRICS_BIND", "127.0.0.1:8080"),
    )
    add_switch(
        parser,
        "--metrics-secure",
        env,
        "KCTL_METRICS_SECURE",
        "serve /metrics over HTTPS to callers the API server authorizes (TokenReview + "
        "SubjectAccessReview for get on /metrics)",
    )
    parser.add_argument(
        "--metrics-cert-dir",
        default=env.get("KCTL_METRICS_CERT_DIR") or None,
        help=flag_help(
            "directory with tls.crt and tls.key for --metrics-secure (a mounted TLS Secret)",
            "KCTL_METRICS_CERT_DIR",
            "none; --metrics-secure needs it",
        ),
    )
    # a string default goes through ``type`` too, so a bad KCTL_LOG_FORMAT fails unless the flag is given
    parser.add_argument(
        "--log-format",
        type=_log_format,
        default=env.get("KCTL_LOG_FORMAT", "console"),
        help=flag_help("json or console", "KCTL_LOG_FORMAT", "console"),
    )
    parser.add_argument(
        "--log-level",
        default=env.get("KCTL_LOG_LEVEL", "info"),
        help=flag_help("debug, info, warning or error", "KCTL_LOG_LEVEL", "info"),
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=env.get("KCTL_WORKERS", str(DEFAULT_WORKERS)),
        help=flag_help("concurrent reconciles per controller", "KCTL_WORKERS", str(DEFAULT_WORKERS)),
    )


def _shard_id(value: str) -> str:
    text = value.strip().lower()
    if (
        not text
        or len(text) > 63
        or not all(c.isalnum() or c == "-" for c in text)
        or text[0] == "-"
        or text[-1] == "-"
    ):
        raise argparse.ArgumentTypeError(f"a shard id is a DNS label (letters, digits, '-'), got {value!r}")
    return text


def add_sharding_arguments(
    parser: argparse.ArgumentParser, *, ring: str, environ: Mapping[str, str] | None = None
) -> None:
    """Add ``--shard``, ``--shard-id``, ``--shard-ring`` and ``--shard-lease-duration`` (module doc)."""
    env = os.environ if environ is None else environ
    add_switch(
        parser, "--shard", env, "KCTL_SHARD", "run as one shard of a ring: each replica reconciles its share"
    )
    parser.add_argument(
        "--shard-id",
        type=_shard_id,
        default=env.get("KCTL_SHARD_ID") or socket.gethostname().split(".")[0].lower(),
        help=flag_help(
            "this replica's shard id, unique in the ring", "KCTL_SHARD_ID", "the host name, i.e. the pod name"
        ),
    )
    parser.add_argument(
        "--shard-ring",
        default=env.get("KCTL_SHARD_RING", ring),
        help=flag_help("the ring's name", "KCTL_SHARD_RING", ring),
    )
    parser.add_argument(
        "--shard-lease-duration",
        type=positive_seconds,
        default=env.get("KCTL_SHARD_LEASE_DURATION", "15"),
        help=flag_help("seconds before a dead shard's objects move", "KCTL_SHARD_LEASE_DURATION", "15"),
    )


def sharding_from_args(
    args: argparse.Namespace,
    resource: Resource,
    *,
    owns: Sequence[Resource] = (),
    pod_namespace_file: Path = POD_NAMESPACE_FILE,
) -> ShardingConfig | None:
    """The ring the flags describe for ``resource`` (``None`` without ``--shard``)."""
    if not args.shard:
        return None
    if getattr(args, "leader_elect", False):
        raise ConfigError("--shard and --leader-elect exclude each other: every shard is active on its share")
    duration = float(args.shard_lease_duration)
    try:
        return ShardingConfig(
            ring=args.shard_ring,
            resource=resource,
            owns=tuple(owns),
            lease_namespace=lease_namespace(args, pod_namespace_file, flag="--shard"),
            namespace=args.namespace,
            lease_duration=duration,
            renew_deadline=duration * 2 / 3,
            retry_period=duration * 2 / 15,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def lease_namespace(
    args: argparse.Namespace, pod_namespace_file: Path = POD_NAMESPACE_FILE, *, flag: str = "--leader-elect"
) -> str:
    """Where the Lease lives: the flag, else the pod's namespace; outside a cluster it must be given."""
    if args.lease_namespace:
        return str(args.lease_namespace)
    if pod_namespace_file.exists():
        return pod_namespace_file.read_text().strip()
    raise ConfigError(f"{flag} needs --lease-namespace (or KCTL_LEASE_NAMESPACE) outside a cluster")


def leader_election_from_args(
    args: argparse.Namespace, pod_namespace_file: Path = POD_NAMESPACE_FILE
) -> LeaderElectionConfig | None:
    """The leader-election settings the flags ask for, or ``None`` when it is off."""
    if not args.leader_elect:
        return None
    return LeaderElectionConfig(
        lease_name=args.lease_name, lease_namespace=lease_namespace(args, pod_namespace_file)
    )


async def preflight(api_client: Any, requires: Sequence[Resource], *, install_hint: str = "") -> None:
    """Fail with one line if the API server cannot be reached or does not serve ``requires``."""
    for resource in requires:
        try:
            await discover(api_client, resource.api_version, resource.kind)
        except (ApiError, LookupError) as exc:
            if getattr(exc, "status", None) in (401, 403):
                raise ConfigError(f"the API server refused our credentials: {exc}") from None
            hint = f": {install_hint}" if install_hint else ""
            raise ConfigError(
                f"the API server does not serve {resource.api_version} {resource.kind}{hint}"
            ) from None
        except TRANSPORT_ERRORS as exc:
            host = getattr(getattr(api_client, "configuration", None), "host", "?")
            raise ConfigError(f"cannot reach the API server at {host}: {exc or type(exc).__name__}") from None


async def manager_from_args(
    args: argparse.Namespace,
    *,
    requires: Sequence[Resource] = (),
    install_hint: str = "",
    scope_manager: bool = True,
    **manager_options: Any,
) -> Manager:
    """Configure logging, run :func:`preflight`, and build the manager the flags describe.

    ``scope_manager=False`` leaves the manager cluster-wide whatever ``--namespace`` says, for
    controllers that apply the namespace to their primary resource only. ``manager_options`` go to
    :meth:`Manager.from_config` (e.g. ``field_manager``).
    """
    try:
        configure_logging(format=args.log_format, level=args.log_level)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    leader_election = leader_election_from_args(args)

    async def check(api_client: Any) -> None:
        await preflight(api_client, requires, install_hint=install_hint)

    if scope_manager:
        manager_options.setdefault("namespace", args.namespace)
    try:
        return await Manager.from_config(
            kubeconfig=args.kubeconfig,
            context=args.context,
            health_bind=args.health_bind,
            metrics_bind=args.metrics_bind,
            metrics_secure=args.metrics_secure,
            metrics_cert_dir=args.metrics_cert_dir,
            leader_election=leader_election,
            preflight=check,
            **manager_options,
        )
    except ValueError as exc:  # a malformed bind address, a missing metrics certificate
        raise ConfigError(str(exc)) from None
