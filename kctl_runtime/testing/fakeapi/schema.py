"""Structural-schema validation, defaulting and pruning of custom resources, as kube-apiserver does.

Contract
--------
* :func:`validate` checks an object against a CRD ``openAPIV3Schema`` the way apiextensions-apiserver
  does (kube-openapi validators, then ``kubeOpenAPIResultToFieldErrors``) and returns
  :class:`Cause` items: per schema node, type, composition (allOf/anyOf/oneOf/not), string (first
  failure of maxLength, minLength, pattern only), format, number, array (items first, then sizes),
  enum, object (properties in schema order -- upstream iterates a Go map, so its order varies --
  then ``required``). Field paths look like the real ones (``spec.ports[0].port``); errors that
  upstream reports without a field (anyOf/oneOf/allOf/not, numeric range) carry ``<nil>``.
  Messages are the upstream texts, e.g. ``Invalid value: "string": spec.replicas in body must be
  of type integer: "string"`` or ``Unsupported value: "x": supported values: "a", "b"``; they were
  checked against kube-apiserver v1.36.3.
* Patterns are matched as Go's ``regexp`` matches them: ``\\s``, ``\\d``, ``\\w``, ``\\b`` are ASCII-only.
* Formats: numbers and numeric bounds are range-checked against ``int32``/``uint32``/``uint64``/
  ``int64``/``float`` (``Checked value must be of type integer with format int32 in ...``); the
  string formats ``date-time``, ``date``, ``byte``, ``uuid``, ``ipv4``, ``ipv6``, ``cidr``,
  ``hostname``, ``email``, ``mac`` are checked; unknown formats are ignored.
* :func:`apply_defaults` returns a copy with structural ``default`` values filled in (recursively,
  defaults are themselves defaulted), nulls of non-nullable fields replaced by their default, and
  nulls of non-nullable fields without default dropped, as the apiserver does when it decodes a
  custom resource (create, update and read from storage).
* :func:`prune` returns a copy without fields the schema does not specify, except below
  ``x-kubernetes-preserve-unknown-fields: true``. ``apiVersion``, ``kind`` and ``metadata`` of the
  root and of ``x-kubernetes-embedded-resource`` objects are kept; those metadata keep only
  ObjectMeta fields.
* :func:`status_invalid` builds the 422 ``Status`` body of ``errors.NewInvalid``.

Not modelled: CEL ``x-kubernetes-validations``, validation ratcheting, ``$ref``, and
``x-kubernetes-list-type`` uniqueness checks.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import functools
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._values import go_quote, json_equal

__all__ = ["Cause", "apply_defaults", "format_causes", "prune", "status_invalid", "validate"]


@dataclass(frozen=True)
class Cause:
    """One ``metav1.StatusCause``: ``reason`` is the field.ErrorType (``FieldValueRequired``, ...),
    ``field`` the path, ``message`` the error body without the field (``Required value``)."""

    reason: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


# --------------------------------------------------------------------------------------------
# Go value formatting (field.Error.ErrorBody)
# --------------------------------------------------------------------------------------------


def _go_float(f: float) -> str:
    """Go's ``%v`` of a float64 (``%g`` with the shortest representation)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits_t, exp = Decimal(repr(f)).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    assert isinstance(exp, int)
    dp = len("".join(map(str, digits_t))) + exp  # position of the decimal point
    neg = "-" if sign else ""
    x = dp - 1
    if x < -4 or x >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return f"{neg}{digits}{'0' * (dp - len(digits))}"
    return f"{neg}{digits[:dp]}.{digits[dp:]}"


def _go_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return go_quote(v)
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def _go_v(v: Any) -> str:
    """Go's ``%v`` for numbers in messages (no quoting)."""
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _bytes(n: int) -> str:
    return "byte" if n == 1 else "bytes"


def _required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def _invalid(field: str, value: Any, detail: str, reason: str = "FieldValueInvalid") -> Cause:
    return Cause(reason, field, f"Invalid value: {_go_value(value)}: {detail}")


