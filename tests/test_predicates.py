"""Tests for kctl_runtime.predicates: each predicate, the combinators, and label selector semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime.predicates import (
    LabelSelector,
    Predicate,
    and_,
    annotations_changed,
    from_functions,
    generation_changed,
    label_selector,
    labels_changed,
    namespace_in,
    not_,
    or_,
    resource_version_changed,
)
from kctl_runtime.selectors import SelectorError, parse_label_selector


def obj(
    name: str = "x",
    *,
    namespace: str | None = "ns",
    generation: int | None = 1,
    rv: str = "1",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if namespace:
        meta["namespace"] = namespace
    if generation is not None:
        meta["generation"] = generation
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "status": status or {}}


def test_generation_changed_passes_spec_changes_and_drops_status_only_updates() -> None:
    p = generation_changed()
    assert p.update(obj(generation=1, rv="1"), obj(generation=2, rv="2"))
    assert not p.update(obj(generation=1, rv="1"), obj(generation=1, rv="2", status={"ready": True}))
    assert p.create(obj())
    assert p.delete(obj())
    assert p.generic(obj())


def test_generation_changed_drops_every_update_of_kinds_without_a_generation() -> None:
    p = generation_changed()
    assert not p.update(obj(generation=None, rv="1"), obj(generation=None, rv="2"))


def test_labels_and_annotations_changed_compare_the_maps_treating_missing_as_empty() -> None:
    assert labels_changed().update(obj(labels={"a": "1"}), obj(labels={"a": "2"}))
    assert not labels_changed().update(obj(labels=None), obj(labels={}))
    assert annotations_changed().update(obj(annotations={}), obj(annotations={"note": "x"}))
    assert not annotations_changed().update(obj(annotations={"n": "1"}), obj(annotations={"n": "1"}, rv="9"))


def test_resource_version_changed_drops_resyncs() -> None:
    same = obj(rv="5")
    assert not resource_version_changed().update(same, same)
    assert resource_version_changed().update(obj(rv="5"), obj(rv="6"))


def test_label_selector_passes_an_update_when_either_side_matches() -> None:
    p = label_selector("app=web")
    assert p.create(obj(labels={"app": "web"}))
    assert not p.create(obj(labels={"app": "db"}))
    assert p.update(obj(labels={"app": "web"}), obj(labels={"app": "db"}))  # leaving the selection
    assert not p.update(obj(labels={"app": "db"}), obj(labels={"app": "api"}))
    assert p.delete(obj(labels={"app": "web"}))


def test_namespace_in_passes_only_the_named_namespaces() -> None:
    p = namespace_in("a", "b")
    assert p.create(obj(namespace="a"))
    assert not p.create(obj(namespace="c"))
    assert not p.create(obj(namespace=None))
    assert p.update(obj(namespace="b"), obj(namespace="b"))
    with pytest.raises(ValueError, match="at least one"):
        namespace_in()


def test_combinators_compose_per_event_type() -> None:
    yes = from_functions()
    no = from_functions(lambda _o: False, lambda _a, _b: False, lambda _o: False, lambda _o: False)
    assert and_(yes, yes).create(obj())
    assert not and_(yes, no).update(obj(), obj())
    assert or_(no, yes).delete(obj())
    assert not or_(no, no).generic(obj())
    assert not_(no).create(obj())
    assert not not_(yes).update(obj(), obj())
    assert and_().create(obj())
    assert not or_().create(obj())
    assert isinstance(and_(generation_changed(), labels_changed()), Predicate)
    with pytest.raises(TypeError, match="not a Predicate"):
        and_(object())  # type: ignore[arg-type]


def test_from_functions_lets_through_the_events_it_has_no_function_for() -> None:
    only_creates = from_functions(create=lambda o: o["metadata"]["name"] == "keep")
    assert only_creates.create(obj("keep"))
    assert not only_creates.create(obj("drop"))
    assert only_creates.update(obj(), obj())
    assert only_creates.delete(obj())
    assert only_creates.generic(obj())


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a in (x, y)", {"a": "y"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a notin (x,y)", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("a>3", {"a": "4"}, True),
        ("a<3", {"a": "x"}, False),
        ("app.kubernetes.io/name=web,tier", {"app.kubernetes.io/name": "web", "tier": "1"}, True),
    ],
)
def test_label_selectors_follow_kubernetes_semantics(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["a=b=c", "a in b", "=b", "a,,b", "a b", "a in (x y)", "a in (x,!)"])
def test_invalid_label_selectors_are_rejected_as_apimachinery_rejects_them(bad: str) -> None:
    # one parser (kctl_runtime.selectors) for predicates, the client and the fake API server
    with pytest.raises(SelectorError):
        LabelSelector.parse(bad)


def test_a_label_selector_from_match_labels_round_trips_through_text() -> None:
    sel = LabelSelector.from_dict({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert LabelSelector.parse(str(sel)) == sel


_keys = st.sampled_from(["a", "b", "app.kubernetes.io/name", "tier"])
_values = st.sampled_from(["", "x", "y", "1", "5"])


@st.composite
def selectors(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(_keys)
        kind = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
        if kind in ("=", "==", "!="):
            parts.append(f"{key}{kind}{draw(_values)}")
        elif kind in ("in", "notin"):
            vals = draw(st.lists(st.sampled_from(["x", "y", "1"]), min_size=1, max_size=3))
            parts.append(f"{key} {kind} ({','.join(vals)})")
        elif kind == "exists":
            parts.append(key)
        elif kind == "!":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key}{kind}{draw(st.integers(0, 9))}")
    return ",".join(parts)


@settings(max_examples=400, deadline=None)
@given(selector=selectors(), labels=st.dictionaries(_keys, _values, max_size=4))
def test_label_selector_matching_agrees_with_the_fake_api_servers_apimachinery_port(
    selector: str, labels: dict[str, str]
) -> None:
    reference = parse_label_selector(selector)
    assert LabelSelector.parse(selector).matches(labels) == reference.matches(labels)
