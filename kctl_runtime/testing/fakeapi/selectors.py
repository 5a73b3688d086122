"""Which field selectors kube-apiserver accepts, per resource, for the fake API server.

Contract
--------
The parsers live in :mod:`kctl_runtime.selectors` (re-exported here for the fake's modules).
:func:`supported_fields` lists the fields kube-apiserver v1.36.3 accepts per resource and
:func:`check_supported` raises its wording, which depends on the resource: ``field label not
supported: X`` (pods, services, secrets, events, custom resources, ...), ``"X" is not a known field
selector: only "metadata.name", "metadata.namespace"`` (configmaps, deployments, most others) or
``field label "X" not supported for Job``. The messages and accepted fields were checked against
that server.

Not modelled: ``selectableFields`` of CRDs (the caller can pass its own set to
:func:`check_supported`), and set-based field selectors (the apiserver has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kctl_runtime._gostrings import go_quote
from kctl_runtime.selectors import (
    FieldSelector,
    LabelRequirement,
    LabelSelector,
    SelectorError,
    escape_field_value,
    field_value,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    validate_label_key,
    validate_label_value,
)

__all__ = [
    "FieldSelector",
    "LabelRequirement",
    "LabelSelector",
    "SelectorError",
    "check_supported",
    "escape_field_value",
    "field_value",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
    "supported_fields",
    "validate_label_key",
    "validate_label_value",
]


_COMMON = frozenset({"metadata.name", "metadata.namespace"})
_NAME_ONLY = frozenset({"metadata.name"})


@dataclass(frozen=True)
class _FieldLabels:
    """Field labels of one resource and how its apiserver words a rejection: ``label`` (a
    conversion function: ``field label not supported: X``), ``known`` (the default:
    ``"X" is not a known field selector: only ...``) or ``job``."""

    fields: frozenset[str]
    style: str = "label"


# (group, resource) -> field labels, as kube-apiserver v1.36.3 accepts them. Built-in resources not
# listed accept metadata.name and metadata.namespace with the "known" wording; resources of other
# groups (custom resources) the same fields with the "label" wording.
_FIELD_LABELS: dict[tuple[str, str], _FieldLabels] = {
    ("", "pods"): _FieldLabels(
        _COMMON
        | {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
    ("", "nodes"): _FieldLabels(_NAME_ONLY | {"spec.unschedulable"}),
    ("", "namespaces"): _FieldLabels(_NAME_ONLY | {"status.phase"}),
    ("", "secrets"): _FieldLabels(_COMMON | {"type"}),
    ("", "services"): _FieldLabels(_COMMON | {"spec.clusterIP", "spec.type"}),
    ("", "replicationcontrollers"): _FieldLabels(_COMMON | {"status.replicas"}),
    ("", "events"): _FieldLabels(
        _COMMON
        | {
            f"involvedObject.{f}"
            for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        }
        | {"reason", "reportingComponent", "source", "type"}
    ),
    ("events.k8s.io", "events"): _FieldLabels(
        _COMMON
        | {
            f"regarding.{f}"
            for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        }
        | {"reason", "reportingController", "type"}
    ),
    ("batch", "jobs"): _FieldLabels(_COMMON | {"status.successful"}, "job"),
    ("certificates.k8s.io", "certificatesigningrequests"): _FieldLabels(_NAME_ONLY | {"spec.signerName"}),
}

_BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "certificates.k8s.io",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "scheduling.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "apiregistration.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "resource.k8s.io",
        "internal.apiserver.k8s.io",
        "storagemigration.k8s.io",
    }
)


def _labels(group: str, resource: str) -> _FieldLabels:
    found = _FIELD_LABELS.get((group, resource))
    if found is not None:
        return found
    return _FieldLabels(_COMMON, "known" if group in _BUILTIN_GROUPS else "label")


def supported_fields(group: str, resource: str) -> frozenset[str]:
    """Fields usable in a field selector for ``group``/``resource`` (plural) on a real apiserver."""
    return _labels(group, resource).fields


def check_supported(
    sel: FieldSelector, group: str, resource: str, *, extra: Iterable[str] = (), kind: str = ""
) -> None:
    """Raise :class:`SelectorError` with the real wording for the first field, in selector order,
    the resource does not support. ``extra`` adds fields (a CRD's selectableFields); ``kind`` names
    the kind in the Job-style message (default: ``Job``)."""
    labels = _labels(group, resource)
    allowed = labels.fields | frozenset(extra)
    for fld, _, _ in sel.requirements:
        if fld in allowed:
            continue
        if labels.style == "known":
            only = ", ".join(go_quote(f) for f in sorted(allowed))
            raise SelectorError(f"{go_quote(fld)} is not a known field selector: only {only}")
        if labels.style == "job":
            raise SelectorError(f"field label {go_quote(fld)} not supported for {kind or 'Job'}")
        raise SelectorError(f"field label not supported: {fld}")
