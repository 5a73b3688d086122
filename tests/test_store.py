"""The informer cache: keys, indexes, and the writer's apply / delete / replace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime.store import NAMESPACE_INDEX, Store


def obj(name: str, rv: str = "1", namespace: str | None = "ns", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": rv, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta}


def by_app(o: dict[str, Any]) -> Iterable[str]:
    app = o["metadata"]["labels"].get("app")
    return [app] if app else []


def test_apply_inserts_and_returns_the_replaced_object() -> None:
    store = Store()
    first = obj("a", "1")
    assert store.apply(first) is None
    second = obj("a", "2")
    assert store.apply(second) is first
    assert store.get("ns/a") is second
    assert store.get_object("ns", "a") is second
    assert len(store) == 1
    assert "ns/a" in store


def test_cluster_scoped_objects_are_keyed_by_name_alone() -> None:
    store = Store()
    node = obj("node-1", namespace=None)
    store.apply(node)
    assert store.keys() == ["node-1"]
    assert store.get_object(None, "node-1") is node
    assert store.by_index(NAMESPACE_INDEX, "") == []


def test_delete_returns_the_last_known_object_and_forgets_it() -> None:
    store = Store()
    a = obj("a")
    store.apply(a)
    assert store.delete("ns/a") is a
    assert store.delete("ns/a") is None
    assert store.get("ns/a") is None
    assert store.by_index(NAMESPACE_INDEX, "ns") == []


def test_readers_get_the_cached_objects_themselves_not_copies() -> None:
    store = Store()
    a = obj("a")
    store.apply(a)
    assert store.list()[0] is a
    assert store.by_index(NAMESPACE_INDEX, "ns")[0] is a


def test_the_builtin_namespace_index_follows_objects() -> None:
    store = Store()
    store.apply(obj("a", namespace="one"))
    store.apply(obj("b", namespace="one"))
    store.apply(obj("c", namespace="two"))
    assert sorted(store.index_keys(NAMESPACE_INDEX, "one")) == ["one/a", "one/b"]
    assert [o["metadata"]["name"] for o in store.by_index(NAMESPACE_INDEX, "two")] == ["c"]
    store.delete("one/a")
    assert store.index_keys(NAMESPACE_INDEX, "one") == ["one/b"]


def test_a_custom_index_is_updated_when_an_object_changes_value() -> None:
    store = Store()
    store.add_index("app", by_app)
    store.apply(obj("a", "1", app="web"))
    store.apply(obj("b", "1", app="web"))
    assert sorted(store.index_keys("app", "web")) == ["ns/a", "ns/b"]
    store.apply(obj("a", "2", app="db"))
    assert store.index_keys("app", "web") == ["ns/b"]
    assert store.index_keys("app", "db") == ["ns/a"]
    assert sorted(store.index_values("app")) == ["db", "web"]


def test_an_index_added_later_indexes_what_is_already_cached() -> None:
    store = Store()
    store.apply(obj("a", app="web"))
    store.add_index("app", by_app)
    assert store.index_keys("app", "web") == ["ns/a"]


def test_index_names_are_unique_and_unknown_indexes_are_reported() -> None:
    store = Store()
    with pytest.raises(ValueError, match="already exists"):
        store.add_index(NAMESPACE_INDEX, by_app)
    with pytest.raises(KeyError, match="no index named"):
        store.by_index("nope", "x")


def test_replace_reports_added_updated_and_deleted_by_resource_version() -> None:
    store = Store()
    a1, b1, c1 = obj("a", "1"), obj("b", "1"), obj("c", "1")
    for o in (a1, b1, c1):
        store.apply(o)
    a_same, b2, d1 = obj("a", "1"), obj("b", "2"), obj("d", "1")
    result = store.replace([a_same, b2, d1])
    assert result.added == [d1]
    assert result.updated == [(b1, b2)]
    assert result.deleted == [c1]
    assert sorted(store.keys()) == ["ns/a", "ns/b", "ns/d"]
    assert store.get("ns/a") is a_same
    assert sorted(store.index_keys(NAMESPACE_INDEX, "ns")) == ["ns/a", "ns/b", "ns/d"]


def test_replace_with_nothing_deletes_everything() -> None:
    store = Store()
    store.apply(obj("a"))
    result = store.replace([])
    assert [o["metadata"]["name"] for o in result.deleted] == ["a"]
    assert len(store) == 0
    assert store.index_values(NAMESPACE_INDEX) == []


operations = st.lists(
    st.tuples(
        st.sampled_from(["apply", "delete", "replace"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["x", "y"]),
        st.sampled_from(["web", "db", ""]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_indexes_always_agree_with_a_scan_of_the_cache(ops: list[tuple[str, str, str, str]]) -> None:
    store = Store()
    store.add_index("app", by_app)
    for counter, (op, name, namespace, app) in enumerate(ops, 1):
        if op == "apply":
            labels = {"app": app} if app else {}
            store.apply(obj(name, str(counter), namespace, **labels))
        elif op == "delete":
            store.delete(f"{namespace}/{name}")
        else:
            store.replace([o for o in store.list() if o["metadata"]["name"] != name])
    for app in ("web", "db"):
        keys = store.keys()
        expected = sorted(k for k in keys if by_app(store.get(k) or {}) == [app])
        assert sorted(store.index_keys("app", app)) == expected
    for namespace in ("x", "y"):
        keys = store.keys()
        expected = sorted(k for k in keys if k.startswith(f"{namespace}/"))
        assert sorted(store.index_keys(NAMESPACE_INDEX, namespace)) == expected
