"""Finding the envtest binaries: ``KUBEBUILDER_ASSETS`` first, then the version-keyed cache."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kctl_runtime.testing.envtest._errors import EnvtestUnavailable

#: The Kubernetes release the shipped build script builds (pinned in ``gobuild/go.mod``; a test keeps
#: the two equal).
KUBERNETES_VERSION = "v1.36.4"

#: The build recipe shipped with the package: ``python -m kctl_runtime.testing.envtest build`` runs it.
BUILD_SCRIPT = Path(__file__).resolve().parent / "gobuild" / "build.sh"

#: What to do when the binaries are missing, for a user who installed kctl-runtime with pip.
BUILD_HINT = (
    "set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver (setup-envtest's output works: "
    "KUBEBUILDER_ASSETS=$(setup-envtest use -p path 1.36.x)), or build them once with "
    "`python -m kctl_runtime.testing.envtest build` (needs Go 1.26)"
)


def default_assets_dir(version: str = KUBERNETES_VERSION) -> Path:
    """Where ``python -m kctl_runtime.testing.envtest build`` puts the binaries of ``version``.

    ``$KCTL_ENVTEST_ASSETS_DIR`` if set, else ``${XDG_CACHE_HOME:-~/.cache}/kctl-runtime/envtest/<version>``.
    """
    explicit = os.environ.get("KCTL_ENVTEST_ASSETS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kctl-runtime" / "envtest" / version


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@dataclass(frozen=True)
class Binaries:
    """The programs a :class:`~kctl_runtime.testing.envtest.ControlPlane` runs.

    ``kube_controller_manager`` and ``kubectl`` are optional: without the first, garbage collection,
    namespace deletion and default ServiceAccounts do not happen (as in controller-runtime's envtest).
    """

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None
    kubectl: Path | None
    #: Where they were found, for messages: ``KUBEBUILDER_ASSETS=<dir>`` or ``cache <dir>``.
    source: str

    @classmethod
    def find(cls) -> Binaries:
        """Look where controller-runtime's envtest looks, then in the cache the build command fills.

        1. ``$KUBEBUILDER_ASSETS``: a folder with ``etcd`` and ``kube-apiserver`` (and optionally
           ``kube-controller-manager``, ``kubectl``). If it is set but incomplete, that is an error:
           no silent fallback to another version.
        2. :func:`default_assets_dir` for :data:`KUBERNETES_VERSION`.

        ``$KCTL_KUBECTL`` overrides the kubectl found there. Raises :class:`EnvtestUnavailable`.
        """
        assets = os.environ.get("KUBEBUILDER_ASSETS")
        if assets:
            folder, source = Path(assets), f"KUBEBUILDER_ASSETS={assets}"
        else:
            folder = default_assets_dir()
            source = f"cache {folder}"
        missing = [name for name in ("etcd", "kube-apiserver") if not _executable(folder / name)]
        if missing:
            raise EnvtestUnavailable(f"no {' or '.join(missing)} in {source}: {BUILD_HINT}")
        kcm = folder / "kube-controller-manager"
        kubectl_env = os.environ.get("KCTL_KUBECTL")
        kubectl = Path(kubectl_env) if kubectl_env else folder / "kubectl"
        return cls(
            etcd=folder / "etcd",
            kube_apiserver=folder / "kube-apiserver",
            kube_controller_manager=kcm if _executable(kcm) else None,
            kubectl=kubectl if _executable(kubectl) else None,
            source=source,
        )


def program_output(*argv: str | Path) -> str:
    """stdout+stderr of a short-lived command (``--version``, ``--help``); '' if it cannot run."""
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).decode(errors="replace")
