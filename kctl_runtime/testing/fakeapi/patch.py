"""JSON merge patch, JSON patch and strategic merge patch as kube-apiserver applies them.

Contract
--------
Every function is pure: inputs are never mutated, the result is a fresh structure (nothing in it is
shared with the inputs). Failures raise :class:`PatchError`, which carries the HTTP ``status`` and
``reason`` the real apiserver answers with; :meth:`PatchError.to_status` builds the Status body.

* :func:`json_merge_patch` is RFC 7386 as implemented by ``evanphx/json-patch`` v4 (vendored by
  kube-apiserver): ``null`` deletes a key; a ``null`` patch body is a 400 ``Invalid JSON Patch``,
  a non-object body a 400 ``error decoding patch: ...``; nulls inside a value that is newly added
  (or that replaces a non-object) are pruned.
* :func:`json_patch` is RFC 6902 with the v4 library's behaviour: JSON pointer escapes ``~0``/``~1``,
  ``-`` appends, negative indices count from the end for add/remove, ``replace`` of a missing object
  member adds it (a long-standing kube-apiserver quirk). Apply failures (failed ``test``, bad paths)
  are 422 ``Invalid`` with the generic message "the server rejected our request due to an error in
  our request" (the apiserver drops the library's text; it is kept in :attr:`PatchError.detail`).
  A body that is not a list of operations is a 400 ``error decoding patch: ...``, ``null`` is an
  empty patch; more than 10000 operations is a 413. Status codes and messages were checked
  against kube-apiserver v1.36.3.
* :func:`strategic_merge_patch` follows apimachinery ``strategicpatch.StrategicMergeMapPatch``
  driven by a table of ``patchStrategy``/``patchMergeKey`` tags for built-in kinds (ObjectMeta for
  all of them): lists of maps with a merge key merge by key, primitive lists with strategy merge are
  sets, other lists are replaced, maps merge recursively. Directives: ``$patch`` (replace, delete;
  merge in a list is rejected as upstream), ``$retainKeys``, ``$deleteFromPrimitiveList/<f>``,
  ``$setElementOrder/<f>``. Items the patch adds to a merged list come before the items only the
  object had (upstream's ordering; clients send ``$setElementOrder`` to choose). Where the object
  has no list to merge with, ``$patch`` elements vanish and ``$deleteFromPrimitiveList`` is a no-op.
  Malformed directives answer as upstream: 400 for bad ``$retainKeys``/directive keys, 500 (reason
  ``""``) for unknown ``$patch`` values, missing merge keys and inconsistent ``$setElementOrder``.
  Kinds not in the table (custom resources) raise 415 ``UnsupportedMediaType`` with the real
  message unless ``allow_unknown_kinds=True``, which applies strategic merge with ObjectMeta
  metadata only. :func:`patch_strategy` exposes the table (used by server-side apply).
* :func:`create_merge_patch` computes the RFC 7386 patch turning one document into another.

All of the above was compared case by case with kube-apiserver v1.36.3 (the real-tier tests in
``tests/test_fakeapi_patch.py`` keep doing so).

Not modelled: decoding into Go structs after the patch (the real server then drops unknown fields,
empty ``omitempty`` lists and maps, and turns typed nulls into zero values, and it applies
defaulting; we return the patched JSON as is), and CBOR bodies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._values import json_equal

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "PatchError",
    "create_merge_patch",
    "json_merge_patch",
    "json_patch",
    "patch_strategy",
    "strategic_merge_patch",
    "supports_strategic_merge",
]

MAX_JSON_PATCH_OPERATIONS = 10000

_GENERIC_422 = "the server rejected our request due to an error in our request"
_PATCH_MEDIA_TYPES = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"


class PatchError(ValueError):
    """A patch the apiserver rejects. ``str()`` is the Status message.

    ``status`` is the HTTP code, ``reason`` the Status reason (``""`` when the apiserver answers
    with an unknown reason, e.g. a 500 for a malformed strategic merge directive), ``detail`` the
    underlying library message when the apiserver hides it, ``causes`` the Status causes.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 422,
        reason: str = "Invalid",
        detail: str = "",
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.detail = detail or message
        self.causes = causes or []

    def to_status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body the apiserver would send."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        details: dict[str, Any] = {}
        if self.causes:
            details["causes"] = [dict(c) for c in self.causes]
        if details or self.status in (409, 422):
            body["details"] = details
        body["code"] = self.status
        return body


