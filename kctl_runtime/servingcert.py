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

* :func:`request_certificate` gets the serving certificate from the cluster's own signer through a
  ``certificates.k8s.io/v1`` CertificateSigningRequest: a fresh ECDSA P-256 key (it never leaves the
  process until written to ``cert_dir``), a PKCS#10 request for the given DNS names and IPs with the
  usages ``digital signature`` and ``server auth``, created under ``generateName: NAME-`` with the label
  ``app.kubernetes.io/managed-by: kctl-runtime``. It only ever reads, approves and deletes the one
  object its create returned (by name, deletion guarded by its uid): never another CSR.

  - ``signer_name`` defaults to ``kubernetes.io/kubelet-serving``, the only built-in signer that
    issues *serving* certificates; kube-controller-manager signs it with its
    ``--cluster-signing-cert-file`` CA (usually the cluster CA) and requires the subject
    ``O=system:nodes, CN=system:node:NAME`` (written here for that signer) and DNS/IP SANs only.
    ``kubernetes.io/kube-apiserver-client*`` issue client certificates only (a serving request is
    marked ``Failed``); any other name is signed only if the cluster runs a signer for it.
  - ``approve=True`` approves the request itself through the ``approval`` subresource (RBAC: ``update``
    on ``certificatesigningrequests/approval`` and ``approve`` on ``signers`` named ``signer_name``);
    otherwise someone else must (``kubectl certificate approve``).
  - It waits (polling every ``poll_interval`` seconds of ``clock``) for ``status.certificate``. A
    ``Denied`` or ``Failed`` condition raises :class:`CertificateRequestFailed` naming the condition,
    its reason and message; after ``timeout`` seconds of ``clock`` it raises :class:`TimeoutError`
    saying whether the request still waits for approval (and who may approve it) or was approved
    but no signer answered.
  - The issued certificate must be for the generated key. ``tls.key`` then ``tls.crt`` are replaced
    atomically in ``cert_dir`` (a :class:`CertWatcher` on it serves the new pair at its next poll;
    between the two writes it keeps the previous pair). The CSR is deleted afterwards, also after a
    denial, a failure, a timeout or a cancellation.
  - The returned :class:`SignedCertificate` carries the issuing CA when it can be known -- ``ca_pem``,
    the ``caBundle`` for webhook configurations, also written to ``cert_dir``/ca.crt -- taken from the
    first of these that verifies the issued certificate's signature: ``ca_bundle`` if given; the CA
    the API client trusts (the kubeconfig's, or in a pod the service account's ``ca.crt``); the
    ``kube-root-ca.crt`` ConfigMap of ``root_ca_namespace`` if given. Otherwise ``ca_pem`` is ``None``
    (a signer with its own CA: pass ``ca_bundle``). A signer's answer carries only the leaf.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from kctl_runtime.clock import Clock, SystemClock, move_on_after

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "KUBELET_SERVING",
    "CertWatcher",
    "CertificateAuthority",
    "CertificateRequestFailed",
    "IssuedPair",
    "SignedCertificate",
    "request_certificate",
    "self_signed",
    "server_ssl_context",
]

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"
#: The built-in signer that issues serving certificates (kube-controller-manager runs it).
KUBELET_SERVING = "kubernetes.io/kubelet-serving"

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

    def sign_request(
        self,
        request: Any,
        *,
        usages: Sequence[str],
        not_before: datetime.datetime,
        not_after: datetime.datetime,
    ) -> bytes:
        """A PEM certificate for a parsed PKCS#10 ``request`` (subject and DNS/IP SANs copied), as a
        Kubernetes signer issues it: ``usages`` are ``certificates.k8s.io`` usage names; the validity is
        cut to the CA's own."""
        x509, hashes, serialization, _, eku_oid, _ = _crypto(self._extra)
        flags = dict.fromkeys(
            (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
            ),
            False,
        )
        names = {
            "digital signature": "digital_signature",
            "content commitment": "content_commitment",
            "key encipherment": "key_encipherment",
            "data encipherment": "data_encipherment",
            "key agreement": "key_agreement",
            "cert sign": "key_cert_sign",
            "crl sign": "crl_sign",
        }
        extended = {"server auth": eku_oid.SERVER_AUTH, "client auth": eku_oid.CLIENT_AUTH}
        for usage in usages:
            if usage in names:
                flags[names[usage]] = True
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(self._name)
            .public_key(request.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(max(not_before, self._start))
            .not_valid_after(min(not_after, self._end))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(**flags, encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        ekus = [extended[u] for u in usages if u in extended]
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        try:
            sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = None
        if sans is not None:
            kept = [n for n in sans if isinstance(n, x509.DNSName | x509.IPAddress)]
            if kept:
                builder = builder.add_extension(x509.SubjectAlternativeName(kept), critical=False)
        pem: bytes = builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        return pem


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
    write_atomic(folder / CA_FILE, ca.cert_pem, 0o644)
    return ca.cert_pem


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) in one rename: readers never see a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


# ---- the CertificateSigningRequest flow ----

#: The label on every CertificateSigningRequest :func:`request_certificate` creates.
MANAGED_BY = ("app.kubernetes.io/managed-by", "kctl-runtime")
_USAGES = ("digital signature", "server auth")


class CertificateRequestFailed(RuntimeError):
    """The CertificateSigningRequest was ``Denied`` or ``Failed``: ``condition``, ``reason``, ``message``."""

    def __init__(self, csr_name: str, signer_name: str, condition: str, reason: str, message: str) -> None:
        self.csr_name = csr_name
        self.signer_name = signer_name
        self.condition = condition
        self.reason = reason
        self.message = message
        verb = "denied" if condition == "Denied" else "failed"
        super().__init__(
            f"CertificateSigningRequest {csr_name} (signer {signer_name}) was {verb}: "
            f"{reason or 'no reason given'}: {message or 'no message'}"
        )


@dataclass(frozen=True)
class SignedCertificate:
    """What :func:`request_certificate` got: the leaf, its issuer when known, and the CSR it used."""

    cert_pem: bytes
    #: the issuing CA's PEM (the ``caBundle``), ``None`` when no candidate verified (module doc)
    ca_pem: bytes | None
    not_after: datetime.datetime
    csr_name: str
    signer_name: str


def _subject(x509: Any, name_oid: Any, name: str, signer_name: str) -> Any:
    if signer_name == KUBELET_SERVING:
        return x509.Name(
            [
                x509.NameAttribute(name_oid.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(name_oid.COMMON_NAME, f"system:node:{name}"),
            ]
        )
    return x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, name)])


