"""Finding the Kubernetes API: kubeconfig, in-cluster service account, or an explicit path.

Contract
--------
:func:`load_config` returns a ready kubernetes-asyncio ``ApiClient``, looking in this order (the
order controller-runtime uses):

1. ``kubeconfig=`` -- an explicit path (a ``--kubeconfig`` flag). It must exist.
2. ``$KUBECONFIG`` -- one path or several joined with ``:`` (merged like kubectl does).
3. In-cluster -- when ``$KUBERNETES_SERVICE_HOST`` is set: the pod's service-account token and CA
   (``/var/run/secrets/kubernetes.io/serviceaccount/``); the token is re-read when it rotates.
4. ``~/.kube/config``.

In-cluster comes before ``~/.kube/config`` so a stray file baked into an image cannot redirect a
controller running in a pod. ``context=`` picks a kubeconfig context (default: current-context);
it is an error with in-cluster configuration.

Every failure -- no configuration anywhere, a missing file, YAML that does not parse, a context,
cluster or user that is not defined, an in-cluster token that is missing -- raises
:class:`ConfigError` whose message is ONE line naming the file and the problem. CLI entry points
wrap their main coroutine in :func:`run_cli`, which turns a ``ConfigError`` into
``error: <message>`` on stderr and exit status 2, without a traceback (and any other
:class:`FatalError`, such as the manager's cache-sync timeout or lost leadership, into one line
and exit status 1).

Not guaranteed: that the server answers. Loading only reads configuration; the first request shows
whether the cluster is reachable and the credentials valid. Kubeconfig files are never written
(token refreshes are kept in memory).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

__all__ = ["ConfigError", "FatalError", "load_config", "run_cli"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class FatalError(Exception):
    """An operational failure that ends the process (not a bug): :func:`run_cli` prints
    ``error: <message>`` and exits with :attr:`exit_code`, without a traceback."""

    exit_code = 1


class ConfigError(FatalError):
    """The Kubernetes client configuration could not be loaded; ``str()`` is one readable line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _kubeconfig_paths(raw: str) -> list[Path]:
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def _read_kubeconfig(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"kubeconfig {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"kubeconfig {path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"kubeconfig {path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"kubeconfig {path}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise ConfigError(f"kubeconfig {path}: expected a mapping at the top level, got {kind}")
    return data


def _named(entries: Any, name: str) -> Mapping[str, Any] | None:
    for entry in entries or ():
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry
    return None


def _validate(paths: list[Path], context: str | None) -> None:
    """Check what kubernetes-asyncio would otherwise report as a stack trace or a vague message."""
    merged: dict[str, list[Any]] = {"contexts": [], "clusters": [], "users": []}
    current: str | None = None
    for path in paths:
        data = _read_kubeconfig(path)
        for item, entries in merged.items():
            value = data.get(item) or []
            if not isinstance(value, list):
                raise ConfigError(f"kubeconfig {path}: '{item}' must be a list")
            entries.extend(value)
        if current is None and data.get("current-context"):
            current = str(data["current-context"])
    where = "kubeconfig " + ":".join(str(p) for p in paths)
    chosen = context or current
    if not chosen:
        raise ConfigError(f"{where}: no current-context set and no context given")
    ctx = _named(merged["contexts"], chosen)
    if ctx is None:
        names = sorted(str(c.get("name")) for c in merged["contexts"] if isinstance(c, Mapping))
        available = ", ".join(names)
        raise ConfigError(f"{where}: context {chosen!r} not found (available: {available or 'none'})")
    body = ctx.get("context") or {}
    cluster_name = body.get("cluster")
    if not cluster_name:
        raise ConfigError(f"{where}: context {chosen!r} names no cluster")
    cluster = _named(merged["clusters"], str(cluster_name))
    if cluster is None:
        raise ConfigError(f"{where}: context {chosen!r} refers to undefined cluster {cluster_name!r}")
    if not (cluster.get("cluster") or {}).get("server"):
        raise ConfigError(f"{where}: cluster {cluster_name!r} has no server URL")
    user_name = body.get("user")
    if user_name and _named(merged["users"], str(user_name)) is None:
        raise ConfigError(f"{where}: context {chosen!r} refers to undefined user {user_name!r}")


async def _from_kubeconfig(paths: list[Path], context: str | None) -> Any:
    from kubernetes_asyncio import client
    from kubernetes_asyncio import config as k8s_config

    _validate(paths, context)
    configuration = client.Configuration()
    try:
        await k8s_config.load_kube_config(
            config_file=os.pathsep.join(str(p) for p in paths),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except Exception as exc:
        where = "kubeconfig " + ":".join(str(p) for p in paths)
        raise ConfigError(f"{where}: {_one_line(exc)}") from None
    return client.ApiClient(configuration)


def _from_cluster(environ: Mapping[str, str], sa_dir: Path) -> Any:
    from kubernetes_asyncio import client
    from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

    token, ca = sa_dir / "token", sa_dir / "ca.crt"
    if not environ.get("KUBERNETES_SERVICE_PORT"):
        raise ConfigError("in-cluster config: KUBERNETES_SERVICE_HOST is set, KUBERNETES_SERVICE_PORT is not")
    if not token.is_file():
        raise ConfigError(f"in-cluster config: service account token {token} does not exist")
    if not ca.is_file() or ca.stat().st_size == 0:
        raise ConfigError(f"in-cluster config: service account CA {ca} is missing or empty")
    configuration = client.Configuration()
    try:
        InClusterConfigLoader(str(token), str(ca), environ=dict(environ)).load_and_set(configuration)
    except Exception as exc:
        raise ConfigError(f"in-cluster config: {_one_line(exc)}") from None
    return client.ApiClient(configuration)


async def load_config(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Build a kubernetes-asyncio ``ApiClient`` from the first configuration found (module doc).

    ``environ`` and ``service_account_dir`` default to ``os.environ`` and the standard
    service-account mount; they exist so tests (and unusual deployments) can point elsewhere.
    The caller owns the returned client and must ``await client.close()``.
    """
    env = os.environ if environ is None else environ
    sa_dir = Path(service_account_dir) if service_account_dir is not None else SERVICE_ACCOUNT_DIR
    paths = _choose_kubeconfig(kubeconfig, env)
    if paths is not None:
        return await _from_kubeconfig(paths, context)
    if context is not None:
        raise ConfigError(f"context {context!r} given, but running in-cluster without a kubeconfig")
    return _from_cluster(env, sa_dir)


def _choose_kubeconfig(
    kubeconfig: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> list[Path] | None:
    """The kubeconfig files to load, or ``None`` for in-cluster configuration."""
    if kubeconfig is not None:
        return [Path(kubeconfig).expanduser()]
    if env.get("KUBECONFIG"):
        paths = _kubeconfig_paths(env["KUBECONFIG"])
        existing = [p for p in paths if p.exists()]
        if not existing:
            raise ConfigError(f"$KUBECONFIG={env['KUBECONFIG']}: no such file")
        return existing
    if env.get("KUBERNETES_SERVICE_HOST"):
        return None
    home = Path(env.get("HOME") or Path.home()) / ".kube" / "config"
    if home.exists():
        return [home]
    raise ConfigError(
        "no Kubernetes configuration found: pass a kubeconfig path, set $KUBECONFIG, "
        f"create {home}, or run in a cluster"
    )


def run_cli(main: Callable[[], Awaitable[int | None]], *, prog: str | None = None) -> NoReturn:
    """Run ``main()`` on a fresh event loop and exit with its status; for ``console_scripts``.

    ``ConfigError`` becomes ``error: <message>`` on stderr and exit status 2 (no traceback); other
    :class:`FatalError` s (the manager's ``CacheSyncTimeout``, ``LeaderElectionLost``,
    ``ForcedShutdown``) likewise, with status 1. ``KeyboardInterrupt`` exits with 130. Other
    exceptions propagate with their traceback: they are bugs, and the traceback is what a bug
    report needs.
    """

    async def _main() -> int | None:
        return await main()

    prefix = f"{prog}: " if prog else ""
    try:
        status = asyncio.run(_main())
    except FatalError as exc:
        print(f"{prefix}error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0 if status is None else int(status))
