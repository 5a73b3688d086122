"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` responses for ``kubectl get``.

Contract
--------
:func:`table` renders objects the way kube-apiserver's table convertors do when a client sends
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``: a ``Name`` column, type-specific columns
(a few per built-in kind; a CRD's ``additionalPrinterColumns`` evaluated with a small JSONPath
subset: ``.a.b``, ``[N]``, ``[*]`` and ``[?(@.k=="v")]``), and ``Age`` for built-ins and for CRDs
without printer columns. Rows carry the object as ``PartialObjectMetadata`` unless ``includeObject``
says ``Object`` or ``None``. Cells of ``date`` columns are rendered as ages ("5m") like built-ins.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from .discovery import PrinterColumn, ResourceType

__all__ = ["age", "column_definitions", "evaluate_jsonpath", "table", "table_row"]

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "priority": 0,
}
_AGE = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")
_CREATION_TIMESTAMP_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It "
    "is not guaranteed to be set in happens-before order across separate operations. Clients may not "
    "set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
    "Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
#: the CSR printer puts Age first and describes it with the field's documentation
_CSR_AGE = PrinterColumn(
    name="Age", type="date", json_path=".metadata.creationTimestamp", description=_CREATION_TIMESTAMP_DOC
)


def _columns(rt: ResourceType) -> list[PrinterColumn]:
    if rt.custom:
        if rt.extra.get("has_printer_columns"):
            return list(rt.printer_columns)
        return [_AGE]
    if rt.plural == "customresourcedefinitions":
        return list(rt.printer_columns)
    if rt.group == "certificates.k8s.io":
        return [_CSR_AGE, *rt.printer_columns]
    # built-in printers put Age after the always-shown columns, before the wide (priority) ones
    shown = [c for c in rt.printer_columns if c.priority == 0]
    wide = [c for c in rt.printer_columns if c.priority != 0]
    return [*shown, _AGE, *wide]


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    out = [dict(_NAME_COLUMN)]
    for column in _columns(rt):
        out.append(
            {
                "name": column.name,
                "type": "string" if column.type == "date" and not rt.custom else column.type,
                "format": column.format,
                "description": column.description or column.name,
                "priority": column.priority,
            }
        )
    return out


def age(timestamp: str | None, now: _dt.datetime) -> str:
    """``duration.HumanDuration`` of the time since ``timestamp``; ``<unknown>`` without one."""
    if not timestamp:
        return "<unknown>"
    try:
        then = _dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
    except ValueError:
        return "<invalid>"
    seconds = int((now - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    return human_duration(seconds)


def human_duration(seconds: int) -> str:
    """apimachinery's ``duration.HumanDuration`` of a whole number of seconds."""
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return f"{hours // (24 * 365)}y{(hours // 24) % 365}d"
    return f"{hours // (24 * 365)}y"


_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-]+)|\[(\*|-?\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)


def evaluate_jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate a kubectl-style JSONPath subset; returns every match (possibly none)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current = [obj]
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            return []
        pos = match.end()
        field, index, filter_key, filter_value = match.groups()
        nxt: list[Any] = []
        for value in current:
            if field is not None:
                if isinstance(value, dict) and field in value:
                    nxt.append(value[field])
            elif index is not None:
                if not isinstance(value, list):
                    continue
                if index == "*":
                    nxt.extend(value)
                elif -len(value) <= int(index) < len(value):
                    nxt.append(value[int(index)])
            elif isinstance(value, list):
                for element in value:
                    found = evaluate_jsonpath(element, "." + filter_key)
                    if found and str(found[0]) == filter_value:
                        nxt.append(element)
        current = nxt
    return current


def _cell(rt: ResourceType, column: PrinterColumn, obj: dict[str, Any], now: _dt.datetime) -> Any:
    path = column.json_path or ""
    if path.startswith("#"):
        value = obj.get(path[1:])
        count = len(value) if isinstance(value, dict | list) else 0
        if path == "#data":
            count += len(obj.get("binaryData") or {})
        return count
    if path.startswith("@"):
        return _computed(path[1:], obj)
    found = evaluate_jsonpath(obj, path)
    if column.type == "date" and not rt.custom and column not in (_AGE, _CSR_AGE):
        return found[0] if found else "<none>"
    if column.type == "date":
        return age(found[0] if found and isinstance(found[0], str) else None, now) if found else "<unknown>"
    if not found:
        if rt.custom:
            return None
        return 0 if column.type == "integer" else "<none>"
    value = found[0] if len(found) == 1 else ",".join(str(v) for v in found)
    if column.type in ("integer", "number", "boolean") or not isinstance(value, dict | list):
        return value
    return str(value)


def _computed(name: str, obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if name == "ports":
        ports = [
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
            f"/{p.get('protocol', 'TCP')}"
            for p in spec.get("ports") or ()
        ]
        return ",".join(ports) or "<none>"
    if name == "externalip":
        ips = spec.get("externalIPs") or [
            i.get("ip") for i in (status.get("loadBalancer") or {}).get("ingress") or ()
        ]
        return ",".join(i for i in ips if i) or (
            "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
        )
    if name == "selector":
        selector = spec.get("selector") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"
    if name == "ready":
        containers = status.get("containerStatuses") or ()
        total = len(spec.get("containers") or ())
        return f"{sum(1 for c in containers if c.get('ready'))}/{total}"
    if name == "restarts":
        return str(sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or ()))
    if name == "containers":
        return ",".join(c.get("name", "") for c in _template_containers(obj)) or "<none>"
    if name == "images":
        return ",".join(c.get("image", "") for c in _template_containers(obj)) or "<none>"
    if name == "labelselector":
        selector = spec.get("selector") or {}
        parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
        for expr in selector.get("matchExpressions") or ():
            values = ",".join(expr.get("values") or ())
            op = {"In": "in", "NotIn": "notin"}.get(expr.get("operator", ""), "")
            key = expr.get("key", "")
            parts.append(
                f"{key} {op} ({values})" if op else (key if expr.get("operator") == "Exists" else f"!{key}")
            )
        return ",".join(parts) or "<none>"
    if name == "readinessgates":
        gates = spec.get("readinessGates") or ()
        return "<none>" if not gates else f"0/{len(gates)}"
    if name == "deployready":
        return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"
    if name == "csrduration":
        seconds = spec.get("expirationSeconds")
        return "<none>" if seconds is None else human_duration(int(seconds))
    if name == "csrcondition":
        types = {c.get("type") for c in status.get("conditions") or ()}
        text = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
        text += ",Failed" if "Failed" in types else ""
        return text + (",Issued" if status.get("certificate") else "")
    if name == "involved":
        involved = obj.get("involvedObject") or {}
        return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    return "<none>"


def _template_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    template = (obj.get("spec") or {}).get("template") or {}
    containers: list[dict[str, Any]] = (template.get("spec") or {}).get("containers") or []
    return containers


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table_row(
    rt: ResourceType, obj: dict[str, Any], now: _dt.datetime, include_object: str
) -> dict[str, Any]:
    cells: list[Any] = [obj["metadata"].get("name", "")]
    cells.extend(_cell(rt, column, obj, now) for column in _columns(rt))
    row: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = _partial(obj)
    return row


def table(
    rt: ResourceType,
    objects: list[dict[str, Any]],
    now: _dt.datetime,
    *,
    resource_version: str,
    continue_token: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(rt) if with_columns else None,
        "rows": [table_row(rt, obj, now, include_object) for obj in objects],
    }