def _issuer_of(cert: Any, bundles: Sequence[bytes]) -> bytes | None:
    """The first PEM bundle holding a certificate whose key signed ``cert``."""
    x509 = _crypto("webhook")[0]
    for bundle in bundles:
        try:
            cas = x509.load_pem_x509_certificates(bundle)
        except ValueError:
            continue
        for ca in cas:
            try:
                cert.verify_directly_issued_by(ca)
            except Exception:  # InvalidSignature, or a CA key type that cannot verify this signature
                continue
            return bundle
    return None


async def _candidate_cas(
    api_client: Any, ca_bundle: bytes | None, root_ca_namespace: str | None
) -> list[bytes]:
    from kctl_runtime._rest import request_json
    from kctl_runtime.errors import ApiError

    if ca_bundle is not None:
        return [ca_bundle]
    found: list[bytes] = []
    ca_file = getattr(api_client.configuration, "ssl_ca_cert", None)
    trusted = getattr(api_client.configuration, "ca_pem", None) or (_read_file(ca_file) if ca_file else None)
    if trusted:
        found.append(trusted)
    if root_ca_namespace:
        from kctl_runtime.resource import CONFIGMAPS

        try:
            cm = await request_json(
                api_client, "GET", CONFIGMAPS.path(namespace=root_ca_namespace, name="kube-root-ca.crt")
            )
        except ApiError as exc:
            _log.warning("cannot read kube-root-ca.crt", namespace=root_ca_namespace, error=str(exc))
        else:
            pem = ((cm or {}).get("data") or {}).get("ca.crt")
            if pem:
                found.append(str(pem).encode())
    return found