def _not_supported(field: str, value: Any, allowed: Sequence[Any]) -> Cause:
    values = [a if isinstance(a, str) else json.dumps(a, separators=(",", ":")) for a in allowed]
    detail = "supported values: " + ", ".join(go_quote(x) for x in values) if values else ""
    return Cause(
        "FieldValueNotSupported",
        field,
        f"Unsupported value: {_go_value(value)}" + (f": {detail}" if detail else ""),
    )


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, Mapping):
        return "object"
    return "null"


def _types(schema: Mapping[str, Any]) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    t = schema.get("type")
    if isinstance(t, str) and t:
        return [t]
    if isinstance(t, list):
        return [str(x) for x in t]
    return []


def _err_field(root: str, name: str) -> str:
    """kubeOpenAPIResultToFieldErrors: fldPath.Child(TrimPrefix(name, "."))."""
    if name and name != ".":
        child = name.removeprefix(".")
        return f"{root}.{child}" if root else child
    return root or "<nil>"


class _Validator:
    def __init__(self, root: str) -> None:
        self.root = root
        self.causes: list[Cause] = []

    def field(self, name: str) -> str:
        return _err_field(self.root, name)

    def type_error(self, name: str, type_name: str, value: str) -> Cause:
        detail = f"{name} in body must be of type {type_name}: {go_quote(value)}"
        return _invalid(self.field(name), value, detail, "FieldValueTypeInvalid")

    def run(self, data: Any, schema: Any, path: str) -> list[Cause]:
        out: list[Cause] = []
        if not isinstance(schema, Mapping):  # a malformed sub-schema validates nothing
            return out
        types = _types(schema)
        nullable = bool(schema.get("nullable"))
        if data is None:
            if types and "null" not in types and not nullable:
                out.append(self.type_error(path, ",".join(types), "null"))
            out.extend(self._enum(data, schema, path))
            return out
        out.extend(self._type(data, schema, types, path))
        out.extend(self._composition(data, schema, path))
        if isinstance(data, str):
            out.extend(self._string(data, schema, path))
            out.extend(self._format(data, schema, path))
        if isinstance(data, int | float) and not isinstance(data, bool):
            out.extend(self._number(data, schema, types, path))
        if isinstance(data, list):
            out.extend(self._array(data, schema, path))
        out.extend(self._enum(data, schema, path))
        if isinstance(data, Mapping):
            out.extend(self._object(data, schema, path))
        return out

    def _type(self, data: Any, schema: Mapping[str, Any], types: list[str], path: str) -> list[Cause]:
        actual, data_format = _type_info(data)
        fmt = schema.get("format") or ""
        float_int = actual == "number" and float(data).is_integer() and "integer" in types
        int_float = actual == "integer" and "number" in types
        # a number (or object, bool) is checked against the declared format first
        format_ok = actual in types or data_format == fmt or float_int or int_float
        if fmt and not isinstance(data, str | list) and not format_ok:
            return [self.type_error(path, str(fmt), data_format)]
        if not types:
            return []
        if isinstance(data, str | list) and fmt and "number" not in types and "integer" not in types:
            return []
        if actual in types or float_int or int_float:
            return []
        return [self.type_error(path, ",".join(types), actual)]

    def _composition(self, data: Any, schema: Mapping[str, Any], path: str) -> list[Cause]:
        out: list[Cause] = []
        where = "<nil>" if not self.root else self.root
        any_of = schema.get("anyOf") or []
        if any_of:
            results = [self.run(data, s, path) for s in any_of]
            if not any(not r for r in results):
                out.append(_invalid(where, "", f"{go_quote(path)} must validate at least one schema (anyOf)"))
                out.extend(_fewest(results))
        one_of = schema.get("oneOf") or []
        if one_of:
            results = [self.run(data, s, path) for s in one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                extra = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                out.append(
                    _invalid(
                        where, "", f"{go_quote(path)} must validate one and only one schema (oneOf). {extra}"
                    )
                )
                if valid == 0:
                    out.extend(_fewest(results))
        all_of = schema.get("allOf") or []
        if all_of:
            results = [self.run(data, s, path) for s in all_of]
            for r in results:
                out.extend(r)
            ok = sum(1 for r in results if not r)
            if ok != len(all_of):
                extra = ". None validated" if ok == 0 else ""
                out.append(
                    _invalid(where, "", f"{go_quote(path)} must validate all the schemas (allOf){extra}")
                )
        not_schema = schema.get("not")
        if isinstance(not_schema, Mapping) and not self.run(data, not_schema, path):
            out.append(_invalid(where, "", f"{go_quote(path)} must not validate the schema (not)"))
        return out

    def _string(self, data: str, schema: Mapping[str, Any], path: str) -> list[Cause]:
        """maxLength, minLength, pattern: only the first failure is reported, as upstream."""
        length = len(data)
        max_len = schema.get("maxLength")
        if isinstance(max_len, int) and length > max_len:
            # field.TooLong of current apimachinery; releases before 1.32 said "may not be longer than N"
            message = f"Too long: may not be more than {max_len} {_bytes(max_len)}"
            return [Cause("FieldValueTooLong", self.field(path), message)]
        min_len = schema.get("minLength")
        if isinstance(min_len, int) and length < min_len:
            return [
                _invalid(self.field(path), data, f"{path} in body should be at least {min_len} chars long")
            ]
        pattern = schema.get("pattern")
        compiled = _compile(pattern) if isinstance(pattern, str) else None
        if compiled is not None and not compiled.search(data):
            return [_invalid(self.field(path), data, f"{path} in body should match '{pattern}'")]
        return []

    def _format(self, data: str, schema: Mapping[str, Any], path: str) -> list[Cause]:
        fmt = schema.get("format")
        check = _FORMATS.get(fmt) if isinstance(fmt, str) else None
        if check is None or check(data):
            return []
        detail = f"{path} in body must be of type {fmt}: {go_quote(data)}"
        return [_invalid(self.field(path), data, detail, "FieldValueTypeInvalid")]

    def _number(self, data: float, schema: Mapping[str, Any], types: list[str], path: str) -> list[Cause]:
        """kube-openapi's numberValidator: the value and each bound must fit the declared
        type/format (else a ``<nil>``-field error); a bound that fits is compared natively (as an
        integer for integer values), one that does not as a float."""
        out: list[Cause] = []
        where = self.root or "<nil>"
        type_name = "integer" if "integer" in types else ("number" if "number" in types else "")
        fmt = str(schema.get("format") or "")

        def range_error(value: float, prefix: str) -> bool:
            message = _range_error(value, type_name, fmt, prefix, path)
            if message:
                out.append(_invalid(where, "", message))
            return message is not None

        range_error(data, "Checked")
        field = self.field(path)
        native_int = isinstance(data, int)
        mult = _number_value(schema.get("multipleOf"))
        if mult is not None:
            bad_bound = range_error(mult, "MultipleOf factor")
            if mult < 0:
                out.append(
                    _invalid(
                        field, mult, f"factor MultipleOf declared for {path} must be positive: {_go_v(mult)}"
                    )
                )
            elif mult > 0:
                if native_int and not bad_bound:
                    factor: float = int(mult)
                    fails = factor != 0 and int(data) % int(factor) != 0
                else:
                    factor = float(mult)
                    q = (1 / factor * data) if factor < 1 else data / factor
                    fails = not float(q).is_integer()
                if fails:
                    out.append(
                        _invalid(field, data, f"{path} in body should be a multiple of {_go_v(factor)}")
                    )
        for key, excl_key, prefix in (
            ("minimum", "exclusiveMinimum", "Minimum boundary"),
            ("maximum", "exclusiveMaximum", "Maximum boundary"),
        ):
            bound = _number_value(schema.get(key))
            if bound is None:
                continue
            bad_bound = range_error(bound, prefix)
            limit: float = int(bound) if native_int and not bad_bound else float(bound)
            excl = bool(schema.get(excl_key))
            if key == "minimum" and (data < limit or (excl and data == limit)):
                how = "greater than" if excl else "greater than or equal to"
                out.append(_invalid(field, data, f"{path} in body should be {how} {_go_v(limit)}"))
            if key == "maximum" and (data > limit or (excl and data == limit)):
                how = "less than" if excl else "less than or equal to"
                out.append(_invalid(field, data, f"{path} in body should be {how} {_go_v(limit)}"))
        return out

    def _array(self, data: list[Any], schema: Mapping[str, Any], path: str) -> list[Cause]:
        out: list[Cause] = []
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, v in enumerate(data):
                out.extend(self.run(v, items, f"{path}[{i}]"))
        elif isinstance(items, list):
            for i, (v, s) in enumerate(zip(data, items, strict=False)):
                out.extend(self.run(v, s, f"{path}[{i}]"))
        size = len(data)
        min_items = schema.get("minItems")
        if isinstance(min_items, int) and size < min_items:
            out.append(
                _invalid(self.field(path), size, f"{path} in body should have at least {min_items} items")
            )
        max_items = schema.get("maxItems")
        if isinstance(max_items, int) and size > max_items:
            out.append(
                Cause(
                    "FieldValueTooMany",
                    self.field(path),
                    f"Too many: {size}: must have at most {max_items} items",
                )
            )
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for v in data:
                if any(json_equal(v, s) for s in seen):
                    out.append(_invalid(self.field(path), "", f"{path} in body shouldn't contain duplicates"))
                    break
                seen.append(v)
        return out

    def _enum(self, data: Any, schema: Mapping[str, Any], path: str) -> list[Cause]:
        enum = schema.get("enum")
        if not isinstance(enum, list) or not enum:
            return []
        if any(json_equal(data, e) for e in enum):
            return []
        return [_not_supported(self.field(path), data, enum)]

    def _object(self, data: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> list[Cause]:
        out: list[Cause] = []
        n = len(data)
        min_props = schema.get("minProperties")
        if isinstance(min_props, int) and n < min_props:
            return [
                _invalid(
                    self.field(path), min_props, f"{path} in body should have at least {min_props} properties"
                )
            ]
        max_props = schema.get("maxProperties")
        if isinstance(max_props, int) and n > max_props:
            return [
                Cause(
                    "FieldValueTooMany",
                    self.field(path),
                    f"Too many: {n}: must have at most {max_props} items",
                )
            ]
        props = _props(schema)
        additional = schema.get("additionalProperties")
        for k, v in data.items():
            if k in props:
                continue
            if additional is False:
                out.append(_invalid(self.field(path), k, f"{path}.{k} in body is a forbidden property"))
            elif isinstance(additional, Mapping):
                out.extend(self.run(v, additional, f"{path}.{k}"))
        for name, sub in props.items():
            if name in data and isinstance(sub, Mapping):
                out.extend(self.run(data[name], sub, f"{path}.{name}" if path else name))
        required = schema.get("required")
        for name in required if isinstance(required, list) else []:
            if name not in data:
                out.append(_required(self.field(f"{path}.{name}")))
        if schema.get("x-kubernetes-embedded-resource"):
            for key in ("apiVersion", "kind"):
                if not data.get(key):
                    out.append(_required(self.field(f"{path}.{key}")))
        return out


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    """Compile a ``pattern`` as far as Python's ``re`` can; ``None`` (skip the check) when it cannot,
    since the real server would have rejected such a CRD or understands it differently.

    kube-apiserver matches with Go's ``regexp`` (RE2), whose ``\\s``, ``\\d``, ``\\w`` and ``\\b`` are
    ASCII-only (a non-breaking space is not ``\\s``): ``re.ASCII`` gives Python's the same meaning.
    """
    try:
        return re.compile(pattern, re.ASCII)
    except re.error:
        return None


def _type_info(data: Any) -> tuple[str, str]:
    """JSON type and Go format kube-openapi infers for a decoded value."""
    actual = _json_type(data)
    return actual, {"integer": "int64", "number": "float64"}.get(actual, "")


def _number_value(v: Any) -> float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1)}
_FLOAT32_MAX = 3.4028234663852886e38


