"""Field validation of built-in kinds that kube-apiserver's decoder and registry strategies perform.

Contract
--------
:func:`decode_check` refuses bodies the real server's typed decoder cannot read (400 ``BadRequest``):
ConfigMap ``data`` values that are not strings, ``binaryData`` and Secret ``data`` values that are not
base64, a Deployment's ``spec.replicas`` that is not an integer. :func:`validate_builtin` runs the
strategy validation that follows (422 ``Invalid``, causes as the real server names them):

* total annotation size at most 256 KiB (``metadata.annotations: Too long``);
* ConfigMap / Secret payload at most 1 MiB (``data: Too long``);
* ``immutable: true`` ConfigMaps and Secrets keep their ``data``/``binaryData`` and stay immutable
  (``Forbidden: field is immutable when `immutable` is set``);
* a Deployment's ``spec.selector`` never changes (``field is immutable``).

Only these checks are modelled; other malformed built-in specs are stored as sent (see the docs'
table of differences).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NoReturn

from .discovery import ResourceType
from .errors import bad_request, invalid

__all__ = ["decode_check", "drop_empty_maps", "validate_builtin"]

ANNOTATIONS_LIMIT = 256 * 1024
PAYLOAD_LIMIT = 1024 * 1024
_IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


def _kind_of(rt: ResourceType) -> str:
    return "" if rt.custom else f"{rt.group}/{rt.plural}"


def json_type(value: Any) -> str:
    """How Go's encoding/json names the JSON type of ``value`` in an unmarshal error."""
    names = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), "value")


def _unmarshal_error(rt: ResourceType, field: str, value: Any, go_type: str) -> NoReturn:
    got = json_type(value)
    raise bad_request(
        f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot unmarshal '
        f"{got} into Go struct field {field} of type {go_type}"
    )


_META_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "string"),
    "generateName": (str, "string"),
    "namespace": (str, "string"),
    "labels": (dict, "map[string]string"),
    "annotations": (dict, "map[string]string"),
    "finalizers": (list, "[]string"),
    "ownerReferences": (list, "[]v1.OwnerReference"),
}


def _check_meta(rt: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        _unmarshal_error(rt, f"{rt.kind}.metadata", meta, "v1.ObjectMeta")
    for key, (want, go_type) in _META_TYPES.items():
        value = meta.get(key)
        if value is not None and not isinstance(value, want):
            _unmarshal_error(rt, f"ObjectMeta.metadata.{key}", value, go_type)
    for key in ("labels", "annotations"):
        for value in (meta.get(key) or {}).values():
            if not isinstance(value, str):
                _unmarshal_error(rt, f"ObjectMeta.metadata.{key}", value, "string")


def drop_empty_maps(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Built-in kinds lose empty maps (Go's ``omitempty``): labels, annotations, data, binaryData."""
    if rt.custom:
        return
    meta = obj.get("metadata") or {}
    for key in ("labels", "annotations"):
        if meta.get(key) == {}:
            del meta[key]
    if _kind_of(rt) in ("/configmaps", "/secrets"):
        for key in ("data", "binaryData"):
            if obj.get(key) == {}:
                del obj[key]


def decode_check(rt: ResourceType, obj: dict[str, Any]) -> None:
    """400 for values the typed decoder of ``rt`` would refuse."""
    _check_meta(rt, obj)
    kind = _kind_of(rt)
    if kind == "/configmaps":
        for value in _object_field(rt, obj, "data", "map[string]string").values():
            if not isinstance(value, str):
                _unmarshal_error(rt, f"{rt.kind}.data", value, "string")
    if kind in ("/configmaps", "/secrets"):
        field = "binaryData" if kind == "/configmaps" else "data"
        for value in _object_field(rt, obj, field, "map[string][]uint8").values():
            if not isinstance(value, str):
                _unmarshal_error(rt, f"{rt.kind}.{field}", value, "[]uint8")
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    "illegal base64 data at input byte "
                    f"{_first_bad_base64(value)}"
                ) from None
    elif kind == "apps/deployments":
        replicas = _object_field(rt, obj, "spec", "v1.DeploymentSpec").get("replicas")
        if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
            _unmarshal_error(rt, "DeploymentSpec.spec.replicas", replicas, "int32")


def _object_field(rt: ResourceType, obj: dict[str, Any], key: str, go_type: str) -> dict[str, Any]:
    """``obj[key]`` when it is a JSON object ({} when absent or null); the decoder's 400 otherwise."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        _unmarshal_error(rt, f"{rt.kind}.{key}", value, go_type)
    return value


def _first_bad_base64(value: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for index, char in enumerate(value):
        if char not in alphabet:
            return index
    return len(value)


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def validate_builtin(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """422 for what the real registry strategy of ``rt`` refuses (``old`` is ``None`` on create)."""
    if rt.custom:
        return
    causes: list[dict[str, str]] = []
    annotations = obj.get("metadata", {}).get("annotations") or {}
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > ANNOTATIONS_LIMIT:
        causes.append(
            _cause(
                "FieldValueTooLong",
                "metadata.annotations",
                f"Too long: may not be more than {ANNOTATIONS_LIMIT} bytes",
            )
        )
    kind = _kind_of(rt)
    if kind in ("/configmaps", "/secrets"):
        payload = sum(
            len(str(k)) + len(str(v))
            for field in ("data", "binaryData")
            for k, v in (obj.get(field) or {}).items()
        )
        if kind == "/secrets":
            payload = sum(len(k) + len(base64.b64decode(v)) for k, v in (obj.get("data") or {}).items())
        if payload > PAYLOAD_LIMIT:
            # the real ConfigMap validation reports this on an empty path, printed as "[]"
            where = "[]" if kind == "/configmaps" else "data"
            causes.append(
                _cause("FieldValueTooLong", where, f"Too long: may not be more than {PAYLOAD_LIMIT} bytes")
            )
        if old is not None and old.get("immutable"):
            fields = ("data", "binaryData") if kind == "/configmaps" else ("data",)
            causes += [
                _cause("FieldValueForbidden", field, _IMMUTABLE)
                for field in fields
                if (obj.get(field) or {}) != (old.get(field) or {})
            ]
            if not obj.get("immutable"):
                causes.append(_cause("FieldValueForbidden", "immutable", _IMMUTABLE))
    elif kind == "apps/deployments" and old is not None:
        selector = (obj.get("spec") or {}).get("selector")
        if selector != (old.get("spec") or {}).get("selector"):
            causes.append(_cause("FieldValueInvalid", "spec.selector", "field is immutable"))
    if causes:
        raise invalid(rt.kind, rt.group, obj.get("metadata", {}).get("name", ""), causes)
