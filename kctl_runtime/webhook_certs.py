"""Serving certificates for the webhook server: files reloaded on rotation, and a development CA.

Contract
--------
* :class:`CertWatcher` serves the key pair in a directory (``tls.crt`` / ``tls.key`` by default:
  what cert-manager and a mounted ``kubernetes.io/tls`` Secret provide). :meth:`CertWatcher.run`
  re-reads both files every ``interval`` seconds (on the injected clock) and, when their bytes
  changed, loads them into the *same* :class:`ssl.SSLContext`: new TLS handshakes get the new
  certificate, open connections keep theirs, nothing restarts. Kubelet's atomic symlink swap of a
  Secret volume and a plain overwrite are both seen. A pair that does not load (a half-written
  rotation, a key that does not match) is logged once per change and the previous pair stays
  served until a good pair appears. Missing files at construction raise :class:`FileNotFoundError`
  naming them.
* :func:`self_signed` writes a fresh development CA and a serving pair for the given DNS names and
  IPs into a directory (``ca.crt``, ``tls.crt``, ``tls.key``) and returns the CA's PEM -- the
  ``caBundle`` to put into webhook configurations (needs the ``cryptography`` package:
  ``pip install 'kctl-runtime[webhook]'``). Certificates last one year; keys are ECDSA P-256.
* :func:`inject_ca_bundle` writes a ``caBundle`` into the webhook configurations and CRDs it is
  told it owns: one JSON patch per object, each webhook entry guarded by a ``test`` of its name so a
  concurrent reorder fails (422) instead of writing the wrong entry. It touches nothing else.

Not provided: the CertificateSigningRequest flow (a cluster signer issuing the serving certificate).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.patch import json_patch, pointer
from kctl_runtime.resource import (
    CUSTOMRESOURCEDEFINITIONS,
    MUTATINGWEBHOOKCONFIGURATIONS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    Resource,
)

__all__ = ["CertWatcher", "inject_ca_bundle", "self_signed"]

_log = structlog.get_logger("kctl_runtime.webhook")


class CertWatcher:
    """A TLS server context for a certificate directory, reloaded on rotation (module doc)."""

    def __init__(
        self,
        cert_dir: str | os.PathLike[str],
        *,
        cert_name: str = "tls.crt",
        key_name: str = "tls.key",
        interval: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.cert_path = Path(cert_dir) / cert_name
        self.key_path = Path(cert_dir) / key_name
        missing = [str(p) for p in (self.cert_path, self.key_path) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"webhook serving certificate files not found: {', '.join(missing)}")
        self.interval = interval
        self.clock: Clock = clock or SystemClock()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._loaded: tuple[bytes, bytes] | None = None
        self._rejected: tuple[bytes, bytes] | None = None
        #: how many times a new pair was loaded (the first load included)
        self.loads = 0
        if not self.reload():
            raise ssl.SSLError(f"cannot load the key pair {self.cert_path} / {self.key_path}")

    def reload(self) -> bool:
        """Load the files if their bytes changed; True if the served pair is current."""
        try:
            pair = (self.cert_path.read_bytes(), self.key_path.read_bytes())
        except OSError as exc:
            _log.warning(
                "cannot read the webhook certificate; still serving the previous one", error=str(exc)
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
                    "the webhook certificate and key do not load; still serving the previous pair",
                    cert=str(self.cert_path),
                    error=str(exc),
                )
            return False
        # the files may have changed between reading and loading: the next poll catches that
        self._loaded = pair
        self.loads += 1
        if self.loads > 1:
            _log.info("webhook serving certificate reloaded", cert=str(self.cert_path))
        return True

    async def run(self) -> None:
        """Poll for rotation until cancelled."""
        while True:
            await self.clock.sleep(self.interval)
            self.reload()


def self_signed(
    cert_dir: str | os.PathLike[str],
    *,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    cert_name: str = "tls.crt",
    key_name: str = "tls.key",
) -> bytes:
    """Write a development CA and a serving pair into ``cert_dir``; returns the CA PEM (module doc)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            f"self-signed webhook certificates need the `cryptography` package ({exc}): "
            "pip install 'kctl-runtime[webhook]'"
        ) from exc
    if not dns_names and not ip_addresses:
        raise ValueError("give at least one DNS name or IP address for the serving certificate")
    folder = Path(cert_dir)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kctl-runtime-webhook-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # key first, then certificate, each replaced atomically: a watcher never reads a torn file
    _write_atomic(folder / key_name, key_pem, 0o600)
    _write_atomic(folder / cert_name, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_atomic(folder / "ca.crt", ca_pem, 0o644)
    return ca_pem


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


async def inject_ca_bundle(
    api_client: Any,
    ca_pem: bytes,
    *,
    validating: Iterable[str] = (),
    mutating: Iterable[str] = (),
    crds: Iterable[str] = (),
) -> None:
    """Write ``caBundle`` into the named configurations' webhooks and CRDs' conversion (module doc)."""
    from kctl_runtime._rest import request_json

    bundle = base64.b64encode(ca_pem).decode()
    configs: list[tuple[Resource, str]] = [(VALIDATINGWEBHOOKCONFIGURATIONS, n) for n in validating]
    configs += [(MUTATINGWEBHOOKCONFIGURATIONS, n) for n in mutating]
    for resource, name in configs:
        obj = await request_json(api_client, "GET", resource.path(name=name))
        ops: list[dict[str, Any]] = []
        for index, hook in enumerate(obj.get("webhooks") or ()):
            ops.append({"op": "test", "path": pointer("webhooks", index, "name"), "value": hook["name"]})
            ops.append(
                {"op": "add", "path": pointer("webhooks", index, "clientConfig", "caBundle"), "value": bundle}
            )
        if ops:
            await json_patch(api_client, resource, None, name, ops)
    for name in crds:
        ops = [
            {
                "op": "add",
                "path": pointer("spec", "conversion", "webhook", "clientConfig", "caBundle"),
                "value": bundle,
            }
        ]
        await json_patch(api_client, CUSTOMRESOURCEDEFINITIONS, None, name, ops)