def _go_float_f(v: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    if math.isnan(v) or math.isinf(v):
        return _go_float(v)
    text = format(Decimal(repr(v)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _range_error(value: float, type_name: str, fmt: str, prefix: str, path: str) -> str | None:
    """IsValueValidAgainstRange: whether ``value`` fits ``type_name``/``fmt``; the message if not."""
    text = str(value) if isinstance(value, int) else _go_float_f(value)
    ok = True
    if type_name == "integer":
        lo, hi = _INT_RANGES.get(fmt, (-(2**63), 2**63 - 1))
        ok = re.fullmatch(r"-?[0-9]+", text) is not None and lo <= int(text) <= hi
    elif fmt in ("float", "float32"):
        ok = abs(float(value)) <= _FLOAT32_MAX
    if ok:
        return None
    if fmt:
        return f"{prefix} value must be of type {type_name} with format {fmt} in {path}"
    return f"{prefix} value must be of type {type_name} (default format) in {path}"


def _fewest(results: list[list[Cause]]) -> list[Cause]:
    """The failures of the alternative that came closest (upstream picks the highest match count)."""
    best = results[0]
    for r in results[1:]:
        if len(r) < len(best):
            best = r
    return best


def _is_date_time(s: str) -> bool:
    m = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?", s
    )
    if not m:
        return False
    try:
        _dt.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0))
    except ValueError:
        return False
    return True


