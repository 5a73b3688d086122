"""Differential scenarios for CertificateSigningRequests: validation, the approval and status
subresources, table columns. (The signers act asynchronously: ``tests/test_servingcert_csr.py``
checks them on each tier.)

CSRs are cluster-scoped and the real plane is shared by the session: every name carries ``{ns}``
and every scenario deletes what it created.
"""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._dsl import Req, Scenario, check

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _request(common_name: str, organization: str | None = None) -> str:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode()


NOT_A_NODE = _request("webhook")


def _csr(name: str, **spec: object) -> dict[str, object]:
    body: dict[str, object] = {
        "request": NOT_A_NODE,
        "signerName": "example.com/nobody",
        "usages": ["digital signature", "server auth"],
    }
    body.update(spec)
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def _with_status(name: str, **status: object) -> dict[str, object]:
    return {**_csr(name), "status": status}


APPROVED = {"type": "Approved", "status": "True", "reason": "Test", "message": "ok"}
DENIED = {"type": "Denied", "status": "True", "reason": "Test", "message": "no"}
NAME = "csr-{ns}"

SCENARIOS = [
    Scenario(
        "CSR create validation: request, usages, signer name, expiration",
        (
            Req("POST", CSRS, _csr("bad-{ns}", request="aGVsbG8="), expect=422, compare=("message",)),
            Req("POST", CSRS, _csr("bad-{ns}", usages=None, signerName=None), expect=422),
            Req(
                "POST",
                CSRS,
                _csr("bad-{ns}", signerName="kubernetes.io/legacy-unknown"),
                expect=422,
                compare=("message",),
            ),
            Req("POST", CSRS, _csr("bad-{ns}", signerName="notqualified"), expect=422, compare=("message",)),
            Req(
                "POST",
                CSRS,
                _csr("bad-{ns}", expirationSeconds=100, usages=["foo", "server auth", "server auth"]),
                expect=422,
            ),
        ),
    ),
    Scenario(
        "CSR approval and status subresources keep to their fields",
        (
            Req(
                "POST",
                CSRS,
                _with_status(NAME, conditions=[APPROVED]),
                expect=201,
                compare=("status", "spec.usages", "spec.groups", "?spec.username"),
            ),
            Req(
                "PUT",
                f"{CSRS}/{NAME}/approval",
                _with_status(NAME, conditions=[APPROVED, DENIED]),
                expect=422,
            ),
            Req(
                "PUT",
                f"{CSRS}/{NAME}/approval",
                _with_status(NAME, conditions=[{"type": "Approved", "status": "False"}]),
                expect=422,
                compare=("message",),
            ),
            Req(
                "PUT",
                f"{CSRS}/{NAME}/status",
                _with_status(NAME, conditions=[APPROVED]),
                expect=422,
                compare=("message",),
            ),
            Req(
                "PUT",
                f"{CSRS}/{NAME}/status",
                _with_status(NAME, certificate="aGVsbG8="),
                expect=422,
                compare=("message",),
            ),
            # approval changes only the conditions; a new condition gets its timestamps
            Req(
                "PUT",
                f"{CSRS}/{NAME}/approval",
                {**_with_status(NAME, conditions=[APPROVED], certificate="aGVsbG8="), "spec": {}},
                expect=200,
                compare=(
                    "status.conditions.0.type",
                    "status.conditions.0.reason",
                    "?status.conditions.0.lastUpdateTime",
                    "?status.conditions.0.lastTransitionTime",
                    "?status.certificate",
                    "spec.usages",
                ),
            ),
            Req(
                "PUT",
                f"{CSRS}/{NAME}/approval",
                _with_status(NAME, conditions=[]),
                expect=422,
                compare=("message",),
            ),
            # the object itself: spec and status are kept
            Req(
                "PUT",
                f"{CSRS}/{NAME}",
                {**_csr(NAME, usages=["client auth"]), "status": {}},
                expect=200,
                compare=("spec.usages", "status.conditions.0.type"),
            ),
            Req(
                "GET",
                f"{CSRS}/{NAME}",
                accept=TABLE,
                compare=("columnDefinitions", "rows.0.cells.2", "rows.0.cells.4", "rows.0.cells.5"),
            ),
            Req("DELETE", f"{CSRS}/{NAME}", expect=200),
        ),
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_certificates_scenario(
    scenario: Scenario, kube_pair: tuple[KubeTarget, KubeTarget | None]
) -> None:
    await check(scenario, kube_pair)
