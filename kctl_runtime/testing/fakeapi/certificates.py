"""CertificateSigningRequests (``certificates.k8s.io/v1``): the registry strategy and the built-in signers.

Contract
--------
The registry, as kube-apiserver 1.36 behaves (checked by ``tests/differential``):

* create (:func:`prepare_create`): ``status`` is dropped; ``spec.username`` / ``groups`` are the
  fake's one user (:data:`.admission.USER_INFO`), ``spec.uid`` / ``extra`` are cleared. Validation
  (422, the real causes): ``spec.signerName`` required, of the form ``example.com/name`` and not
  ``kubernetes.io/legacy-unknown``; ``spec.request`` a PEM ``CERTIFICATE REQUEST`` whose signature
  verifies; ``spec.usages`` required, each a known usage, no duplicates; ``spec.expirationSeconds``
  at least 600.
* update of the object itself (:func:`prepare_update`, no subresource): ``spec`` and ``status`` are
  kept; only metadata changes.
* ``approval``: only ``status.conditions`` change. ``status``: ``spec`` is kept, and ``Approved`` /
  ``Denied`` conditions may not be added or removed there (403-style ``Forbidden`` cause);
  ``status.certificate`` must be PEM ``CERTIFICATE`` blocks and never changes once set.
* conditions on both: ``type`` and ``status`` required, ``Approved`` / ``Denied`` only with status
  ``True`` (others ``True`` / ``False`` / ``Unknown``), ``Approved`` and ``Denied`` mutually
  exclusive, no duplicate types, no ``Approved`` / ``Denied`` / ``Failed`` condition removed;
  missing ``lastUpdateTime`` / ``lastTransitionTime`` are set to now.

:func:`sign` is kube-controller-manager's signing controller for ``kubernetes.io/kubelet-serving``,
``kubernetes.io/kube-apiserver-client`` and ``kubernetes.io/kube-apiserver-client-kubelet``, run by
the fake's controllers (:mod:`.gc`): an approved (not denied, not failed) request without a
certificate that passes the signer's checks (same messages as the real signer) gets
``status.certificate`` from the fake server's CA
(:attr:`~kctl_runtime.testing.fakeapi.FakeApiServer.ca_pem`), valid from 5 minutes ago (real time)
until ``expirationSeconds`` (or one year) from now, less those 5 minutes unless it is under 8 hours
(the real signer's policy), capped by the CA's validity; one that fails them gets a
``Failed`` condition with reason ``SignerValidationFailure``. Other signer names are signed by nobody.

Not modelled: authorization (``approve`` / ``sign`` on ``signers``), the CertificateSubjectRestriction
admission plugin, auto-approval of kubelet client certificates and the CSR cleaner.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from typing import Any

from ._values import go_quote
from .errors import invalid

__all__ = ["BUILTIN_SIGNERS", "is_csr", "prepare_create", "prepare_update", "sign"]

BUILTIN_SIGNERS = (
    "kubernetes.io/kubelet-serving",
    "kubernetes.io/kube-apiserver-client",
    "kubernetes.io/kube-apiserver-client-kubelet",
)
_USAGES = (
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
)
_SIGNER = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[^/]+")
_KIND = "CertificateSigningRequest"
_GROUP = "certificates.k8s.io"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
_TRUE_ONLY = ("Approved", "Denied")
#: kube-controller-manager's signer backdates certificates 5 minutes (clock skew) and takes the
#: backdate off the end too, except for short-lived ones (under 8 hours)
_BACKDATE = datetime.timedelta(minutes=5)
_SHORT = datetime.timedelta(hours=8)


def is_csr(rt: Any) -> bool:
    return bool(rt.group == _GROUP and rt.plural == "certificatesigningrequests" and not rt.custom)


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def _decode(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_request(value: Any) -> Any:
    """The ``cryptography`` CSR in ``spec.request``, or ``None`` when it is not a valid one."""
    raw = _decode(value) or b""
    blocks = _pem_blocks(raw)
    if not blocks or blocks[0][0] != "CERTIFICATE REQUEST":
        return None
    from cryptography import x509

    try:
        request = x509.load_pem_x509_csr(blocks[0][1])
    except ValueError:
        return None
    return request


def _spec_causes(obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec") or {}
    causes: list[dict[str, str]] = []
    request = spec.get("request")
    parsed = _parse_request(request)
    shown = "null" if request is None else go_quote(str(request))
    if parsed is None:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.request",
                f"Invalid value: {shown}: PEM block type must be CERTIFICATE REQUEST",
            )
        )
    elif not parsed.is_signature_valid:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.request",
                f"Invalid value: {shown}: x509: ECDSA verification failure",
            )
        )
    usages = spec.get("usages") or []
    if not usages:
        causes.append(_cause("FieldValueRequired", "spec.usages", "Required value"))
    seen: set[str] = set()
    supported = ", ".join(f'"{u}"' for u in _USAGES)
    for index, usage in enumerate(usages):
        if usage not in _USAGES:
            causes.append(
                _cause(
                    "FieldValueNotSupported",
                    f"spec.usages[{index}]",
                    f"Unsupported value: {go_quote(str(usage))}: supported values: {supported}",
                )
            )
        elif usage in seen:
            causes.append(
                _cause("FieldValueDuplicate", f"spec.usages[{index}]", f"Duplicate value: {go_quote(usage)}")
            )
        seen.add(str(usage))
    signer = spec.get("signerName") or ""
    if not signer:
        causes.append(_cause("FieldValueRequired", "spec.signerName", "Required value"))
    elif signer == "kubernetes.io/legacy-unknown":
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.signerName",
                f"Invalid value: {go_quote(signer)}: "
                "the legacy signerName is not allowed via this API version",
            )
        )
    elif not _SIGNER.fullmatch(str(signer)):
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.signerName",
                f"Invalid value: {go_quote(str(signer))}: must be a fully qualified domain and path of the "
                "form 'example.com/signer-name'",
            )
        )
    seconds = spec.get("expirationSeconds")
    if seconds is not None and isinstance(seconds, int) and seconds < 600:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    return causes


def _condition_causes(
    conditions: list[dict[str, Any]], old_conditions: list[dict[str, Any]]
) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    seen: set[str] = set()
    approved = denied = False
    for index, cond in enumerate(conditions):
        kind = str(cond.get("type") or "")
        status = str(cond.get("status") or "")
        where = f"status.conditions[{index}]"
        if not kind:
            causes.append(_cause("FieldValueRequired", f"{where}.type", "Required value"))
        allowed = ("True",) if kind in _TRUE_ONLY else ("False", "True", "Unknown")
        if not status:
            causes.append(_cause("FieldValueRequired", f"{where}.status", "Required value"))
        elif status not in allowed:
            values = ", ".join(f'"{v}"' for v in allowed)
            causes.append(
                _cause(
                    "FieldValueNotSupported",
                    f"{where}.status",
                    f"Unsupported value: {go_quote(status)}: supported values: {values}",
                )
            )
        if kind == "Approved":
            approved = True
        if kind == "Denied":
            denied = True
        if kind in _TRUE_ONLY and approved and denied:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    "status.conditions",
                    f"Invalid value: {go_quote(kind)}: Approved and Denied conditions are mutually exclusive",
                )
            )
        if kind in seen:
            causes.append(
                _cause("FieldValueDuplicate", f"{where}.type", f"Duplicate value: {go_quote(kind)}")
            )
        seen.add(kind)
    for kind in ("Approved", "Denied", "Failed"):
        before = sum(1 for c in old_conditions if c.get("type") == kind)
        after = sum(1 for c in conditions if c.get("type") == kind)
        if after < before:
            causes.append(
                _cause(
                    "FieldValueForbidden",
                    "status.conditions",
                    f'Forbidden: updates may not remove a condition of type "{kind}"',
                )
            )
    return causes


def _stamp(conditions: list[dict[str, Any]], now: str) -> None:
    for cond in conditions:
        if isinstance(cond, dict):
            cond.setdefault("lastUpdateTime", now)
            cond.setdefault("lastTransitionTime", now)


def prepare_create(obj: dict[str, Any], user: dict[str, Any]) -> None:
    """Create strategy and validation (module doc); raises the 422."""
    obj.pop("status", None)
    spec = obj.setdefault("spec", {})
    for key in ("uid", "extra"):
        spec.pop(key, None)
    spec["username"] = user.get("username", "")
    spec["groups"] = list(user.get("groups") or ())
    causes = _spec_causes(obj)
    if causes:
        raise invalid(_KIND, _GROUP, obj["metadata"].get("name", ""), causes)
    obj["status"] = {}


def prepare_update(
    old: dict[str, Any], new: dict[str, Any], subresource: str | None, now: str
) -> dict[str, Any]:
    """Update strategy and validation for the object, ``status`` or ``approval`` (module doc)."""
    new = dict(new)
    new["spec"] = old.get("spec")
    old_status = old.get("status") or {}
    old_conditions = list(old_status.get("conditions") or ())
    if subresource is None:
        new["status"] = old_status
        return new
    body_status = new.get("status") if isinstance(new.get("status"), dict) else {}
    assert isinstance(body_status, dict)
    conditions = [dict(c) if isinstance(c, dict) else {} for c in body_status.get("conditions") or ()]
    causes: list[dict[str, str]] = []
    if subresource == "approval":
        status = {**old_status, "conditions": conditions}
    else:
        status = dict(body_status)
        status["conditions"] = conditions
        for kind in _TRUE_ONLY:
            before = sum(1 for c in old_conditions if c.get("type") == kind)
            after = sum(1 for c in conditions if c.get("type") == kind)
            if after != before:
                verb = "add" if after > before else "remove"
                causes.append(
                    _cause(
                        "FieldValueForbidden",
                        "status.conditions",
                        f'Forbidden: updates may not {verb} a condition of type "{kind}"',
                    )
                )
        certificate = status.get("certificate")
        if certificate:
            blocks = _pem_blocks(_decode(certificate) or b"")
            if not blocks or any(kind != "CERTIFICATE" for kind, _ in blocks):
                causes.append(
                    _cause(
                        "FieldValueInvalid",
                        "status.certificate",
                        'Invalid value: "<certificate data>": '
                        "must contain at least one CERTIFICATE PEM block",
                    )
                )
        if old_status.get("certificate") and certificate != old_status.get("certificate"):
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    "status.certificate",
                    'Invalid value: "[]byte(nil)": updates may not modify existing certificate content',
                )
            )
    causes = _condition_causes(conditions, old_conditions) + causes
    if causes:
        raise invalid(_KIND, _GROUP, old["metadata"].get("name", ""), causes)
    _stamp(conditions, now)
    if not status.get("conditions"):
        status.pop("conditions", None)
    new["status"] = status
    return new


def _true(obj: dict[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


def _check(signer: str, request: Any, usages: set[str]) -> str:
    """The built-in signer's refusal message for ``request``, or ``""`` when it signs it."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    orgs = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cns = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    common_name = str(cns[0]) if cns else ""
    try:
        sans = list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    dns = [n for n in sans if isinstance(n, x509.DNSName)]
    ips = [n for n in sans if isinstance(n, x509.IPAddress)]
    emails = [n for n in sans if isinstance(n, x509.RFC822Name)]
    uris = [n for n in sans if isinstance(n, x509.UniformResourceIdentifier)]
    if signer == "kubernetes.io/kube-apiserver-client":
        allowed = {"digital signature", "key encipherment", "client auth"}
        for usage in sorted(usages - allowed):
            return f"invalid usage for client certificate: {usage}"
        return ""
    if orgs != ["system:nodes"]:
        return "subject organization is not system:nodes"
    if signer == "kubernetes.io/kubelet-serving":
        if not dns and not ips:
            return "DNS or IP subjectAltName is required"
        if emails:
            return "Email subjectAltNames are not allowed"
        if uris:
            return "URI subjectAltNames are not allowed"
        if usages not in (
            {"digital signature", "server auth"},
            {"key encipherment", "digital signature", "server auth"},
        ):
            return "usages did not match [digital signature key encipherment server auth]"
    else:
        for names, what in ((dns, "DNS"), (emails, "Email"), (ips, "IP"), (uris, "URI")):
            if names:
                return f"{what} subjectAltNames are not allowed"
    if not common_name.startswith("system:node:"):
        return "subject common name does not begin with system:node:"
    if signer == "kubernetes.io/kube-apiserver-client-kubelet" and usages not in (
        {"digital signature", "client auth"},
        {"key encipherment", "digital signature", "client auth"},
    ):
        return "usages did not match [client auth digital signature key encipherment]"
    return ""