def _is_date(s: str) -> bool:
    try:
        _dt.date.fromisoformat(s)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", s) is not None


def _is_byte(s: str) -> bool:
    try:
        base64.b64decode(s, validate=True)
    except ValueError:
        return False
    return True


def _is_uuid(s: str) -> bool:
    if not re.fullmatch(
        r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}", s
    ):
        return False
    uuid.UUID(s)
    return True


def _ip_check(kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        try:
            kind(s)
        except ValueError:
            return False
        return True

    return check


def _is_cidr(s: str) -> bool:
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False
    return "/" in s


_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _is_date_time,
    "datetime": _is_date_time,
    "date": _is_date,
    "byte": _is_byte,
    "uuid": _is_uuid,
    "ipv4": _ip_check(ipaddress.IPv4Address),
    "ipv6": _ip_check(ipaddress.IPv6Address),
    "cidr": _is_cidr,
    "hostname": lambda s: (
        re.fullmatch(
            r"(?=.{1,255}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?",
            s,
        )
        is not None
    ),
    "email": lambda s: re.fullmatch(r"[^@\s]+@[^@\s]+", s) is not None,
    "mac": lambda s: re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}", s) is not None,
}


def validate(obj: Any, schema: Mapping[str, Any], *, path: str = "") -> list[Cause]:
    """Validate ``obj`` against the structural ``schema``; ``path`` prefixes every field path."""
    return _Validator(path).run(obj, schema, "")


