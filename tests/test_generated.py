"""Generated manifests: deterministic YAML and the staleness assertion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kctl_runtime.generated import assert_current, dump_yaml


def test_the_yaml_keeps_key_order_and_puts_short_scalar_lists_on_one_line() -> None:
    text = dump_yaml([{"kind": "A", "b": 1, "verbs": ["get", "list"]}, {"kind": "B", "items": [{"x": 1}]}])
    assert text == "kind: A\nb: 1\nverbs: [get, list]\n---\nkind: B\nitems:\n- x: 1\n"
    assert list(yaml.safe_load_all(text)) == [
        {"kind": "A", "b": 1, "verbs": ["get", "list"]},
        {"kind": "B", "items": [{"x": 1}]},
    ]


def test_a_stale_or_missing_file_fails_naming_the_command_and_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "crd.yaml"
    with pytest.raises(AssertionError, match=r"crd.yaml is missing: regenerate it with `gen > "):
        assert_current(path, "new\n", "gen")
    path.write_text("old\n")
    with pytest.raises(AssertionError, match="is stale"):
        assert_current(path, "new\n", "gen")
    assert path.read_text() == "old\n"
    path.write_text("new\n")
    assert_current(path, "new\n", "gen")