def _bad_request(message: str) -> PatchError:
    return PatchError(message, status=400, reason="BadRequest")


def _decode_error(value: Any, go_type: str) -> PatchError:
    """The 400 the apiserver answers when the patch body does not decode into ``go_type``."""
    return _bad_request(
        f"error decoding patch: json: cannot unmarshal {_go_type(value)} into Go value of type {go_type}"
    )


def _decode_error_plain(value: Any) -> PatchError:
    """The 400 for a strategic merge patch body that is not an object (no "error decoding" prefix)."""
    return _bad_request(
        f"json: cannot unmarshal {_go_type(value)} into Go value of type map[string]interface {{}}"
    )


def _invalid_generic(detail: str) -> PatchError:
    return PatchError(_GENERIC_422, status=422, reason="Invalid", detail=detail)


def _go_type(v: Any) -> str:
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return "null"


# ============================================================================================
# JSON merge patch (RFC 7386, evanphx/json-patch v4 flavour)
# ============================================================================================


def _prune_nulls(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _prune_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_prune_nulls(x) if x is not None else None for x in v]
    return copy.deepcopy(v)


def _merge_docs(doc: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            doc.pop(k, None)
            continue
        cur = doc.get(k)
        if not isinstance(cur, dict):
            doc[k] = _prune_nulls(v)
        elif not isinstance(v, Mapping):
            doc[k] = copy.deepcopy(v)
        else:
            _merge_docs(cur, v)


def json_merge_patch(target: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch to ``target`` (an object) and return the result."""
    if patch is None:
        raise _bad_request("Invalid JSON Patch")
    if not isinstance(patch, Mapping):
        raise _decode_error(patch, "map[string]interface {}")
    doc = copy.deepcopy(dict(target))
    _merge_docs(doc, patch)
    return doc


def create_merge_patch(original: Mapping[str, Any], modified: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 patch that turns ``original`` into ``modified`` (both objects).

    Values that are ``None`` in ``modified`` cannot be expressed by a merge patch (null means delete);
    such keys are deleted by the patch."""
    out: dict[str, Any] = {}
    for k, v in original.items():
        if k not in modified or modified[k] is None:
            if k in original:
                out[k] = None
        elif isinstance(v, Mapping) and isinstance(modified[k], Mapping):
            sub = create_merge_patch(v, modified[k])
            if sub:
                out[k] = sub
        elif not json_equal(v, modified[k]):
            out[k] = copy.deepcopy(modified[k])
    for k, v in modified.items():
        if k not in original and v is not None:
            out[k] = copy.deepcopy(v)
    return out


# ============================================================================================
# JSON patch (RFC 6902, evanphx/json-patch v4 flavour)
# ============================================================================================


class _OpFailed(Exception):
    pass


def _wrap(msg: str, cause: str) -> _OpFailed:
    return _OpFailed(f"{msg}: {cause}")


_MISSING = "missing value"
_INVALID_INDEX = "invalid index referenced"


def _decode_key(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _atoi(s: str) -> int | None:
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    return int(s)


_Container = dict[str, Any] | list[Any]


def _find_object(doc: _Container, path: str) -> tuple[_Container, str] | None:
    split = path.split("/")
    if len(split) < 2:
        return None
    cur: Any = doc
    for part in split[1:-1]:
        nxt = _get(cur, _decode_key(part), lenient=True)
        if not isinstance(nxt, dict | list):
            return None
        cur = nxt
    return cur, _decode_key(split[-1])


_ABSENT = object()


def _get(con: _Container, key: str, *, lenient: bool = False) -> Any:
    """Value at ``key``; a missing object member is ``_ABSENT``; a bad array index raises."""
    if isinstance(con, dict):
        return con.get(key, _ABSENT)
    idx = _atoi(key)
    if idx is None:
        if lenient:
            return _ABSENT
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": invalid syntax')
    if idx >= len(con) or idx < 0:
        if lenient:
            return _ABSENT
        raise _wrap(f"Unable to access invalid index: {idx}", _INVALID_INDEX)
    return con[idx]


def _add(con: _Container, key: str, val: Any) -> None:
    if isinstance(con, dict):
        con[key] = val
        return
    if key == "-":
        con.append(val)
        return
    idx = _atoi(key)
    if idx is None:
        raise _OpFailed(
            f"value was not a proper array index: '{key}': strconv.Atoi: parsing \"{key}\": invalid syntax"
        )
    size = len(con) + 1
    if idx >= size or idx < -size:
        raise _wrap(f"Unable to access invalid index: {idx}", _INVALID_INDEX)
    if idx < 0:
        idx += size
    con.insert(idx, val)


def _remove(con: _Container, key: str) -> None:
    if isinstance(con, dict):
        if key not in con:
            raise _wrap(f"Unable to remove nonexistent key: {key}", _MISSING)
        del con[key]
        return
    idx = _atoi(key)
    if idx is None:
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": invalid syntax')
    if idx >= len(con) or idx < -len(con):
        raise _wrap(f"Unable to access invalid index: {idx}", _INVALID_INDEX)
    del con[idx]


def _op_str(op: Mapping[str, Any], field: str) -> str | None:
    v = op.get(field)
    return v if isinstance(v, str) else None


def _apply_op(doc: dict[str, Any], op: Mapping[str, Any]) -> None:
    kind = op.get("op") if isinstance(op.get("op"), str) else "unknown"
    path = _op_str(op, "path")
    value = copy.deepcopy(op.get("value"))
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        raise _OpFailed(f"Unexpected kind: {kind}")
    if path is None:
        raise _wrap(f"{kind} operation failed to decode path", _MISSING)
    if kind in ("move", "copy"):
        frm = _op_str(op, "from")
        if frm is None:
            raise _wrap(
                f"{kind} operation failed to decode from", "operation, missing from field: " + _MISSING
            )
        found = _find_object(doc, frm)
        if found is None:
            raise _wrap(f"{kind} operation does not apply: doc is missing from path: {frm}", _MISSING)
        con, key = found
        try:
            val = _get(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in {kind} for path: '{key}': {e}") from None
        if kind == "move":
            try:
                _remove(con, key)
            except _OpFailed as e:
                raise _OpFailed(f"error in move for path: '{key}': {e}") from None
        val = None if val is _ABSENT else copy.deepcopy(val)
        dest = _find_object(doc, path)
        if dest is None:
            raise _wrap(f"{kind} operation does not apply: doc is missing destination path: {path}", _MISSING)
        try:
            _add(dest[0], dest[1], val)
        except _OpFailed as e:
            raise _OpFailed(f"error in {kind} for path: '{path}': {e}") from None
        return
    found = _find_object(doc, path)
    if found is None:
        if kind == "test":
            raise _wrap(f"test operation does not apply: is missing path: {path}", _MISSING)
        quoted = f'"{path}"' if kind in ("add", "remove") else path
        raise _wrap(f"{kind} operation does not apply: doc is missing path: {quoted}", _MISSING)
    con, key = found
    try:
        if kind == "add":
            _add(con, key, value)
        elif kind == "remove":
            _remove(con, key)
        elif kind == "replace":
            try:
                _get(con, key)
            except _OpFailed:
                raise _wrap(
                    f"replace operation does not apply: doc is missing key: {path}", _MISSING
                ) from None
            if isinstance(con, dict):
                con[key] = value
            else:
                con[_atoi(key) or 0] = value
        else:  # test
            have = _get(con, key)
            if have is _ABSENT:
                if value is None:
                    return
                raise _wrap(f"testing value {path} failed", "test failed")
            if not json_equal(have, value):
                raise _wrap(f"testing value {path} failed", "test failed")
    except _OpFailed as e:
        msg = str(e)
        if msg.startswith(("replace operation", "testing value", "test operation")):
            raise
        raise _OpFailed(f"error in {kind} for path: '{path}': {msg}") from None


def json_patch(target: Mapping[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch (a list of operations) to ``target`` and return the result."""
    if ops is None:  # a JSON null decodes to an empty patch
        return copy.deepcopy(dict(target))
    if not isinstance(ops, list):
        raise _decode_error(ops, "[]handlers.jsonPatchOp")
    for op in ops:
        if not isinstance(op, Mapping):
            raise _decode_error(op, "handlers.jsonPatchOp")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
            status=413,
            reason="RequestEntityTooLarge",
        )
    doc = copy.deepcopy(dict(target))
    for op in ops:
        try:
            _apply_op(doc, op)
        except _OpFailed as e:
            raise _invalid_generic(str(e)) from None
    return doc


# ============================================================================================
# Strategic merge patch
# ============================================================================================


@dataclass(frozen=True)
class _F:
    """Patch metadata of one struct field: the Go type of the value (or of list elements), the
    ``patchStrategy`` ("merge", "replace" or "") and the ``patchMergeKey``."""

    type: str | None = None
    strategy: str = ""
    key: str = ""


def _merge(key: str, type_: str | None = None) -> _F:
    return _F(type_, "merge", key)


_TEMPLATE = {"metadata": _F("ObjectMeta"), "spec": _F("PodSpec")}
_CONDITIONS = {"conditions": _merge("type")}

# Go struct name -> json field -> metadata. Fields not listed carry no strategy (maps merge,
# lists are replaced), exactly as untagged Go fields.
_TYPES: dict[str, dict[str, _F]] = {
    "ObjectMeta": {"ownerReferences": _merge("uid"), "finalizers": _F(None, "merge")},
    "PodTemplateSpec": _TEMPLATE,
    "PodSpec": {
        "volumes": _merge("name"),
        "initContainers": _merge("name", "Container"),
        "containers": _merge("name", "Container"),
        "ephemeralContainers": _merge("name", "Container"),
        "imagePullSecrets": _merge("name"),
        "hostAliases": _merge("ip"),
        "topologySpreadConstraints": _merge("topologyKey"),
        "resourceClaims": _merge("name"),
        "schedulingGates": _merge("name"),
    },
    "Container": {
        "ports": _merge("containerPort"),
        "env": _merge("name"),
        "volumeMounts": _merge("mountPath"),
        "volumeDevices": _merge("devicePath"),
    },
    "PodStatus": {
        **_CONDITIONS,
        "podIPs": _merge("ip"),
        "hostIPs": _merge("ip"),
        "resourceClaimStatuses": _merge("name"),
    },
    "WorkloadSpec": {"template": _F("PodTemplateSpec")},
    "Conditions": _CONDITIONS,
    "CronJobSpec": {"jobTemplate": _F("JobTemplateSpec")},
    "JobTemplateSpec": {"metadata": _F("ObjectMeta"), "spec": _F("WorkloadSpec")},
    "ServiceSpec": {"ports": _merge("port")},
    "NodeSpec": {"podCIDRs": _F(None, "merge")},
    "NodeStatus": {**_CONDITIONS, "addresses": _merge("type")},
}


def _root(spec: str | None = None, status: str | None = None, **extra: _F) -> dict[str, _F]:
    fields = {"metadata": _F("ObjectMeta"), **extra}
    if spec:
        fields["spec"] = _F(spec)
    if status:
        fields["status"] = _F(status)
    return fields


_META_ONLY = _root()
_WORKLOAD = _root("WorkloadSpec", "Conditions")

# (group, kind) -> root field table. The version does not change patch metadata for these kinds.
_KINDS: dict[tuple[str, str], dict[str, _F]] = {
    ("", "Pod"): _root("PodSpec", "PodStatus"),
    ("", "PodTemplate"): _root(template=_F("PodTemplateSpec")),
    ("", "ReplicationController"): _WORKLOAD,
    ("", "Service"): _root("ServiceSpec", "Conditions"),
    ("", "ConfigMap"): _META_ONLY,
    ("", "Secret"): _META_ONLY,
    ("", "ServiceAccount"): _root(secrets=_merge("name")),
    ("", "Namespace"): _root(None, "Conditions"),
    ("", "Node"): _root("NodeSpec", "NodeStatus"),
    ("", "Event"): _META_ONLY,
    ("", "Endpoints"): _META_ONLY,
    ("", "PersistentVolumeClaim"): _root(None, "Conditions"),
    ("", "PersistentVolume"): _META_ONLY,
    ("", "LimitRange"): _META_ONLY,
    ("", "ResourceQuota"): _META_ONLY,
    ("apps", "Deployment"): _WORKLOAD,
    ("apps", "ReplicaSet"): _WORKLOAD,
    ("apps", "StatefulSet"): _WORKLOAD,
    ("apps", "DaemonSet"): _WORKLOAD,
    ("apps", "ControllerRevision"): _META_ONLY,
    ("batch", "Job"): _WORKLOAD,
    ("batch", "CronJob"): _root("CronJobSpec"),
    ("coordination.k8s.io", "Lease"): _META_ONLY,
    ("events.k8s.io", "Event"): _META_ONLY,
    ("rbac.authorization.k8s.io", "Role"): _META_ONLY,
    ("rbac.authorization.k8s.io", "ClusterRole"): _META_ONLY,
    ("rbac.authorization.k8s.io", "RoleBinding"): _META_ONLY,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _META_ONLY,
    ("policy", "PodDisruptionBudget"): _root(None, "Conditions"),
    ("networking.k8s.io", "Ingress"): _META_ONLY,
    ("networking.k8s.io", "NetworkPolicy"): _META_ONLY,
    ("discovery.k8s.io", "EndpointSlice"): _META_ONLY,
    ("autoscaling", "HorizontalPodAutoscaler"): _root(None, "Conditions"),
    ("scheduling.k8s.io", "PriorityClass"): _META_ONLY,
    ("storage.k8s.io", "StorageClass"): _META_ONLY,
}


def _group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def supports_strategic_merge(api_version: str, kind: str) -> bool:
    """True when :func:`strategic_merge_patch` knows the kind's patch metadata."""
    return (_group_of(api_version), kind) in _KINDS


def patch_strategy(api_version: str, kind: str, path: tuple[str, ...] | list[str]) -> tuple[str, str]:
    """``(patchStrategy, patchMergeKey)`` of the field at ``path`` (struct field names only; list
    elements are transparent) of a built-in kind; ``("", "")`` when untagged or unknown."""
    fields: dict[str, _F] | None = _KINDS.get((_group_of(api_version), kind))
    found = _F()
    for name in path:
        if fields is None or name not in fields:
            return "", ""
        found = fields[name]
        fields = _TYPES.get(found.type) if found.type else None
    return found.strategy, found.key


class _Schema:
    """A node in the patch-metadata tree: a struct (fields table) or unknown (no metadata)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, _F] | None) -> None:
        self.fields = fields

    def lookup(self, key: str) -> tuple[_Schema, str, str]:
        f = (self.fields or {}).get(key)
        if f is None:
            return _Schema(None), "", ""
        return _Schema(_TYPES.get(f.type) if f.type else None), f.strategy, f.key


_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList"
_SET_ORDER = "$setElementOrder"


class _SMPError(Exception):
    def __init__(self, message: str, status: int = 500, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _bad_format(message: str) -> _SMPError:
    return _SMPError(message, 400, "BadRequest")


def _go_fmt(v: Any) -> str:
    """Go's %v for decoded JSON values (used only inside error messages)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{k}:{_go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_fmt(x) for x in v) + "]"
    return str(v)


def _skey(v: Any) -> tuple[str, Any]:
    """Hashable identity of a JSON scalar as Go's interface{} == sees it (numbers are float64)."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int | float):
        return ("n", float(v))
    if isinstance(v, str):
        return ("s", v)
    if v is None:
        return ("z", None)
    return ("x", json.dumps(v, sort_keys=True))


def _kind_of(v: Any) -> str:
    if isinstance(v, Mapping):
        return "map"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "float64"
    return "nil"


def _slice_element_kind(*slices: list[Any]) -> str:
    prev: str | None = None
    for s in slices:
        for v in s:
            cur = _kind_of(v)
            if prev is None:
                prev = cur
                if cur == "slice":
                    raise _SMPError("lists of lists are not supported", 422, "Invalid")
            elif prev != cur:
                raise _SMPError(f"list element types are not identical: {_go_fmt(list(slices))}")
    if prev is None:
        raise _SMPError("no elements in any of the given slices")
    return prev


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], schema: _Schema) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            return {k: v for k, v in patch.items() if k != _DIRECTIVE}
        if directive == "delete":
            return {}
        raise _SMPError(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_order(original, patch, schema)

    # Deletion lists first, then the rest (Go iterates a map: any order gives the same result
    # because a key is never both added and deleted by a well-formed patch).
    items = sorted(patch.items(), key=lambda kv: not kv[0].startswith(_DELETE_PRIMITIVE + "/"))
    for raw_key, patch_v in items:
        k = raw_key
        is_delete_list = False
        if raw_key.startswith(_DELETE_PRIMITIVE):
            k = _extract_key(raw_key, _DELETE_PRIMITIVE)
            is_delete_list = True
        if patch_v is None:
            original.pop(k, None)
            continue
        sub, strategy, merge_key = schema.lookup(k)
        if k not in original:
            if not is_delete_list:  # deleting from a list the object lacks changes nothing
                original[k] = _fresh(patch_v, sub)
            continue
        orig_v = original[k]
        if _kind_of(orig_v) != _kind_of(patch_v):
            original[k] = _fresh(patch_v, sub)
        elif isinstance(orig_v, dict):
            original[k] = _fresh(patch_v, sub) if strategy == "replace" else _merge_map(orig_v, patch_v, sub)
        elif isinstance(orig_v, list) and strategy == "merge":
            original[k] = _merge_slice(orig_v, patch_v, sub, merge_key, is_delete_list)
        else:
            original[k] = _fresh(patch_v, sub)
    return original


def _fresh(value: Any, schema: _Schema) -> Any:
    """A patch value taken where the object has nothing to merge with, cleaned as kube-apiserver
    leaves it: map directives are applied against nothing, list elements carrying ``$patch`` are
    dropped, nulls of object fields are dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema)
    if isinstance(value, list):
        return [_fresh(v, schema) if isinstance(v, dict) else v for v in value if not _is_directive_item(v)]
    return value


def _is_directive_item(v: Any) -> bool:
    return isinstance(v, dict) and _DIRECTIVE in v


def _extract_key(s: str, prefix: str) -> str:
    parts = s.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        if prefix == _DELETE_PRIMITIVE:
            raise _bad_format("invalid patch format of primitive list")
        raise _bad_format("invalid patch format of setElementOrder list")
    return parts[1]


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _bad_format("invalid patch format of retainKeys")
    keep = {_skey(x) for x in retain}
    for k, v in patch.items():
        if v is None or k.startswith((_DELETE_PRIMITIVE, _SET_ORDER)):
            continue
        if _skey(k) not in keep:
            raise _bad_format("invalid patch format of retainKeys")
    for k in list(original):
        if _skey(k) not in keep:
            del original[k]


def _merge_set_element_order(original: dict[str, Any], patch: dict[str, Any], schema: _Schema) -> None:
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _SMPError(f"expected a []interface {{}}, but received a {_kind_of(order)}")
        orig_key = _extract_key(key, _SET_ORDER)
        found_original = orig_key in original
        found_patch = orig_key in patch
        orig_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(original[orig_key], list):
                raise _SMPError(f"expected a []interface {{}}, but received a {_kind_of(original[orig_key])}")
            orig_list = original[orig_key]
        if found_patch:
            if not isinstance(patch[orig_key], list):
                raise _SMPError(f"expected a []interface {{}}, but received a {_kind_of(patch[orig_key])}")
            patch_list = patch[orig_key]
        sub, strategy, merge_key = schema.lookup(orig_key)
        _validate_set_order(patch_list, order, merge_key)
        if found_original and not found_patch:
            merged = orig_list
        elif found_patch and not found_original:
            merged = patch_list
        elif found_original and found_patch:
            merged = (
                _merge_slice(orig_list, patch_list, sub, merge_key, False)
                if strategy == "merge"
                else patch_list
            )
        else:
            continue
        kind = _slice_element_kind(orig_list, patch_list) if (orig_list or patch_list) else "map"
        patch_items, server_only = _partition(merged, order, merge_key if kind == "map" else "")
        original[orig_key] = _normalize_element_order(
            patch_items, server_only, order, orig_list, merge_key if kind == "map" else ""
        )
        patch.pop(orig_key, None)


def _merge_key_value(item: Any, merge_key: str) -> Any:
    if not isinstance(item, dict):
        raise _SMPError(f"expected a map[string]interface {{}}, but received a {_kind_of(item)}")
    if merge_key not in item:
        raise _SMPError(f"map: {_go_fmt(item)} does not contain declared merge key: {merge_key}")
    return item[merge_key]


def _identity(item: Any, merge_key: str) -> tuple[str, Any]:
    if merge_key:
        return _skey(item.get(merge_key) if isinstance(item, dict) else None)
    return _skey(item)


def _validate_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    if not order or not patch_list:
        return
    non_delete = patch_list
    if merge_key:
        non_delete = []
        for v in patch_list:
            if not isinstance(v, dict):
                raise _SMPError(f"expected a map[string]interface {{}}, but received a {_kind_of(v)}")
            if v.get(_DIRECTIVE) != "delete":
                non_delete.append(v)
    pi = oi = 0
    while pi < len(non_delete) and oi < len(order):
        item = non_delete[pi]
        if isinstance(item, dict) and _DIRECTIVE in item:
            pi += 1
            continue
        if merge_key:
            equal = _skey(_merge_key_value(item, merge_key)) == _skey(_merge_key_value(order[oi], merge_key))
        else:
            equal = _skey(item) == _skey(order[oi])
        if equal:
            pi += 1
        oi += 1
    if pi < len(non_delete) and oi >= len(order):
        raise _SMPError(
            f"The order in patch list:\n{_go_fmt(patch_list)}\n "
            f"doesn't match {_SET_ORDER} list:\n{_go_fmt(order)}\n"
        )


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    wanted = set()
    for v in by:
        if merge_key:
            if isinstance(v, dict) and merge_key in v:
                wanted.add(_skey(v[merge_key]))
        else:
            wanted.add(_skey(v))
    patch_items: list[Any] = []
    server_only: list[Any] = []
    for v in merged:
        ident = _skey(_merge_key_value(v, merge_key)) if merge_key else _skey(v)
        (patch_items if ident in wanted else server_only).append(v)
    return patch_items, server_only


def _normalize_element_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
) -> list[Any]:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key)
    server_only = _normalize_slice_order(server_only, server_order, merge_key)
    index: dict[tuple[str, Any], int] = {}
    for i, v in enumerate(server_order):
        index.setdefault(_identity(v, merge_key), i)
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            out.append(patch_items[j])
            j += 1
        elif j >= len(patch_items):
            out.append(server_only[i])
            i += 1
        else:
            li = index.get(_identity(server_only[i], merge_key))
            ri = index.get(_identity(patch_items[j], merge_key))
            if li is not None and ri is not None and li < ri:
                out.append(server_only[i])
                i += 1
            else:
                out.append(patch_items[j])
                j += 1
    return out


def _normalize_slice_order(to_sort: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    to_delete: list[Any] = []
    if merge_key:
        for v in [*to_sort, *order]:
            _merge_key_value(v, merge_key)
        to_delete = [v for v in to_sort if v.get(_DIRECTIVE) == "delete"]
        to_sort = [v for v in to_sort if v.get(_DIRECTIVE) != "delete"]
    index: dict[tuple[str, Any], int] = {}
    for i, v in enumerate(order):
        index.setdefault(_identity(v, merge_key), i)
    big = len(order)
    ranked = sorted(enumerate(to_sort), key=lambda p: (index.get(_identity(p[1], merge_key), big), p[0]))
    return [v for _, v in ranked] + to_delete


def _merge_slice(
    original: list[Any], patch: list[Any], schema: _Schema, merge_key: str, is_delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _slice_element_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            drop = {_skey(v) for v in patch}
            return [v for v in original if _skey(v) not in drop]
        merged: list[Any] = []
        seen: set[tuple[str, Any]] = set()
        for v in [*original, *patch]:
            if _skey(v) not in seen:
                seen.add(_skey(v))
                merged.append(v)
        patch_items, server_only = _partition(merged, patch, "")
        return _normalize_element_order(patch_items, server_only, patch, original, "")
    if not merge_key:
        raise _SMPError("cannot merge lists without merge key for type map")
    original, patch = _merge_special_elements(original, patch, merge_key)
    merged = list(original)
    for v in patch:
        value = _merge_key_value(v, merge_key)
        for idx, existing in enumerate(merged):
            if not isinstance(existing, dict):
                raise _SMPError(f"value for key {idx} is not a map.")
            if merge_key in existing and _skey(existing[merge_key]) == _skey(value):
                merged[idx] = _merge_map(existing, v, schema)
                break
        else:
            merged.append(_merge_map({}, v, schema))
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key)


def _merge_special_elements(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    plain: list[Any] = []
    replace = False
    for v in patch:
        if _DIRECTIVE not in v:
            plain.append(v)
            continue
        directive = v[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in v:
                raise _SMPError(f"map: {_go_fmt(v)} does not contain declared merge key: {merge_key}")
            target = _skey(v[merge_key])
            original = [
                o
                for o in original
                if not (isinstance(o, dict) and merge_key in o and _skey(o[merge_key]) == target)
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            raise _SMPError(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(v)}")
    if replace:
        return plain, []
    return original, plain


def strategic_merge_patch(
    target: Mapping[str, Any],
    patch: Any,
    *,
    api_version: str,
    kind: str,
    allow_unknown_kinds: bool = False,
) -> dict[str, Any]:
    """Apply a strategic merge patch to ``target``, an object of ``api_version``/``kind``."""
    fields = _KINDS.get((_group_of(api_version), kind))
    if fields is None:
        if not allow_unknown_kinds:
            raise PatchError(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{_PATCH_MEDIA_TYPES}",
                status=415,
                reason="UnsupportedMediaType",
            )
        fields = _META_ONLY
    if patch is None:
        patch = {}
    if not isinstance(patch, Mapping):
        raise _decode_error_plain(patch)
    try:
        return _merge_map(copy.deepcopy(dict(target)), copy.deepcopy(dict(patch)), _Schema(fields))
    except _SMPError as e:
        message = _GENERIC_422 if e.status == 422 else str(e)
        raise PatchError(message, status=e.status, reason=e.reason, detail=str(e)) from None
