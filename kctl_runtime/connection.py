"""A connection to one API server: TLS, credentials and a connection pool, without a generated client.

Contract
--------
:class:`Connection` is what the runtime needs to talk to kube-apiserver and nothing more: the
server URL, an aiohttp connection pool with the TLS settings of the kubeconfig or the pod (CA,
client certificate, ``tls-server-name``, ``insecure-skip-tls-verify``), an optional proxy, and a
credential source that puts an ``Authorization`` header on each request. It is built by
:func:`kctl_runtime.config.connect`; building it imports nothing from kubernetes-asyncio, whose
generated client (700 model classes) costs a controller about 35 MB and half a second at start-up.

* It answers the part of kubernetes-asyncio's ``ApiClient`` interface the runtime uses
  (``configuration.host``, ``default_headers``, ``update_params_for_auth``, ``rest_client``,
  ``close``), so every runtime piece that takes an "api client" (:class:`kctl_runtime.client.Client`,
  the manager, informers, leader election, events) takes a ``Connection`` too. It is not an
  ``ApiClient``: kubernetes-asyncio's generated API classes (``CoreV1Api(...)``) need a real one
  (:func:`kctl_runtime.config.load_config`).
* Credentials, as client-go reads them:
  - a static bearer token, or HTTP basic ``username``/``password``;
  - a token file (``tokenFile``, and the in-cluster service-account token), re-read when
    :data:`TOKEN_FILE_RELOAD` seconds have passed since the last read, so a rotated projected
    token is picked up without a restart;
  - an exec plugin (``client.authentication.k8s.io/v1`` and ``v1beta1``): run without a terminal,
    with ``KUBERNETES_EXEC_INFO`` set; its token (or client certificate) is cached until its
    ``expirationTimestamp`` less :data:`EXEC_REFRESH_MARGIN` seconds, then the plugin runs again.
    A client certificate from a plugin is loaded into the TLS context, so new connections present
    the new one. One refresh runs at a time.
* Time comes from an injectable :class:`kctl_runtime.clock.Clock` (token-file reloads, exec expiry).
* Failures of a credential source at request time (a plugin that exits non-zero, prints no valid
  ExecCredential or runs past :data:`EXEC_TIMEOUT`; an unreadable token file) raise
  :class:`CredentialError` with one line naming the source; nothing is retried here (the client
  and the watcher retry it as a transport failure).

Not guaranteed: kubeconfig ``auth-provider`` entries (the legacy ``oidc``/``gcp``/``azure``
providers) and impersonation (``as``) are not implemented here;
:func:`kctl_runtime.config.connect` hands ``auth-provider`` users to kubernetes-asyncio's loader.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from kctl_runtime.clock import Clock, SystemClock

__all__ = [
    "EXEC_REFRESH_MARGIN",
    "EXEC_TIMEOUT",
    "TOKEN_FILE_RELOAD",
    "BasicAuth",
    "Connection",
    "CredentialError",
    "Credentials",
    "ExecPlugin",
    "NoCredentials",
    "StaticToken",
    "TokenFile",
    "load_client_certificate",
]

#: Seconds between re-reads of a token file (client-go's cached file token source: one minute).
TOKEN_FILE_RELOAD = 60.0
#: An exec plugin's credential is refreshed this many seconds before its ``expirationTimestamp``.
EXEC_REFRESH_MARGIN = 10.0
#: Seconds an exec plugin may run before it counts as failed.
EXEC_TIMEOUT = 120.0

_USER_AGENT = "kctl-runtime/0.1.0 (python)"


class CredentialError(aiohttp.ClientError):
    """A credential source could not produce a credential; ``str()`` is one line.

    A failure below HTTP (the request never left): an ``aiohttp.ClientError``, so it is one of
    :data:`kctl_runtime.errors.TRANSPORT_ERRORS` -- the client retries it with backoff and a watch
    backs off and reopens, as client-go does when its exec authenticator fails. A reconcile that
    meets it is logged as one line at error level, without a traceback
    (:func:`kctl_runtime.errors.expected_failure_level`)."""

    failure_level = "error"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class Credentials(Protocol):
    """A source of the ``Authorization`` header (``None``: send none)."""

    async def authorization(self) -> str | None: ...


class NoCredentials:
    """No ``Authorization`` header (client certificates or an anonymous server)."""

    async def authorization(self) -> str | None:
        return None


@dataclass
class StaticToken:
    """A bearer token from the kubeconfig."""

    token: str

    async def authorization(self) -> str | None:
        return f"Bearer {self.token}"


@dataclass
class BasicAuth:
    """HTTP basic credentials from the kubeconfig (``username``/``password``)."""

    username: str
    password: str

    async def authorization(self) -> str | None:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


@dataclass
class TokenFile:
    """A bearer token read from a file, re-read every :data:`TOKEN_FILE_RELOAD` seconds."""

    path: Path
    clock: Clock = field(default_factory=SystemClock)
    _token: str | None = None
    _read_at: float = 0.0

    def read(self) -> str:
        """Read the file now (raises :class:`CredentialError`)."""
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise CredentialError(f"token file {self.path}: cannot read: {exc.strerror or exc}") from None
        if not token:
            raise CredentialError(f"token file {self.path} is empty")
        self._token, self._read_at = token, self.clock.monotonic()
        return token

    async def authorization(self) -> str | None:
        token = self._token
        if token is None or self.clock.monotonic() - self._read_at >= TOKEN_FILE_RELOAD:
            try:
                token = self.read()
            except CredentialError:
                if token is None:
                    raise
                # A transient read failure during rotation: keep the token we have.
        return f"Bearer {token}"


def load_client_certificate(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a PEM certificate chain and key held in memory into ``context`` (raises ``ssl.SSLError``).

    The ``ssl`` module reads them only from files: they go through a private temporary directory
    that is removed before this returns.
    """
    with tempfile.TemporaryDirectory(prefix="kctl-cert-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        for path, data in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        context.load_cert_chain(str(cert), str(key))


def _parse_timestamp(value: str) -> _dt.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    when = _dt.datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=_dt.UTC)


