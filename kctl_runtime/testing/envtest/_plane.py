"""ControlPlane: etcd + kube-apiserver (+ kube-controller-manager) on loopback, for one session."""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from kctl_runtime.testing.envtest._binaries import Binaries, program_output
from kctl_runtime.testing.envtest._errors import EnvtestUnavailable
from kctl_runtime.testing.envtest._pki import Pki, write_pki
from kctl_runtime.testing.envtest._process import Process, stop_all
from kctl_runtime.testing.portrange import (
    DEFAULT_SERVICE_NODE_PORT_RANGE,
    node_port_range_from_environment,
    parse_port_range,
)

#: Seconds :meth:`ControlPlane.start` waits for readiness (``$KCTL_ENVTEST_START_TIMEOUT``).
DEFAULT_START_TIMEOUT = 60.0
#: Seconds :meth:`ControlPlane.stop` waits after SIGTERM before SIGKILL.
DEFAULT_STOP_TIMEOUT = 10.0
#: A /16 so that tests may create thousands of Services (a /24 fits only 254).
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/16"
#: NodePort range unless ``$KCTL_ENVTEST_NODE_PORT_RANGE`` says otherwise (Kubernetes' default,
#: 2,768 ports; the workload benchmark at N = 3,000 needs more and sets the variable).
SERVICE_NODE_PORT_RANGE = DEFAULT_SERVICE_NODE_PORT_RANGE
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: The user of the kubeconfig: a client certificate in ``system:masters`` (RBAC allows it
#: everything). The plane's own readiness probes use a static token for the same user.
ADMIN_USER = "kctl-envtest-admin"

_STATE_FILE = "state.json"
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


class _PortClash(EnvtestUnavailable):
    pass


@functools.lru_cache(maxsize=8)
def _etcd_facts(etcd: Path) -> tuple[str, bool]:
    """(version, whether it knows ``--unsafe-no-fsync``)."""
    first = program_output(etcd, "--version").strip().splitlines()[:1]
    version = first[0].split()[-1] if first else "unknown"
    return version, "--unsafe-no-fsync" in program_output(etcd, "--help")


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held together while choosing, then released)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


