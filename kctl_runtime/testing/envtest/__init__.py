"""envtest: a real Kubernetes control plane on loopback for tests (etcd + kube-apiserver + controllers).

The real-server test tier. Where :mod:`kctl_runtime.testing.fakeapi` is fast and controllable, this
is the real thing: the same kube-apiserver as a cluster's, so validation, defaulting, RBAC,
admission, resourceVersion and watch semantics are Kubernetes' own, not our reading of them.

Contract
--------
* :class:`ControlPlane` runs, as subprocesses bound to 127.0.0.1 on free ports:

  - **etcd**, data in the plane's temporary folder (``--unsafe-no-fsync`` when etcd knows it);
  - **kube-apiserver** with its own CA and serving certificate (made fresh per start; the
    ``cryptography`` package from the ``test`` extra), ``--authorization-mode=RBAC`` (RBAC
    manifests are really checked), a service-account signing key, Services in 10.0.0.0/16, and
    the ``ServiceAccount`` admission plugin off (pods are stored only: nothing runs them);
  - **kube-controller-manager** (when its binary is present; ``KCTL_ENVTEST_CONTROLLER_MANAGER=0``
    turns it off), so garbage collection, namespace deletion, the ``default`` ServiceAccount of
    every namespace and service-account token Secrets are real. No scheduler, no kubelet: pods stay
    Pending, and nodes exist only if a test creates them.

* :meth:`ControlPlane.start` returns once ``/readyz`` is ``ok`` and (with the controller-manager)
  the ``default`` ServiceAccount exists in ``default``, or raises :class:`EnvtestUnavailable` with one
  line naming the failing process and the tail of its log (binaries missing, port clash after three
  attempts, timeout: ``KCTL_ENVTEST_START_TIMEOUT``, default 60 s).
* :attr:`ControlPlane.kubeconfig_path` is a kubeconfig with the CA data and a client certificate
  of a ``system:masters`` user (:data:`ADMIN_USER`): kubectl and kubernetes-asyncio both accept it,
  and every request over the connection is authenticated, raw ``call_api`` calls included.
* :meth:`ControlPlane.stop` sends SIGTERM (API server and controller-manager, then etcd), SIGKILL
  after ``stop_timeout`` and removes the temporary folder; it is idempotent, runs on ``with`` exit
  and, as a last resort, at interpreter exit. Not guaranteed: if the test process is SIGKILLed the
  children survive it (they run in their own sessions so a terminal Ctrl-C reaches the test runner
  first, which then stops them in order).
* Binaries are found as controller-runtime's envtest finds them (:meth:`Binaries.find`):
  ``$KUBEBUILDER_ASSETS`` (``etcd``, ``kube-apiserver``, optional ``kube-controller-manager`` and
  ``kubectl``; setup-envtest's output folder works), else the cache that
  ``python -m kctl_runtime.testing.envtest build`` fills for :data:`KUBERNETES_VERSION`:
  ``${XDG_CACHE_HOME:-~/.cache}/kctl-runtime/envtest/<version>/``. When neither has them the error
  says both ways (:data:`BUILD_HINT`).
* The API is synchronous (subprocesses and blocking polls): call it from a session fixture or a
  thread, not from inside a running event loop's hot path.

Command::

    python -m kctl_runtime.testing.envtest start [--dir DIR]   # prints the kubeconfig path
    python -m kctl_runtime.testing.envtest status [--dir DIR]
    python -m kctl_runtime.testing.envtest stop [--dir DIR]
    python -m kctl_runtime.testing.envtest build [--print-dir]   # compile the binaries (Go 1.26)

``start`` leaves the plane running after the command exits; DIR (default
``$TMPDIR/kctl-envtest-<uid>``) holds the kubeconfig, ``state.json`` (pids, port) and ``logs/``.
"""

from __future__ import annotations

from kctl_runtime.testing.envtest._binaries import (
    BUILD_HINT,
    BUILD_SCRIPT,
    KUBERNETES_VERSION,
    Binaries,
    default_assets_dir,
)
from kctl_runtime.testing.envtest._errors import EnvtestUnavailable
from kctl_runtime.testing.envtest._plane import (
    ADMIN_USER,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    SERVICE_CLUSTER_IP_RANGE,
    ControlPlane,
)

__all__ = [
    "ADMIN_USER",
    "BUILD_HINT",
    "BUILD_SCRIPT",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "KUBERNETES_VERSION",
    "SERVICE_CLUSTER_IP_RANGE",
    "Binaries",
    "ControlPlane",
    "EnvtestUnavailable",
    "default_assets_dir",
]