@dataclass
class ExecPlugin:
    """A kubeconfig ``exec`` credential plugin (client-go's ``ExecCredential`` protocol).

    ``command`` is run with ``args``, the process environment plus ``env``, stdin closed and
    ``KUBERNETES_EXEC_INFO`` describing a non-interactive request (with ``cluster`` when
    ``cluster_info`` is given). ``ssl_context`` receives a client certificate the plugin returns.
    """

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    api_version: str = "client.authentication.k8s.io/v1"
    install_hint: str = ""
    cluster_info: Mapping[str, Any] | None = None
    ssl_context: ssl.SSLContext | None = None
    clock: Clock = field(default_factory=SystemClock)
    _token: str | None = None
    _expires: _dt.datetime | None = None
    _fetched: bool = False
    _lock: asyncio.Lock | None = None

    def _fresh(self) -> bool:
        if not self._fetched:
            return False
        if self._expires is None:
            return True
        return self.clock.now() < self._expires - _dt.timedelta(seconds=EXEC_REFRESH_MARGIN)

    async def refresh(self) -> None:
        """Run the plugin now and keep what it returns (raises :class:`CredentialError`)."""
        spec: dict[str, Any] = {"interactive": False}
        if self.cluster_info is not None:
            spec["cluster"] = dict(self.cluster_info)
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        environ = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": orjson.dumps(info).decode()}
        name = f"exec plugin {self.command!r}"
        try:
            process = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                env=environ,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            hint = f" ({self.install_hint.strip()})" if self.install_hint.strip() else ""
            raise CredentialError(f"{name}: cannot run: {exc.strerror or exc}{hint}") from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise CredentialError(f"{name}: no answer within {EXEC_TIMEOUT:.0f} s") from None
        if process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
            raise CredentialError(f"{name} exited with status {process.returncode}{last}")
        self._accept(name, stdout)

    def _accept(self, name: str, stdout: bytes) -> None:
        try:
            credential = orjson.loads(stdout)
        except orjson.JSONDecodeError:
            raise CredentialError(f"{name}: output is not an ExecCredential (not JSON)") from None
        if not isinstance(credential, dict) or credential.get("kind") != "ExecCredential":
            raise CredentialError(f"{name}: output is not an ExecCredential")
        if credential.get("apiVersion") != self.api_version:
            answered = credential.get("apiVersion")
            raise CredentialError(f"{name}: answered apiVersion {answered!r}, asked for {self.api_version!r}")
        status = credential.get("status")
        if not isinstance(status, dict):
            raise CredentialError(f"{name}: the ExecCredential has no status")
        token = status.get("token") or None
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert) != bool(key):
            raise CredentialError(f"{name}: clientCertificateData and clientKeyData must come together")
        if not token and not cert:
            raise CredentialError(f"{name}: the ExecCredential has neither a token nor a client certificate")
        expires: _dt.datetime | None = None
        if status.get("expirationTimestamp"):
            try:
                expires = _parse_timestamp(str(status["expirationTimestamp"]))
            except ValueError:
                raise CredentialError(
                    f"{name}: expirationTimestamp {status['expirationTimestamp']!r} is not RFC 3339"
                ) from None
        if cert and key:
            if self.ssl_context is None:
                raise CredentialError(f"{name}: returned a client certificate for a plain-HTTP server")
            try:
                load_client_certificate(self.ssl_context, str(cert).encode(), str(key).encode())
            except (ssl.SSLError, OSError) as exc:
                raise CredentialError(f"{name}: its client certificate does not load: {exc}") from None
        self._token, self._expires, self._fetched = token, expires, True

    async def authorization(self) -> str | None:
        if not self._fresh():
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if not self._fresh():
                    await self.refresh()
        return f"Bearer {self._token}" if self._token else None