def sign(obj: dict[str, Any], ca: Any, now: datetime.datetime, stamp: str) -> dict[str, Any] | None:
    """The new ``status`` a built-in signer writes for ``obj``, or ``None`` when it leaves it alone."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    signer = spec.get("signerName")
    if signer not in BUILTIN_SIGNERS or status.get("certificate"):
        return None
    if not _true(obj, "Approved") or _true(obj, "Denied") or _true(obj, "Failed"):
        return None
    request = _parse_request(spec.get("request"))
    if request is None:
        return None
    usages = {str(u) for u in spec.get("usages") or ()}
    refusal = _check(str(signer), request, usages)
    if refusal:
        failed = {
            "type": "Failed",
            "status": "True",
            "reason": "SignerValidationFailure",
            "message": refusal,
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        }
        return {**status, "conditions": [*(status.get("conditions") or ()), failed]}
    ttl = datetime.timedelta(seconds=int(spec.get("expirationSeconds") or 365 * 24 * 3600))
    pem = ca.sign_request(
        request,
        usages=sorted(usages),
        not_before=now - _BACKDATE,
        not_after=now + ttl - (_BACKDATE if ttl >= _SHORT else datetime.timedelta(0)),
    )
    return {**status, "certificate": base64.b64encode(pem).decode()}