def format_causes(causes: Sequence[Cause]) -> str:
    """``field.ErrorList.ToAggregate().Error()``: one cause as is, several as ``[a, b]`` (deduplicated)."""
    msgs: list[str] = []
    for c in causes:
        if str(c) not in msgs:
            msgs.append(str(c))
    if len(msgs) == 1:
        return msgs[0]
    return "[" + ", ".join(msgs) + "]"


def status_invalid(*, group: str, kind: str, name: str, causes: Sequence[Cause]) -> dict[str, Any]:
    """The ``metav1.Status`` body of ``errors.NewInvalid(GroupKind{group, kind}, name, causes)``."""
    qualified = f"{kind}.{group}" if group else kind
    message = f"{qualified} {go_quote(name)} is invalid"
    if causes:
        message += ": " + format_causes(causes)
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = [c.to_dict() for c in causes]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    }


# --------------------------------------------------------------------------------------------
# defaulting
# --------------------------------------------------------------------------------------------


def _props(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    props = (schema or {}).get("properties")
    return props if isinstance(props, Mapping) else {}


def _additional(schema: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    a = (schema or {}).get("additionalProperties")
    return a if isinstance(a, Mapping) else None


def _non_nullable_null(v: Any, schema: Mapping[str, Any] | None) -> bool:
    return v is None and schema is not None and not schema.get("nullable") and "default" in schema


def _default(x: Any, schema: Mapping[str, Any] | None) -> Any:
    if schema is None:
        return x
    if isinstance(x, dict):
        props = _props(schema)
        for k, prop in props.items():
            if not isinstance(prop, Mapping) or "default" not in prop:
                continue
            if k not in x or _non_nullable_null(x[k], prop):
                x[k] = copy.deepcopy(prop["default"])
        add = _additional(schema)
        for k in list(x):
            v = x[k]
            sub = props.get(k)
            if not isinstance(sub, Mapping):
                sub = None
            if sub is None and add is not None:
                if _non_nullable_null(v, add):
                    x[k] = copy.deepcopy(add["default"])
                sub = add
            if sub is not None:
                if v is None and not sub.get("nullable") and "default" not in sub:
                    del x[k]  # PruneNonNullableNullsWithoutDefaults
                    continue
                x[k] = _default(x[k], sub)
    elif isinstance(x, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, v in enumerate(x):
                if _non_nullable_null(v, items):
                    x[i] = copy.deepcopy(items["default"])
                x[i] = _default(x[i], items)
    return x


def apply_defaults(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with the schema's ``default`` values applied (see module contract)."""
    out = _default(copy.deepcopy(dict(obj)), schema)
    assert isinstance(out, dict)
    return out


# --------------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------------

_OBJECT_META_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
        "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip


def _prune_meta(meta: dict[str, Any]) -> None:
    for k in [k for k in meta if k not in _OBJECT_META_FIELDS]:
        del meta[k]


def _prune(x: Any, schema: Mapping[str, Any] | None, embedded: bool = False) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(x, schema, embedded or bool(schema.get("x-kubernetes-embedded-resource")))
        return
    if isinstance(x, dict):
        if schema is None:
            x.clear()
            return
        embedded = embedded or bool(schema.get("x-kubernetes-embedded-resource"))
        props = _props(schema)
        add = schema.get("additionalProperties")
        for k in list(x):
            v = x[k]
            if embedded and k in ("apiVersion", "kind") and isinstance(v, str):
                continue
            if embedded and k == "metadata" and isinstance(v, dict):
                _prune_meta(v)
                continue
            if k in props:
                _prune(v, props[k] if isinstance(props[k], Mapping) else {})
            elif isinstance(add, Mapping):
                _prune(v, add)
            elif add is True:
                continue
            else:
                del x[k]
    elif isinstance(x, list):
        items = (schema or {}).get("items")
        for v in x:
            _prune(v, items if isinstance(items, Mapping) else None)


def _skip_prune(x: Any, schema: Mapping[str, Any], embedded: bool) -> None:
    if isinstance(x, dict):
        props = _props(schema)
        add = _additional(schema)
        for k, v in x.items():
            if embedded and k in ("apiVersion", "kind", "metadata"):
                if k == "metadata" and isinstance(v, dict):
                    _prune_meta(v)
                continue
            if k in props:
                _prune(v, props[k])
            elif add is not None:
                _prune(v, add)
    elif isinstance(x, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for v in x:
                _skip_prune(v, items, bool(items.get("x-kubernetes-embedded-resource")))


def prune(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` without the fields ``schema`` does not specify (see module contract)."""
    out = copy.deepcopy(dict(obj))
    _prune(out, schema, embedded=True)
    return out