@dataclass(eq=False)
class _Target:
    """The server a :class:`Connection` talks to (``ApiClient.configuration``'s shape)."""

    host: str
    ssl_ca_cert: str | None = None
    verify_ssl: bool = True
    #: the PEM of the certificate authority the server is verified with, when one was configured
    ca_pem: bytes | None = None


@dataclass(eq=False)
class _Pool:
    """The connection pool (``ApiClient.rest_client``'s shape)."""

    pool_manager: aiohttp.ClientSession
    proxy: str | None = None
    proxy_headers: Mapping[str, str] | None = None
    server_hostname: str | None = None


class Connection:
    """One API server: URL, TLS, connection pool and credentials (module doc).

    ``host`` is the server URL (``https://host:port``, no trailing slash); ``ssl_context`` is
    ``None`` for plain HTTP; ``ca_file`` / ``ca_pem`` record where its certificate authority came
    from (``configuration.ssl_ca_cert`` / ``configuration.ca_pem``). ``pool_size`` bounds the
    connections kept open to the server (as kubernetes-asyncio's default, 100). The caller owns
    it: ``await connection.close()`` (or ``async with``).
    """

    def __init__(
        self,
        host: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        credentials: Credentials | None = None,
        server_hostname: str | None = None,
        proxy: str | None = None,
        ca_file: str | None = None,
        ca_pem: bytes | None = None,
        pool_size: int = 100,
        user_agent: str = _USER_AGENT,
    ) -> None:
        tls: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        connector = aiohttp.TCPConnector(limit=pool_size, ssl=tls)
        session = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)
        verify = ssl_context is None or ssl_context.verify_mode != ssl.CERT_NONE
        self.configuration = _Target(host.rstrip("/"), ssl_ca_cert=ca_file, verify_ssl=verify, ca_pem=ca_pem)
        self.rest_client = _Pool(session, proxy=proxy, server_hostname=server_hostname)
        self.default_headers: dict[str, str] = {"User-Agent": user_agent}
        self.cookie: str | None = None
        self.credentials: Credentials = credentials if credentials is not None else NoCredentials()
        self.ssl_context = ssl_context

    @property
    def host(self) -> str:
        """The server URL."""
        return self.configuration.host

    async def update_params_for_auth(
        self, headers: dict[str, str], params: list[tuple[str, str]], auth_settings: Sequence[str]
    ) -> None:
        """Put the credential's ``Authorization`` header into ``headers`` (``ApiClient``'s hook)."""
        del params, auth_settings
        value = await self.credentials.authorization()
        if value is not None:
            headers["Authorization"] = value

    async def close(self) -> None:
        """Close the connection pool."""
        await self.rest_client.pool_manager.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Connection {self.configuration.host}>"