class ControlPlane:
    """A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager.

    Use as a context manager, or ``start()`` / ``stop()``. See the package docstring for the contract.
    """

    def __init__(
        self,
        binaries: Binaries,
        *,
        controller_manager: bool | None = None,
        work_dir: Path | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        service_node_port_range: str = SERVICE_NODE_PORT_RANGE,
    ) -> None:
        """
        Args:
            binaries: the programs to run (:meth:`Binaries.find`).
            controller_manager: run kube-controller-manager: ``None`` (default) when the binary is
                there, ``True`` requires it, ``False`` never.
            work_dir: folder for etcd data, certificates, logs and the kubeconfig. Default: a new
                temporary folder, removed by :meth:`stop`. A given folder is kept; :meth:`stop`
                removes what the plane wrote into it except ``logs/``.
            start_timeout: seconds :meth:`start` waits for readiness before giving up.
            stop_timeout: seconds :meth:`stop` waits after SIGTERM before SIGKILL.
            service_node_port_range: kube-apiserver's ``--service-node-port-range`` (``LOW-HIGH``,
                ``LOW+OFFSET`` or ``PORT``; :class:`ValueError` here rather than a server that
                will not start).
        """
        if start_timeout <= 0 or stop_timeout <= 0:
            raise ValueError("start_timeout and stop_timeout must be positive")
        #: The node-port range given to kube-apiserver (``str()`` gives ``LOW-HIGH``).
        self.service_node_port_range = parse_port_range(service_node_port_range)
        if controller_manager and binaries.kube_controller_manager is None:
            raise EnvtestUnavailable(
                f"kube-controller-manager requested but not found in {binaries.source}: "
                "run `python -m kctl_runtime.testing.envtest build` (needs Go 1.26) or set "
                "KCTL_ENVTEST_CONTROLLER_MANAGER=0"
            )
        self.binaries = binaries
        self.controller_manager = (
            binaries.kube_controller_manager is not None if controller_manager is None else controller_manager
        )
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._given_work_dir = work_dir
        self._work_dir: Path | None = None
        self._processes: list[Process] = []
        self._token = ""
        self._ca_pem = b""
        self._ssl: ssl.SSLContext | None = None  # for self._ca_pem; built once per start
        self._port = 0
        self._apiserver_argv: list[str | Path] = []  # to start it again (restart_apiserver)
        self._running = False
        #: Seconds from :meth:`start` until ready (including the default ServiceAccount with the
        #: controller-manager); 0.0 before.
        self.startup_seconds = 0.0
        #: ``gitVersion`` from the running server's ``/version``; "" before start.
        self.server_version = ""

    @classmethod
    def from_environment(
        cls,
        *,
        work_dir: Path | None = None,
        controller_manager: bool | None = None,
        start_timeout: float | None = None,
    ) -> ControlPlane:
        """A plane configured from the environment; raises :class:`EnvtestUnavailable`.

        ``KUBEBUILDER_ASSETS`` / the build cache for binaries (:meth:`Binaries.find`),
        ``KCTL_ENVTEST_CONTROLLER_MANAGER`` (``0`` off, ``1`` required, unset: when present),
        ``KCTL_ENVTEST_START_TIMEOUT`` (seconds), ``KCTL_ENVTEST_NODE_PORT_RANGE``
        (:func:`~kctl_runtime.testing.portrange.node_port_range_from_environment`; an invalid value
        raises :class:`ValueError`). Arguments given here win over the environment.
        """
        if controller_manager is None:
            flag = os.environ.get("KCTL_ENVTEST_CONTROLLER_MANAGER", "").strip().lower()
            controller_manager = {"0": False, "false": False, "1": True, "true": True}.get(flag)
        if start_timeout is None:
            start_timeout = float(os.environ.get("KCTL_ENVTEST_START_TIMEOUT") or DEFAULT_START_TIMEOUT)
        return cls(
            Binaries.find(),
            controller_manager=controller_manager,
            work_dir=work_dir,
            start_timeout=start_timeout,
            service_node_port_range=str(node_port_range_from_environment()),
        )

    # -- what tests use ---------------------------------------------------------------------------

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            raise RuntimeError("the control plane has not been started")
        return self._work_dir

    @property
    def kubeconfig_path(self) -> Path:
        """A kubeconfig (CA data + admin client cert) for kubectl and kubernetes-asyncio."""
        return self.work_dir / "kubeconfig"

    @property
    def api_url(self) -> str:
        if not self._port:
            raise RuntimeError("the control plane has not been started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def kubectl_path(self) -> Path | None:
        """The kubectl built with the binaries (``$KCTL_KUBECTL`` overrides), if any."""
        return self.binaries.kubectl

    @property
    def running(self) -> bool:
        return self._running

    @property
    def etcd_version(self) -> str:
        return _etcd_facts(self.binaries.etcd)[0]

    def describe(self) -> str:
        """One line: versions, address, start-up time and where the binaries came from."""
        kcm = " + kube-controller-manager" if self.controller_manager else " (no controller-manager)"
        where = f" at {self.api_url}" if self._port else ""
        ready = f", ready in {self.startup_seconds:.2f} s" if self.startup_seconds else ""
        version = self.server_version or "(not started)"
        return (
            f"kube-apiserver {version} + etcd {self.etcd_version}{kcm}{where}{ready} "
            f"(binaries: {self.binaries.source})"
        )

    def __repr__(self) -> str:
        return f"<ControlPlane {self.describe()}>"

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the processes and return once the API is ready; raises :class:`EnvtestUnavailable`.

        Ready means ``/readyz`` answers ``ok`` and, with the controller-manager, the ``default``
        ServiceAccount exists in the ``default`` namespace. On failure everything started is stopped
        (logs are kept in ``<work_dir>/logs``) and the error names the failing process with its log tail.
        """
        if self._running:
            raise RuntimeError("the control plane is already running")
        began = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once(began)
            except _PortClash:
                last_attempt = attempt == _START_ATTEMPTS
                self._teardown(keep_logs=last_attempt or self._given_work_dir is not None)
                if last_attempt:
                    raise
            except BaseException:
                self._teardown(keep_logs=True)
                raise
            else:
                break
        self._running = True
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the processes (SIGTERM, SIGKILL after ``stop_timeout``) and remove the temp files.

        Idempotent. Also stops a plane re-attached with :meth:`attach`.
        """
        atexit.unregister(self.stop)
        self._teardown(keep_logs=self._given_work_dir is not None)
        self._running = False

    def detach(self) -> None:
        """Leave the processes running after this Python process exits (for the command).

        They are found again with :meth:`attach` from the work folder's ``state.json``.
        """
        if self._given_work_dir is None:
            raise RuntimeError("only a plane with an explicit work_dir can be detached")
        atexit.unregister(self.stop)

    @classmethod
    def attach(cls, work_dir: Path, *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> ControlPlane:
        """The plane a detached ``start`` left in ``work_dir``; raises :class:`EnvtestUnavailable`."""
        try:
            state: dict[str, Any] = json.loads((work_dir / _STATE_FILE).read_text())
            ca_pem = (work_dir / "pki" / "ca.crt").read_bytes()
        except (OSError, ValueError) as exc:
            raise EnvtestUnavailable(f"no control plane state in {work_dir}: {exc}") from exc
        bins = state["binaries"]
        binaries = Binaries(
            etcd=Path(bins["etcd"]),
            kube_apiserver=Path(bins["kube_apiserver"]),
            kube_controller_manager=Path(bins["kube_controller_manager"])
            if bins["kube_controller_manager"]
            else None,
            kubectl=Path(bins["kubectl"]) if bins["kubectl"] else None,
            source=bins["source"],
        )
        plane = cls(
            binaries,
            controller_manager=bool(state["controller_manager"]),
            work_dir=work_dir,
            stop_timeout=stop_timeout,
        )
        plane._work_dir = work_dir
        plane._port = int(state["port"])
        plane._token = str(state["token"])
        plane._ca_pem = ca_pem
        plane.startup_seconds = float(state["startup_seconds"])
        plane.server_version = str(state["server_version"])
        plane._processes = [
            Process.attach(p["name"], int(p["pid"]), Path(p["log"]), marker=str(work_dir))
            for p in state["processes"]
        ]
        plane._running = any(p.alive() for p in plane._processes)
        return plane

    def restart_apiserver(self, *, kill: bool = False, down_seconds: float = 0.0) -> float:
        """Stop kube-apiserver and start it again on the same port, certificates and etcd.

        ``kill`` sends SIGKILL instead of SIGTERM (graceful: it closes watches and drains
        requests first); ``down_seconds`` keeps it down that long (connections are refused
        meanwhile). Blocks until ``/readyz`` answers ``ok`` again (``start_timeout``) and returns
        the seconds from the stop signal until then. Its log goes on in ``kube-apiserver.log``.
        Raises :class:`EnvtestUnavailable` if it does not come back, ``RuntimeError`` on a plane
        this process did not start (re-attached planes do not know the command line).
        """
        if not self._running or not self._apiserver_argv:
            raise RuntimeError("restart_apiserver needs a control plane started by this process")
        old = next(p for p in self._processes if p.name == "kube-apiserver")
        began = time.monotonic()
        if kill:
            old.signal(signal.SIGKILL)
        stop_all([old], self.stop_timeout)
        if down_seconds > 0:
            time.sleep(down_seconds)
        new = Process.spawn("kube-apiserver", self._apiserver_argv, old.log_path, append=True)
        self._processes[self._processes.index(old)] = new
        deadline = time.monotonic() + self.start_timeout
        self._wait_for("/readyz", "the restarted kube-apiserver's /readyz", deadline)
        self._write_state()
        return time.monotonic() - began

    @property
    def pids(self) -> dict[str, int]:
        """Process ids by program name (``etcd``, ``kube-apiserver``, ``kube-controller-manager``)."""
        return {p.name: p.pid for p in self._processes}

    def processes_alive(self) -> dict[str, bool]:
        return {p.name: p.alive() for p in self._processes}

    def is_ready(self) -> bool:
        """Whether every process is alive and ``/readyz`` answers ``ok`` now."""
        if not self._processes or not all(p.alive() for p in self._processes):
            return False
        try:
            status, _ = self._get("/readyz")
        except OSError:
            return False
        return status == 200

    # -- internals --------------------------------------------------------------------------------

    def _prepare_work_dir(self) -> Path:
        if self._given_work_dir is None:
            return Path(tempfile.mkdtemp(prefix="kctl-envtest-"))
        work = self._given_work_dir.resolve()
        try:
            previous: ControlPlane | None = ControlPlane.attach(work)
        except EnvtestUnavailable:
            previous = None  # no state file: nothing was started here, or it was stopped
        if previous is not None and previous.running:
            raise EnvtestUnavailable(
                f"a control plane is already running in {work}: stop it first "
                f"(python -m kctl_runtime.testing.envtest stop --dir {work})"
            )
        work.mkdir(parents=True, exist_ok=True)
        self._remove_generated(work)
        return work

    def _start_once(self, began: float) -> None:
        work = self._work_dir = self._prepare_work_dir()
        pki = write_pki(work / "pki", admin_user=ADMIN_USER)
        self._ca_pem = pki.ca_pem
        self._ssl = None
        self._token = secrets.token_hex(24)
        tokens = work / "tokens.csv"
        fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f'{self._token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        etcd_client, etcd_peer, self._port = _free_ports(3)
        self._write_kubeconfig(pki)
        logs = work / "logs"
        self._apiserver_argv = self._apiserver_args(work, pki, tokens, etcd_client)
        try:
            self._processes.append(
                Process.spawn("etcd", self._etcd_args(work, etcd_client, etcd_peer), logs / "etcd.log")
            )
            self._processes.append(
                Process.spawn("kube-apiserver", self._apiserver_argv, logs / "kube-apiserver.log")
            )
            if self.controller_manager:
                # It waits for the API server's /healthz on its own, so start it now.
                self._processes.append(
                    Process.spawn(
                        "kube-controller-manager",
                        self._controller_manager_args(pki),
                        logs / "kube-controller-manager.log",
                    )
                )
        except OSError as exc:
            raise EnvtestUnavailable(f"cannot run a control-plane binary: {exc}") from exc
        deadline = began + self.start_timeout
        self._wait_for("/readyz", "kube-apiserver /readyz to answer ok", deadline)
        if self.controller_manager:
            self._wait_for(
                "/api/v1/namespaces/default/serviceaccounts/default",
                "kube-controller-manager to create the default ServiceAccount",
                deadline,
            )
        _, body = self._get("/version")
        self.server_version = str(json.loads(body).get("gitVersion", "unknown"))
        self.startup_seconds = time.monotonic() - began
        self._write_state()

    def _etcd_args(self, work: Path, client: int, peer: int) -> list[str | Path]:
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        args: list[str | Path] = [
            self.binaries.etcd,
            "--name=envtest",
            f"--data-dir={work / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=envtest={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=warn",
        ]
        if _etcd_facts(self.binaries.etcd)[1]:
            args.append("--unsafe-no-fsync")  # test data: durability is not wanted, speed is
        return args

    def _apiserver_args(self, work: Path, pki: Pki, tokens: Path, etcd_client: int) -> list[str | Path]:
        return [
            self.binaries.kube_apiserver,
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-node-port-range={self.service_node_port_range}",
            "--allow-privileged=true",
            # Endpoints may not hold loopback IPs: keeping the `kubernetes` Service's endpoints at
            # 127.0.0.1 would log a validation error every 10 s. Nothing in-cluster needs them.
            "--endpoint-reconciler-type=none",
            # Pods are only stored (no kubelet): do not make them wait for the namespace's
            # ServiceAccount, which the controller-manager creates a moment after the namespace.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
        ]

    def _controller_manager_args(self, pki: Pki) -> list[str | Path]:
        assert self.binaries.kube_controller_manager is not None
        return [
            self.binaries.kube_controller_manager,
            f"--kubeconfig={self.kubeconfig_path}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=false",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            "--controllers=*",
            # Tests churn objects: let garbage collection and namespace deletion keep up.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--profiling=false",
        ]

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # readiness polls every 50 ms: parse the CA once
            self._ssl = ssl.create_default_context(cadata=self._ca_pem.decode())
        return self._ssl

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=self._ssl_context(), timeout=5)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self._token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _wait_for(self, path: str, what: str, deadline: float) -> None:
        last = "no answer yet"
        while True:
            for proc in self._processes:
                if not proc.alive():
                    message = f"control plane failed to start: {proc.describe_exit()}"
                    if "address already in use" in message:
                        raise _PortClash(message)
                    raise EnvtestUnavailable(message)
            try:
                status, body = self._get(path)
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:300].decode(errors='replace')!r}"
            if time.monotonic() >= deadline:
                tails = "; ".join(f"{p.name} log: {p.log_tail(4)}" for p in self._processes)
                raise EnvtestUnavailable(
                    f"timed out after {self.start_timeout:.0f} s waiting for {what} (last: {last}); "
                    f"{tails} (raise KCTL_ENVTEST_START_TIMEOUT if the machine is slow)"
                )
            time.sleep(0.05)

    def _write_kubeconfig(self, pki: Pki) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority-data": base64.b64encode(self._ca_pem).decode(),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": base64.b64encode(pki.admin_cert.read_bytes()).decode(),
                        "client-key-data": base64.b64encode(pki.admin_key.read_bytes()).decode(),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "envtest",
                    "context": {"cluster": "envtest", "user": ADMIN_USER, "namespace": "default"},
                }
            ],
            "current-context": "envtest",
            "preferences": {},
        }
        fd = os.open(self.kubeconfig_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(config, out, sort_keys=False)

    def _write_state(self) -> None:
        state = {
            "format": 1,
            "port": self._port,
            "api_url": self.api_url,
            "token": self._token,
            "kubeconfig": str(self.kubeconfig_path),
            "server_version": self.server_version,
            "startup_seconds": self.startup_seconds,
            "controller_manager": self.controller_manager,
            "binaries": {
                "etcd": str(self.binaries.etcd),
                "kube_apiserver": str(self.binaries.kube_apiserver),
                "kube_controller_manager": str(self.binaries.kube_controller_manager or ""),
                "kubectl": str(self.binaries.kubectl or ""),
                "source": self.binaries.source,
            },
            "processes": [{"name": p.name, "pid": p.pid, "log": str(p.log_path)} for p in self._processes],
        }
        fd = os.open(self.work_dir / _STATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)

    def _teardown(self, *, keep_logs: bool) -> None:
        # The API server and controller-manager first, so neither logs a lost etcd on the way down.
        etcd = [p for p in self._processes if p.name == "etcd"]
        stop_all([p for p in self._processes if p.name != "etcd"], self.stop_timeout)
        stop_all(etcd, self.stop_timeout)
        self._processes = []
        work, self._work_dir = self._work_dir, None
        if work is not None:
            if keep_logs:
                self._remove_generated(work)
            else:
                shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _remove_generated(work: Path) -> None:
        """Delete what a start writes into ``work``, except ``logs/``."""
        for name in ("etcd-data", "pki"):
            shutil.rmtree(work / name, ignore_errors=True)
        for name in ("kubeconfig", "tokens.csv", _STATE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (work / name).unlink()
