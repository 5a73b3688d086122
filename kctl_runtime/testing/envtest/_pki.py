"""Key material for one control plane: a CA, serving and admin client certs, a service-account key.

Made fresh for every start by :class:`kctl_runtime.servingcert.CertificateAuthority` (the
``cryptography`` package, in the ``test`` extra); keys are ECDSA P-256 because they are generated in
microseconds and every component accepts them (kube-apiserver signs service-account tokens with
ES256). Nothing here is meant to protect anything: the plane listens on 127.0.0.1 only and lives
for one test session.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from kctl_runtime.servingcert import CertificateAuthority, write_atomic
from kctl_runtime.testing.envtest._errors import EnvtestUnavailable

_SERVING_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
#: 127.0.0.1 for clients here; 10.0.0.1 is the ``kubernetes`` Service IP in 10.0.0.0/16.
_SERVING_IPS = ("127.0.0.1", "10.0.0.1")


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files written by :func:`write_pki`."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    service_account_pub: Path
    admin_cert: Path
    admin_key: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def write_pki(folder: Path, *, admin_user: str) -> Pki:
    """Write a fresh CA, serving cert/key, service-account key pair and a client cert into ``folder``.

    The client cert is ``CN=<admin_user>, O=system:masters``: it authenticates every request made
    over the connection, whatever headers a client sends (raw ``call_api`` calls included).
    """
    if importlib.util.find_spec("cryptography") is None:
        raise EnvtestUnavailable(
            "the `cryptography` package is needed to make the control plane's certificates: "
            "pip install 'kctl-runtime[test]'"
        )
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("kctl-envtest-ca", extra="test")
    serving = ca.issue("kube-apiserver", dns_names=_SERVING_DNS, ip_addresses=_SERVING_IPS)
    admin = ca.issue(admin_user, organizations=("system:masters",), client=True)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    pki = Pki(
        ca_cert=folder / "ca.crt",
        ca_key=folder / "ca.key",
        serving_cert=folder / "apiserver.crt",
        serving_key=folder / "apiserver.key",
        service_account_key=folder / "sa.key",
        service_account_pub=folder / "sa.pub",
        admin_cert=folder / "admin.crt",
        admin_key=folder / "admin.key",
    )
    pki.ca_cert.write_bytes(ca.cert_pem)
    write_atomic(pki.ca_key, ca.key_pem, 0o600)
    pki.serving_cert.write_bytes(serving.cert_pem)
    write_atomic(pki.serving_key, serving.key_pem, 0o600)
    write_atomic(
        pki.service_account_key,
        sa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        0o600,
    )
    pki.admin_cert.write_bytes(admin.cert_pem)
    write_atomic(pki.admin_key, admin.key_pem, 0o600)
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
