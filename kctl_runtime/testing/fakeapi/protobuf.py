"""Decoding of the Kubernetes protobuf wire format for the few kinds kubectl sends that way.

Contract
--------
kubectl's typed generators (``kubectl create namespace|configmap|secret|serviceaccount``) send
``application/vnd.kubernetes.protobuf`` bodies: the magic ``k8s\\x00`` followed by a
``runtime.Unknown`` envelope (``typeMeta``, ``raw``) whose ``raw`` is the object message.
:func:`decode` turns such a body into the JSON-shaped dict the real server would have decoded, for
``Namespace``, ``ConfigMap``, ``Secret`` and ``ServiceAccount`` (field numbers from k8s.io/api
``generated.proto``). Empty strings, maps and lists are dropped, like JSON's ``omitempty``; ``bytes``
fields become base64 strings. Any other kind, or a malformed body, raises :class:`ProtobufError`
(the server answers 415). Responses are always JSON, which kubectl accepts.
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["MAGIC", "ProtobufError", "decode"]

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A protobuf body this server cannot decode."""


Schema = dict[int, tuple[str, Any]]

_OWNER_REF: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    11: ("labels", "map_string"),
    12: ("annotations", "map_string"),
    13: ("ownerReferences", ("repeated", _OWNER_REF)),
    14: ("finalizers", "repeated_string"),
}
_OBJECT_REF: Schema = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("resourceVersion", "string"),
    7: ("fieldPath", "string"),
}
_KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers", "repeated_string")}),
        3: ("status", {1: ("phase", "string")}),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", "map_string"),
        3: ("binaryData", "map_bytes"),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", "map_bytes"),
        3: ("type", "string"),
        4: ("stringData", "map_string"),
        5: ("immutable", "bool"),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", _OBJECT_META),
        2: ("secrets", ("repeated", _OBJECT_REF)),
        3: ("imagePullSecrets", ("repeated", {1: ("name", "string")})),
        4: ("automountServiceAccountToken", "bool"),
    },
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """``(field number, value)`` pairs; varints as ints, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ProtobufError("truncated field")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a length-delimited field")
    return value.decode("utf-8")


def _message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "string":
            text = _text(value)
            if text:
                out[name] = text
        elif kind in ("int", "bool"):
            if not isinstance(value, int):
                raise ProtobufError(f"{name}: expected a varint")
            out[name] = bool(value) if kind == "bool" else value
        elif kind == "repeated_string":
            out.setdefault(name, []).append(_text(value))
        elif kind in ("map_string", "map_bytes"):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{name}: expected a map entry")
            entry = dict(_fields(value))
            key = _text(entry.get(1, b""))
            raw = entry.get(2, b"")
            if not isinstance(raw, bytes):
                raise ProtobufError(f"{name}: expected a map value")
            out.setdefault(name, {})[key] = (
                base64.b64encode(raw).decode() if kind == "map_bytes" else raw.decode("utf-8")
            )
        elif isinstance(kind, tuple):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{name}: expected a message")
            out.setdefault(name, []).append(_message(value, kind[1]))
        else:
            if not isinstance(value, bytes):
                raise ProtobufError(f"{name}: expected a message")
            nested = _message(value, kind)
            if nested:
                out[name] = nested
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The object in a ``application/vnd.kubernetes.protobuf`` request body, as JSON-shaped data."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = dict(_fields(body[len(MAGIC) :]))
    type_meta = envelope.get(1, b"")
    raw = envelope.get(2, b"")
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes):
        raise ProtobufError("malformed runtime.Unknown envelope")
    meta = {number: _text(value) for number, value in _fields(type_meta)}
    api_version, kind = meta.get(1, ""), meta.get(2, "")
    schema = _KINDS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"protobuf bodies of {kind or 'unknown kind'} ({api_version}) are not supported")
    obj = _message(raw, schema)
    return {"apiVersion": api_version, "kind": kind, **obj}
