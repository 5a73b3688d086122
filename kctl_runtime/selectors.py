"""Label and field selectors with kube-apiserver semantics: the one parser of the runtime and the fake.

Contract
--------
* :func:`parse_label_selector` accepts exactly the grammar of apimachinery ``labels.Parse``:
  ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k`` (does not
  exist), ``k>1`` / ``k<1`` (integer comparison), comma-separated requirements that are ANDed,
  whitespace between tokens. Keys must be qualified names and values valid label values (at most
  63 bytes); violations raise :class:`SelectorError` (a ``ValueError``) with apimachinery's message
  text (``unable to parse requirement: ...``).
* ``!=`` and ``notin`` also match objects that do not carry the key, as in Kubernetes.
* Parsed label selectors are immutable and cached by their text (1,024 most recent).
* The empty selector matches everything. ``str(selector)`` renders the canonical form the Go code
  prints (requirements sorted by key, set values sorted); parsing it again gives an equal selector.
* :func:`label_selector_from_dict` converts a ``metav1.LabelSelector`` (``matchLabels`` and
  ``matchExpressions``) as ``metav1.LabelSelectorAsSelector`` does; ``None`` selects nothing and
  ``{}`` selects everything. ``LabelSelector.parse`` / ``LabelSelector.from_dict`` (a
  ``matchLabels`` mapping) are the same as methods.
* :func:`parse_field_selector` follows apimachinery ``fields.ParseSelector``: terms split on
  unescaped commas, operators ``=``, ``==``, ``!=``, values unescaped (``\\\\``, ``\\,``, ``\\=``).
  A field that the object does not have compares as the empty string, as the apiserver's field
  sets do.

Used by :mod:`kctl_runtime.predicates`, the cache-reading client and the fake API server (which
adds which fields each resource supports: ``kctl_runtime.testing.fakeapi.selectors``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kctl_runtime._gostrings import go_quote

__all__ = [
    "FieldSelector",
    "LabelRequirement",
    "LabelSelector",
    "SelectorError",
    "escape_field_value",
    "field_value",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
    "validate_label_key",
    "validate_label_value",
]


class SelectorError(ValueError):
    """A label or field selector that the apiserver would reject; ``str()`` is its message."""


# --------------------------------------------------------------------------------------------
# Go-compatible message helpers (apimachinery util/validation)
# --------------------------------------------------------------------------------------------


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{ex}', "
    return msg + f"regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} bytes"  # kube 1.36 wording; older releases said "characters"


_EMPTY_ERROR = "must be non-empty"

_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_FMT = f"({_LABEL_KEY_FMT})?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)


def _fullmatch_ascii(rx: re.Pattern[str], s: str) -> bool:
    # fullmatch, not '^...$': Python's '$' also matches before a trailing newline, Go's does not.
    return rx.fullmatch(s) is not None


def _is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value.encode()) > 253:
        errs.append(_max_len_error(253))
    if not _fullmatch_ascii(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def validate_label_key(key: str) -> list[str]:
    """Messages apimachinery ``IsLabelKey`` (qualified name) gives for ``key``; empty when valid."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + _EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in _is_dns1123_subdomain(prefix))
    else:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + _EMPTY_ERROR)
    elif len(name.encode()) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _fullmatch_ascii(_LABEL_KEY_RE, name):
        errs.append(
            "name part " + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def validate_label_value(value: str) -> list[str]:
    """Messages apimachinery ``IsValidLabelValue`` gives for ``value``; empty when valid."""
    errs: list[str] = []
    if len(value.encode()) > 63:
        errs.append(_max_len_error(63))
    if not _fullmatch_ascii(_LABEL_VALUE_RE, value):
        errs.append(_regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _invalid(path: str, value: str, detail: str) -> str:
    return f"{path}: Invalid value: {go_quote(value)}: {detail}"


def _aggregate(msgs: list[str]) -> str:
    # utilerrors.Aggregate: one message is itself, several are "[a, b]" (deduplicated, in order).
    seen: list[str] = []
    for m in msgs:
        if m not in seen:
            seen.append(m)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


# --------------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------------

_UNARY = ("exists", "!")
_BINARY = ("in", "notin", "=", "==", "!=", "gt", "lt")
_OPERATOR_WORDS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def _new_requirement(key: str, op: str, values: Iterable[str], path: str = "") -> LabelRequirement:
    """apimachinery ``labels.NewRequirement``: validates and returns, or raises the aggregate."""
    vals = list(values)
    errs: list[str] = []
    key_errs = validate_label_key(key)
    child = f"{path}." if path else ""
    if key_errs:
        errs.append(_invalid(f"{child}key", key, "; ".join(key_errs)))
    vpath = f"{child}values"
    if op in ("in", "notin"):
        if not vals:
            errs.append(f"{vpath}: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    elif op in ("=", "==", "!="):
        if len(vals) != 1:
            errs.append(
                f"{vpath}: Invalid value: {_go_string_slice(vals)}: "
                "exact-match compatibility requires one single value"
            )
    elif op in _UNARY:
        if vals:
            errs.append(
                f"{vpath}: Invalid value: {_go_string_slice(vals)}: "
                "values set must be empty for exists and does not exist"
            )
    elif op in ("gt", "lt"):
        if len(vals) != 1:
            errs.append(
                f"{vpath}: Invalid value: {_go_string_slice(vals)}: "
                "for 'Gt', 'Lt' operators, exactly one value is required"
            )
        for i, v in enumerate(vals):
            if _parse_int64(v) is None:
                errs.append(
                    _invalid(f"{vpath}[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
                )
    else:
        supported = ", ".join(go_quote(o) for o in (*_BINARY, *_UNARY))
        errs.append(f"{child}operator: Unsupported value: {go_quote(op)}: supported values: {supported}")
    for i, v in enumerate(vals):
        v_errs = validate_label_value(v)
        if v_errs:
            errs.append(_invalid(f"{vpath}[{i}][{key}]", v, "; ".join(v_errs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return LabelRequirement(key, op, tuple(vals))


def _go_string_slice(vals: list[str]) -> str:
    # %#v of []string{"a"} is []string{"a"}; newer apimachinery prints JSON. Use JSON-ish form.
    return "[" + ",".join(go_quote(v) for v in vals) + "]"


def _parse_int64(s: str) -> int | None:
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    n = int(s)
    if not -(2**63) <= n < 2**63:
        return None
    return n


@dataclass(frozen=True)
class LabelRequirement:
    """One requirement: ``key``, operator (``=``, ``==``, ``!=``, ``in``, ``notin``, ``exists``,
    ``!``, ``gt``, ``lt``) and values (sorted and unique when parsed from a string)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in ("in", "=", "=="):
            return self.key in labels and labels[self.key] in self.values
        if op in ("notin", "!="):
            return self.key not in labels or labels[self.key] not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("gt", "lt"):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == "gt" else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == "exists":
            return self.key
        if op == "!":
            return "!" + self.key
        vals = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if op in ("in", "notin"):
            return f"{self.key} {op} ({vals})"
        symbol = {"gt": ">", "lt": "<"}.get(op, op)
        return f"{self.key}{symbol}{vals}"


@dataclass(frozen=True)
class LabelSelector:
    """An AND of :class:`LabelRequirement`; ``nothing=True`` is ``labels.Nothing()``."""

    requirements: tuple[LabelRequirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """:func:`parse_label_selector` as a method; raises :class:`SelectorError` (a ValueError)."""
        return parse_label_selector(text)

    @classmethod
    def from_dict(cls, match_labels: Mapping[str, str]) -> LabelSelector:
        """The selector for a ``matchLabels`` mapping."""
        return label_selector_from_dict({"matchLabels": dict(match_labels)})


class _Lexer:
    _SPECIAL = frozenset("=!(),><")
    _WS = frozenset(" \t\r\n")
    _TOKENS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "in": "in", "<": "<",
               "!=": "!=", "notin": "notin", "(": "("}  # fmt: skip

    def __init__(self, s: str) -> None:
        self.s = s
        self.pos = 0

    def _read(self) -> str:
        if self.pos < len(self.s):
            ch = self.s[self.pos]
            self.pos += 1
            return ch
        self.pos += 1  # mirror Go: unread() after reading EOF is balanced
        return ""

    def lex(self) -> tuple[str, str]:
        ch = self._read()
        while ch in self._WS and ch:
            ch = self._read()
        if not ch:
            return "EOS", ""
        self.pos -= 1
        if ch in self._SPECIAL:
            return self._special()
        return self._ident()

    def _ident(self) -> tuple[str, str]:
        start = self.pos
        while (
            self.pos < len(self.s)
            and self.s[self.pos] not in self._SPECIAL
            and self.s[self.pos] not in self._WS
        ):
            self.pos += 1
        lit = self.s[start : self.pos]
        if lit in self._TOKENS:
            return self._TOKENS[lit], lit
        return "ID", lit

    def _special(self) -> tuple[str, str]:
        buf = ""
        last: tuple[str, str] | None = None
        while self.pos < len(self.s) and self.s[self.pos] in self._SPECIAL:
            buf += self.s[self.pos]
            self.pos += 1
            if buf in self._TOKENS:
                last = (self._TOKENS[buf], buf)
            elif last is not None:
                self.pos -= 1
                break
        if last is None:
            return "ERR", f"error expected: keyword found '{buf}'"
        return last


class _Parser:
    def __init__(self, s: str) -> None:
        lexer = _Lexer(s)
        self.items: list[tuple[str, str]] = []
        while True:
            tok = lexer.lex()
            self.items.append(tok)
            if tok[0] == "EOS":
                break
        self.position = 0

    def _look(self, values: bool) -> tuple[str, str]:
        tok, lit = self.items[self.position]
        if values and tok in ("in", "notin"):
            tok = "ID"
        return tok, lit

    def _consume(self, values: bool) -> tuple[str, str]:
        item = self._look(values)
        self.position += 1
        return item

    def parse(self) -> list[LabelRequirement]:
        reqs: list[LabelRequirement] = []
        while True:
            tok, lit = self._look(True)
            if tok in ("ID", "!"):
                try:
                    reqs.append(self._requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit2 = self._consume(True)
                if t == "EOS":
                    return reqs
                if t == ",":
                    t2, l2 = self._look(True)
                    if t2 not in ("ID", "!"):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == "EOS":
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> LabelRequirement:
        op = ""
        tok, lit = self._consume(True)
        if tok == "!":
            op = "!"
            tok, lit = self._consume(True)
        if tok != "ID":
            raise SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        key_errs = validate_label_key(key)
        if key_errs:
            raise SelectorError(_invalid("<nil>", key, "; ".join(key_errs)))
        if self._look(True)[0] in ("EOS", ","):
            op = op or "exists"
        if op in _UNARY:
            return _new_requirement(key, op, [])
        tok, lit = self._consume(False)
        ops = {"in": "in", "=": "=", "==": "==", ">": "gt", "<": "lt", "notin": "notin", "!=": "!="}
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        op = ops[tok]
        values = self._values() if op in ("in", "notin") else self._exact_value()
        return _new_requirement(key, op, sorted(values))

    def _values(self) -> set[str]:
        tok, lit = self._consume(True)
        if tok != "(":
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._look(True)
        if tok in ("ID", ","):
            s = self._identifiers()
            if self._consume(True)[0] != ")":
                raise SelectorError(f"found '{lit}', expected: ')'")
            return s
        if tok == ")":
            self._consume(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> set[str]:
        s: set[str] = set()
        while True:
            tok, lit = self._consume(True)
            if tok == "ID":
                s.add(lit)
                tok2, lit2 = self._look(True)
                if tok2 == ",":
                    continue
                if tok2 == ")":
                    return s
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == ",":
                if not s:
                    s.add("")
                tok2 = self._look(True)[0]
                if tok2 == ")":
                    s.add("")
                    return s
                if tok2 == ",":
                    s.add("")
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        tok = self._look(True)[0]
        if tok in ("EOS", ","):
            return {""}
        tok, lit = self._consume(True)
        if tok == "ID":
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


@functools.lru_cache(maxsize=1024)
def parse_label_selector(s: str) -> LabelSelector:
    """Parse a label selector string as ``labels.Parse`` does; raise :class:`SelectorError`.

    Results are cached (the selector is immutable): a controller lists its cache with the same few
    selector strings on every reconcile."""
    reqs = _Parser(s).parse()
    reqs.sort(key=lambda r: r.key)  # stable, like Go's sort.Sort on ByKey for distinct keys
    return LabelSelector(tuple(reqs))


def label_selector_from_dict(sel: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` dict as ``LabelSelectorAsSelector`` does."""
    if sel is None:
        return LabelSelector(nothing=True)
    match_labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    reqs: list[LabelRequirement] = []
    for k, v in sorted(match_labels.items()):
        reqs.append(_new_requirement(str(k), "=", [str(v)]))
    for expr in exprs:
        op_name = expr.get("operator", "")
        if op_name not in _OPERATOR_WORDS:
            raise SelectorError(f"{go_quote(str(op_name))} is not a valid label selector operator")
        reqs.append(
            _new_requirement(str(expr.get("key", "")), _OPERATOR_WORDS[op_name], expr.get("values") or [])
        )
    reqs.sort(key=lambda r: r.key)
    return LabelSelector(tuple(reqs))


# --------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------


def escape_field_value(value: str) -> str:
    """``fields.EscapeValue``: escape ``\\``, ``,`` and ``=`` so the value survives parsing."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c in "\\,=":
                out.append(c)
            else:
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            in_slash = False
            continue
        if c == "\\":
            in_slash = True
        elif c in ",=":
            # Go formats the rune with %v, which prints its code point.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    if not s:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


# Fields whose Go zero value is not "" (the apiserver formats the typed field, present or not).
_ZERO_VALUES = {
    "spec.hostNetwork": "false",
    "spec.unschedulable": "false",
    "status.replicas": "0",
    "status.successful": "0",
}
# Field labels that name a nested value (core/v1 Event "source" is source.component).
_ALIASES = {"source": "source.component"}


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string the apiserver compares for ``path`` (dotted) in ``obj``.

    A missing field compares as its Go zero value: ``""`` for strings, ``"false"``/``"0"`` for the
    few boolean/integer field labels the apiserver offers."""
    cur: Any = obj
    for part in _ALIASES.get(path, path).split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _ZERO_VALUES.get(path, "")
        cur = cur[part]
    if cur is None:
        return _ZERO_VALUES.get(path, "")
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, str):
        return cur
    return str(cur)


@dataclass(frozen=True)
class FieldSelector:
    """An AND of ``(field, op, value)`` requirements, ``op`` being ``"="`` or ``"!="``."""

    requirements: list[tuple[str, str, str]] = field(default_factory=list)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for fld, op, value in self.requirements:
            have = field_value(obj, fld)
            if (have == value) != (op == "="):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(f for f, _, _ in self.requirements)

    def requires_exact_match(self, fld: str) -> str | None:
        """The value ``fld`` must equal, if the selector pins it (used for metadata.name)."""
        for f, op, v in self.requirements:
            if f == fld and op == "=":
                return v
        return None

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)


def parse_field_selector(s: str) -> FieldSelector:
    """Parse a field selector as ``fields.ParseSelector`` does; raise :class:`SelectorError`."""
    reqs: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(s)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
        lhs, op, rhs = split
        reqs.append((lhs, "!=" if op == "!=" else "=", _unescape_field_value(rhs)))
    return FieldSelector(reqs)
