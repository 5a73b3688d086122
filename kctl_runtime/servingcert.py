"""Serving certificates for the HTTPS endpoints a process serves (webhooks, secure ``/metrics``).

Contract
--------
* :class:`CertWatcher` serves the key pair in a directory, in the layout a ``kubernetes.io/tls``
  Secret mounts and cert-manager writes: ``tls.crt`` (the certificate, then any intermediates) and
  ``tls.key``. The context accepts TLS 1.2 or later and asks no client certificate.
  :meth:`CertWatcher.run` re-reads both files every ``interval`` seconds (on the injected clock)
  and, when their bytes changed, loads them into the *same* :class:`ssl.SSLContext`: new TLS
  handshakes get the new certificate, open connections keep theirs, nothing restarts. Kubelet's
  atomic symlink swap of a Secret volume and a plain overwrite are both seen. A pair that does not
  load (a half-written rotation, a key that does not match) is logged once per change and the
  previous pair stays served until a good pair appears.
* At construction, problems -- a missing directory or file, a pair that does not load -- raise
  :class:`ValueError` naming the files, so a misconfigured process fails at start-up with one line
  rather than at the first handshake. :func:`server_ssl_context` is the same check for a caller
  that does not poll for rotation.
* :class:`CertificateAuthority` makes a fresh CA and issues serving or client certificates from it;
  :func:`self_signed` writes a development CA and a serving pair for the given DNS names and IPs
  into a directory (``ca.crt``, ``tls.crt``, ``tls.key``; key first, each file replaced atomically so
  a watcher never reads a torn file) and returns the CA's PEM -- the ``caBundle`` a webhook
  configuration or an API client needs. Both need the ``cryptography`` package (``pip install
  'kctl-runtime[webhook]'``); without it they raise :class:`RuntimeError` saying so. Certificates
  last one year; keys are ECDSA P-256 (generated in microseconds, accepted by every Kubernetes
  component).

Not provided: the CertificateSigningRequest flow (a cluster signer issuing the serving certificate).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from kctl_runtime.clock import Clock, SystemClock

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "CertWatcher",
    "CertificateAuthority",
    "IssuedPair",
    "self_signed",
    "server_ssl_context",
]

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

_log = structlog.get_logger("kctl_runtime.servingcert")


class CertWatcher:
    """A TLS server context for a certificate directory, reloaded on rotation (module doc).

    ``what`` names the endpoint in errors and log lines (``webhook``, ``metrics``).
    """

    def __init__(
        self,
        cert_dir: str | os.PathLike[str],
        *,
        cert_name: str = CERT_FILE,
        key_name: str = KEY_FILE,
        interval: float = 10.0,
        clock: Clock | None = None,
        what: str = "serving",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.what = what
        self.cert_path = Path(cert_dir) / cert_name
        self.key_path = Path(cert_dir) / key_name
        missing = [str(p) for p in (self.cert_path, self.key_path) if not p.is_file()]
        if missing:
            raise ValueError(
                f"{what} certificate: {' and '.join(missing)} not found (need {cert_name}, {key_name})"
            )
        self.interval = interval
        self.clock: Clock = clock or SystemClock()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._loaded: tuple[bytes, bytes] | None = None
        self._rejected: tuple[bytes, bytes] | None = None
        #: how many times a new pair was loaded (the first load included)
        self.loads = 0
        try:
            pair = (self.cert_path.read_bytes(), self.key_path.read_bytes())
            self.context.load_cert_chain(self.cert_path, self.key_path)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"{what} certificate: cannot load {self.cert_path} with {self.key_path}: {exc}"
            ) from None
        self._loaded = pair
        self.loads = 1

    def reload(self) -> bool:
        """Load the files if their bytes changed; True if the served pair is current."""
        try:
            pair = (self.cert_path.read_bytes(), self.key_path.read_bytes())
        except OSError as exc:
            _log.warning(
                "cannot read the serving certificate; still serving the previous one",
                what=self.what,
                error=str(exc),
            )
            return False
        if pair == self._loaded:
            return True
        try:
            self.context.load_cert_chain(self.cert_path, self.key_path)
        except (ssl.SSLError, OSError) as exc:
            if pair != self._rejected:
                self._rejected = pair
                _log.warning(
                    "the serving certificate and key do not load; still serving the previous pair",
                    what=self.what,
                    cert=str(self.cert_path),
                    error=str(exc),
                )
            return False
        # the files may have changed between reading and loading: the next poll catches that
        self._loaded = pair
        self.loads += 1
        if self.loads > 1:
            _log.info("serving certificate reloaded", what=self.what, cert=str(self.cert_path))
        return True

    async def run(self) -> None:
        """Poll for rotation until cancelled."""
        while True:
            await self.clock.sleep(self.interval)
            self.reload()


def server_ssl_context(cert_dir: str | Path, *, what: str = "metrics") -> ssl.SSLContext:
    """A server-side TLS context from ``cert_dir``/tls.crt and tls.key, read once (module doc)."""
    return CertWatcher(cert_dir, what=what).context


@dataclass(frozen=True)
class IssuedPair:
    """A PEM certificate and its PEM (PKCS#8) private key."""

    cert_pem: bytes
    key_pem: bytes


def _crypto(extra: str) -> Any:
    """The ``cryptography`` modules this module uses, or a RuntimeError naming the extra to install."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            f"certificates need the `cryptography` package ({exc}): pip install 'kctl-runtime[{extra}]'"
        ) from exc
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _key_pem(key: EllipticCurvePrivateKey) -> bytes:
    _, _, serialization, _, _, _ = _crypto("webhook")
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem


class CertificateAuthority:
    """A fresh, in-memory CA that issues serving and client certificates (module doc)."""

    def __init__(self, common_name: str, *, path_length: int | None = None, extra: str = "webhook") -> None:
        x509, hashes, serialization, ec, _, name_oid = _crypto(extra)
        now = datetime.datetime.now(datetime.UTC)
        self._start, self._end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, common_name)])
        self._extra = extra
        cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._start)
            .not_valid_after(self._end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem: bytes = _key_pem(self._key)

    def issue(
        self,
        common_name: str,
        *,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        organizations: Sequence[str] = (),
        client: bool = False,
    ) -> IssuedPair:
        """A new key and a certificate for it: for a server (SANs) or, with ``client``, a client."""
        x509, hashes, serialization, ec, eku_oid, name_oid = _crypto(self._extra)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(name_oid.ORGANIZATION_NAME, org) for org in organizations]
        subject.append(x509.NameAttribute(name_oid.COMMON_NAME, common_name))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._start)
            .not_valid_after(self._end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        sans: list[Any] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = eku_oid.CLIENT_AUTH if client else eku_oid.SERVER_AUTH
        cert = (
            builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return IssuedPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def self_signed(
    cert_dir: str | os.PathLike[str],
    *,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    cert_name: str = CERT_FILE,
    key_name: str = KEY_FILE,
) -> bytes:
    """Write a development CA and a serving pair into ``cert_dir``; returns the CA PEM (module doc)."""
    if not dns_names and not ip_addresses:
        raise ValueError("give at least one DNS name or IP address for the serving certificate")
    folder = Path(cert_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("kctl-runtime-webhook-ca", path_length=0)
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    pair = ca.issue(common_name, dns_names=dns_names, ip_addresses=ip_addresses)
    write_atomic(folder / key_name, pair.key_pem, 0o600)
    write_atomic(folder / cert_name, pair.cert_pem, 0o644)
    write_atomic(folder / "ca.crt", ca.cert_pem, 0o644)
    return ca.cert_pem


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) in one rename: readers never see a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