def _read_file(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _write_issued(
    folder: Path, key: tuple[str, bytes], cert: tuple[str, bytes], ca_pem: bytes | None
) -> None:
    """Key first, then the certificate (then the CA), each replaced atomically (module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / key[0], key[1], 0o600)
    write_atomic(folder / cert[0], cert[1], 0o644)
    if ca_pem is not None:
        write_atomic(folder / CA_FILE, ca_pem, 0o644)


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind and cond.get("status", "True") == "True":
            return dict(cond)
    return None


async def request_certificate(
    api_client: Any,
    cert_dir: str | os.PathLike[str],
    *,
    name: str,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    signer_name: str = KUBELET_SERVING,
    approve: bool = False,
    expiration_seconds: int | None = None,
    ca_bundle: bytes | None = None,
    root_ca_namespace: str | None = None,
    timeout: float = 60.0,
    poll_interval: float = 0.5,
    clock: Clock | None = None,
    cert_name: str = CERT_FILE,
    key_name: str = KEY_FILE,
) -> SignedCertificate:
    """Get a serving certificate from the cluster's signer via a CertificateSigningRequest (module doc).

    ``name`` prefixes the CSR's name and, for ``kubernetes.io/kubelet-serving``, makes the subject
    ``CN=system:node:NAME``. ``expiration_seconds`` (at least 600) asks for a shorter lifetime than
    the signer's default; the signer may cap it.
    """
    from kctl_runtime._rest import request_json
    from kctl_runtime.errors import Conflict, NotFound
    from kctl_runtime.resource import CERTIFICATESIGNINGREQUESTS as CSRS

    if not name:
        raise ValueError("name is required (it prefixes the CertificateSigningRequest's name)")
    if not dns_names and not ip_addresses:
        raise ValueError("give at least one DNS name or IP address for the serving certificate")
    if expiration_seconds is not None and expiration_seconds < 600:
        raise ValueError("expiration_seconds must be at least 600 (the API's minimum)")
    if timeout <= 0 or poll_interval <= 0:
        raise ValueError("timeout and poll_interval must be positive")
    clock = clock or SystemClock()
    x509, hashes, serialization, ec, _, name_oid = _crypto("webhook")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[Any] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(x509, name_oid, name, signer_name))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    spec: dict[str, Any] = {
        "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
        "signerName": signer_name,
        "usages": list(_USAGES),
    }
    if expiration_seconds is not None:
        spec["expirationSeconds"] = int(expiration_seconds)
    body = {
        "apiVersion": CSRS.api_version,
        "kind": CSRS.kind,
        "metadata": {"generateName": f"{name}-", "labels": {MANAGED_BY[0]: MANAGED_BY[1]}},
        "spec": spec,
    }
    created = await request_json(api_client, "POST", CSRS.path(), body=body)
    csr_name: str = created["metadata"]["name"]
    uid: str = created["metadata"]["uid"]
    log = _log.bind(csr=csr_name, signer=signer_name)
    try:
        if approve:
            current = created
            for attempt in range(5):
                conditions = list((current.get("status") or {}).get("conditions") or ())
                conditions.append(
                    {
                        "type": "Approved",
                        "status": "True",
                        "reason": "KctlRuntimeApprove",
                        "message": f"approved by its requester, kctl-runtime request_certificate ({name})",
                    }
                )
                current = {**current, "status": {**(current.get("status") or {}), "conditions": conditions}}
                try:
                    await request_json(
                        api_client, "PUT", CSRS.path(name=csr_name, subresource="approval"), body=current
                    )
                    break
                except Conflict:
                    if attempt == 4:
                        raise
                    current = await request_json(api_client, "GET", CSRS.path(name=csr_name))
            log.info("certificate signing request approved by its requester")
        last: dict[str, Any] = created
        issued = b""
        async with move_on_after(clock, timeout) as waited:
            while True:
                last = await request_json(api_client, "GET", CSRS.path(name=csr_name))
                for kind in ("Denied", "Failed"):
                    cond = _condition(last, kind)
                    if cond is not None:
                        raise CertificateRequestFailed(
                            csr_name,
                            signer_name,
                            kind,
                            str(cond.get("reason") or ""),
                            str(cond.get("message") or ""),
                        )
                certificate = (last.get("status") or {}).get("certificate")
                if certificate:
                    issued = base64.b64decode(certificate)
                    break
                await clock.sleep(poll_interval)
        if waited.expired:
            if _condition(last, "Approved") is None:
                raise TimeoutError(
                    f"CertificateSigningRequest {csr_name} is still pending after {timeout:g}s: nobody "
                    f"approved it. Someone allowed to `approve` signers {signer_name!r} must approve it "
                    f"(kubectl certificate approve {csr_name}), or request it with approve=True and that RBAC"
                )
            raise TimeoutError(
                f"CertificateSigningRequest {csr_name} was approved but not signed within {timeout:g}s: "
                f"no signer for {signer_name!r} answered (kube-controller-manager signs kubernetes.io/* "
                "signers only with --cluster-signing-cert-file/--cluster-signing-key-file; another signer "
                "name needs its own signing controller)"
            )
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await request_json(
                    api_client,
                    "DELETE",
                    CSRS.path(name=csr_name),
                    body={"preconditions": {"uid": uid}},
                    timeout=10.0,
                )
            except (NotFound, Conflict):
                pass
            except Exception as exc:  # cleanup must not hide the outcome
                log.warning("could not delete the certificate signing request", error=str(exc))
    certs = x509.load_pem_x509_certificates(issued)
    leaf = certs[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.PEM, public) != key.public_key().public_bytes(
        serialization.Encoding.PEM, public
    ):
        raise CertificateRequestFailed(
            csr_name, signer_name, "Issued", "WrongKey", "the issued certificate is not for the requested key"
        )
    ca_pem = _issuer_of(leaf, await _candidate_cas(api_client, ca_bundle, root_ca_namespace))
    if ca_pem is None:
        log.warning("the issuing CA is not known: pass ca_bundle to get a caBundle for this certificate")
    _write_issued(Path(cert_dir), (key_name, _key_pem(key)), (cert_name, issued), ca_pem)
    log.info("serving certificate issued", not_after=leaf.not_valid_after_utc.isoformat())
    return SignedCertificate(issued, ca_pem, leaf.not_valid_after_utc, csr_name, signer_name)
