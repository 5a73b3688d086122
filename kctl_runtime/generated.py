"""Generated manifests (CRDs, RBAC): deterministic YAML, and a test that a committed copy is current.

Contract
--------
* :func:`dump_yaml` writes documents with keys in insertion order, block style except short lists
  of scalars (``verbs: [get, list, watch]``), ``---`` between documents: the same input gives the
  same bytes, so a generated file in git only changes when its source does.
* :func:`assert_current` raises ``AssertionError`` naming the file and the command that regenerates
  it when the committed text differs from what the generator produces now (or the file is missing).
  It never writes the file: a test must not repair what it checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["assert_current", "dump_yaml"]


class _Dumper(yaml.SafeDumper):
    """Block style, except short lists of scalars (``verbs: [get, list, watch]``) on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = bool(data) and all(isinstance(v, str | int | float | bool) for v in data) and len(data) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(documents: Iterable[Mapping[str, Any]]) -> str:
    """Deterministic YAML for generated manifests: keys in insertion order, ``---`` between documents."""
    return "---\n".join(
        yaml.dump(dict(d), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True) for d in documents
    )


def assert_current(path: str | Path, expected: str, command: str) -> None:
    """Fail (``AssertionError``) when the committed file at ``path`` is not ``expected``.

    ``command`` is what regenerates it, shown in the message. Use it in a test per generated file::

        assert_current("manifests/crd.yaml", crd_yaml(Website), "python -m kctl_runtime crd ...")
    """
    file = Path(path)
    actual = file.read_text() if file.exists() else None
    if actual != expected:
        state = "is missing" if actual is None else "is stale"
        raise AssertionError(f"{file} {state}: regenerate it with `{command} > {file}`")
