"""CustomResourceDefinitions: validation, the resources they serve, and custom-resource admission.

Contract
--------
* :func:`validate_crd` rejects a CRD the real apiextensions-apiserver would reject for the reasons a
  test is likely to hit (name not ``<plural>.<group>``, no versions, not exactly one storage version,
  missing names, bad scope) with a 422 ``Invalid`` Status, and fills the defaults the real server
  sets (``singular``, ``listKind``, ``conversion.strategy: None``).
* :func:`established` returns the CRD with ``status.acceptedNames``, ``storedVersions`` and the
  ``NamesAccepted`` / ``Established`` conditions set, as the apiextensions controllers do;
  :func:`served_types` lists one :class:`~.discovery.ResourceType` per served version.
* :func:`prepare_custom_resource` runs on every custom-resource write: structural defaulting, pruning
  of unknown fields (unless ``x-kubernetes-preserve-unknown-fields``) and OpenAPI v3 validation via
  :mod:`.schema`, raising the real 422 ``Invalid`` Status.
* Conversion between versions is the ``None`` strategy: only ``apiVersion`` changes.
"""

from __future__ import annotations

from typing import Any

from .discovery import PrinterColumn, ResourceType
from .errors import ApiError, bad_request, invalid

__all__ = [
    "CLEANUP_FINALIZER",
    "established",
    "prepare_custom_resource",
    "served_types",
    "set_condition",
    "unknown_fields",
    "validate_crd",
]

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_CRD_KIND = "CustomResourceDefinition"
_CRD_GROUP = "apiextensions.k8s.io"


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def validate_crd(obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Default and validate a CRD in place; raise 422 like the real server."""
    name = obj["metadata"].get("name", "")
    spec = obj.get("spec")
    causes: list[dict[str, str]] = []
    if not isinstance(spec, dict):
        raise invalid(_CRD_KIND, _CRD_GROUP, name, [_cause("FieldValueRequired", "spec", "Required value")])
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural = names.get("plural") or ""
    kind = names.get("kind") or ""
    if not group:
        causes.append(_cause("FieldValueRequired", "spec.group", "Required value"))
    if not plural:
        causes.append(_cause("FieldValueRequired", "spec.names.plural", "Required value"))
    if not kind:
        causes.append(_cause("FieldValueRequired", "spec.names.kind", "Required value"))
    if group and plural and name != f"{plural}.{group}":
        causes.append(
            _cause(
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            _cause(
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: "{scope or ""}": supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: null: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.versions",
                f"Invalid value: {_go_versions(versions)}: "
                "must have exactly one version marked as storage version",
            )
        )
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("group") != group:
            causes.append(
                _cause("FieldValueInvalid", "spec.group", f'Invalid value: "{group}": field is immutable')
            )
        if old_spec.get("scope") != scope:
            causes.append(
                _cause("FieldValueInvalid", "spec.scope", f'Invalid value: "{scope}": field is immutable')
            )
    if causes:
        raise invalid(_CRD_KIND, _CRD_GROUP, name, causes)
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", f"{kind}List")
    spec["names"] = names
    spec.setdefault("conversion", {"strategy": "None"})


def _go_versions(versions: list[dict[str, Any]]) -> str:
    return "[]apiextensions.CustomResourceDefinitionVersion{...}" if versions else "null"


def set_condition(
    obj: dict[str, Any], type_: str, status: str, reason: str, message: str, *, now: str
) -> None:
    conditions: list[dict[str, Any]] = obj.setdefault("status", {}).setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == type_:
            if condition.get("status") != status:
                condition["lastTransitionTime"] = now
            condition.update(status=status, reason=reason, message=message)
            return
    conditions.append(
        {"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}
    )


def established(obj: dict[str, Any], now: str) -> dict[str, Any]:
    """The CRD with the status the apiextensions controllers write once its names are accepted."""
    spec = obj["spec"]
    status = obj.setdefault("status", {})
    status["acceptedNames"] = {k: v for k, v in spec["names"].items()}
    set_condition(obj, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now=now)
    set_condition(
        obj, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted", now=now
    )
    stored = list(status.get("storedVersions") or [])
    for version in spec["versions"]:
        if version.get("storage") and version["name"] not in stored:
            stored.append(version["name"])
    status["storedVersions"] = stored
    return obj


def served_types(obj: dict[str, Any]) -> list[ResourceType]:
    spec = obj["spec"]
    names = spec["names"]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    out = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or spec.get("subresources") or {}
        schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        columns = version.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or []
        printer = tuple(
            PrinterColumn(
                name=c["name"],
                type=c.get("type", "string"),
                json_path=c.get("jsonPath"),
                description=c.get("description", ""),
                priority=int(c.get("priority", 0)),
                format=c.get("format", ""),
            )
            for c in columns
        )
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                scale_subresource=subresources.get("scale"),
                tracks_generation=True,
                custom=True,
                return_deleted_object=False,
                printer_columns=printer if columns else _default_custom_columns(),
                schema=schema,
                storage_version=storage,
                extra={"crd": obj["metadata"]["name"], "has_printer_columns": bool(columns)},
            )
        )
    return out


def _default_custom_columns() -> tuple[PrinterColumn, ...]:
    return ()


def unknown_fields(original: Any, pruned: Any, path: str = "") -> list[str]:
    """Paths present in ``original`` that pruning removed (``spec.items[0].foo``)."""
    out: list[str] = []
    if isinstance(original, dict) and isinstance(pruned, dict):
        for key, value in original.items():
            child = f"{path}.{key}" if path else key
            if key not in pruned:
                out.append(child)
            else:
                out.extend(unknown_fields(value, pruned[key], child))
    elif isinstance(original, list) and isinstance(pruned, list):
        for index, (a, b) in enumerate(zip(original, pruned, strict=False)):
            out.extend(unknown_fields(a, b, f"{path}[{index}]"))
    return out


def prepare_custom_resource(
    rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, *, field_validation: str = "Warn"
) -> list[str]:
    """Default, prune and validate a custom resource in place (422 on failure).

    Returns the unknown fields that were dropped (for ``Warning`` headers); with
    ``field_validation="Strict"`` they are a 400 instead, worded like the real decoder's error.
    """
    del old
    schema = rt.schema
    if not schema:
        return []
    from . import schema as schemalib

    unknown = unknown_fields(obj, schemalib.prune(obj, schema))
    if unknown and field_validation == "Strict":
        fields = ", ".join(f'unknown field "{p}"' for p in unknown)
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"strict decoding error: {fields}"
        )
    pruned = schemalib.prune(schemalib.apply_defaults(obj, schema), schema)
    obj.clear()
    obj.update(pruned)
    causes = schemalib.validate(obj, schema)
    if causes:
        name = obj["metadata"].get("name", "")
        raise ApiError(schemalib.status_invalid(group=rt.group, kind=rt.kind, name=name, causes=causes))
    return [] if field_validation == "Ignore" else unknown
