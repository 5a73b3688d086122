"""Value helpers shared by the fake API server's pure modules (patch, schema, selectors).

Contract: :func:`json_equal` compares decoded JSON the way Go's ``reflect.DeepEqual`` on
``interface{}`` values does after JSON decoding (``1 == 1.0``, but ``True != 1``); :func:`go_quote`
renders a string as Go's ``%q`` / ``strconv.Quote`` does, so messages match kube-apiserver's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kctl_runtime._gostrings import go_quote

__all__ = ["go_quote", "json_equal"]


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values: numbers by value, booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
