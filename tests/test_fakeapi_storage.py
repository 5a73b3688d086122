"""Invariants of the fake API server's storage and watch fan-out over many random histories.

Storage and watchers are driven directly (no HTTP) so that hypothesis can try thousands of
histories: every snapshot at a past revision equals the state recorded at that revision, replaying
history from any revision reproduces the present, indexes match a recomputation, and a filtered
watcher that replays what it was sent ends with exactly the objects its selector matches.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime.testing.fakeapi.storage import Storage, Stored
from kctl_runtime.testing.fakeapi.watch import Watcher

KEY = "/configmaps"
NAMESPACES = ("a", "b")
NAMES = ("x", "y", "z", "w")
UIDS = {(ns, n): f"uid-{ns}-{n}" for ns in NAMESPACES for n in NAMES}

operation = st.tuples(
    st.sampled_from(["put", "put", "delete"]),
    st.sampled_from(NAMESPACES),
    st.sampled_from(NAMES),
    st.sampled_from(["red", "blue", None]),
    st.sampled_from([None, *NAMES]),
)

State = dict[tuple[str, str], dict[str, Any]]


def _obj(ns: str, name: str, color: str | None, owner: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": UIDS[(ns, name)]}
    if color:
        meta["labels"] = {"color": color}
    if owner:
        meta["ownerReferences"] = [{"uid": UIDS[(ns, owner)], "name": owner}]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def _state(items: list[Stored]) -> State:
    return {(s.namespace, s.name): s.obj for s in items}


def _apply(storage: Storage, ops: list[tuple[str, str, str, str | None, str | None]]) -> dict[int, State]:
    """Run ``ops``; return the state after every revision."""
    current: State = {}
    history: dict[int, State] = {storage.rv: {}}
    for op, ns, name, color, owner in ops:
        existing = storage.get(KEY, ns, name)
        if op == "delete":
            if existing is None:
                continue
            storage.remove(KEY, existing)
            del current[(ns, name)]
        else:
            obj = _obj(ns, name, color, owner)
            stored = storage.replace(KEY, obj, existing) if existing else storage.create(KEY, obj)
            current[(ns, name)] = stored.obj
        history[storage.rv] = dict(current)
    return history


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=60), st.integers(min_value=5, max_value=80))
def test_a_snapshot_at_any_retained_revision_is_the_state_at_that_revision(
    ops: list[tuple[str, str, str, str | None, str | None]], history_size: int
) -> None:
    storage = Storage(history_size=history_size)
    states = _apply(storage, ops)
    revisions = sorted(states)
    assert revisions == sorted(set(revisions))
    for rv in revisions:
        if rv < storage.compacted_rv:
            continue
        for ns in (None, *NAMESPACES):
            expected = {k: v for k, v in states[rv].items() if ns is None or k[0] == ns}
            snapshot = storage.snapshot(KEY, ns, rv)
            assert _state(snapshot) == expected
            keys = [f"{s.namespace}/{s.name}" for s in snapshot]
            assert keys == sorted(keys)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=60), st.integers(min_value=5, max_value=80))
def test_replaying_history_from_a_retained_revision_reproduces_the_present(
    ops: list[tuple[str, str, str, str | None, str | None]], history_size: int
) -> None:
    storage = Storage(history_size=history_size)
    states = _apply(storage, ops)
    present = states[max(states)]
    for rv, state in states.items():
        if rv < storage.compacted_rv:
            continue
        replayed = dict(state)
        for event in storage.events_since(rv):
            key = (event.namespace, event.name)
            if event.type == "DELETED":
                replayed.pop(key)
            else:
                replayed[key] = event.current.obj
            assert json.loads(event.current.raw) == event.current.obj
        assert replayed == present


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=60))
def test_owner_and_uid_indexes_match_a_recomputation(
    ops: list[tuple[str, str, str, str | None, str | None]],
) -> None:
    storage = Storage(history_size=1000)
    _apply(storage, ops)
    live = list(storage.iter(KEY))
    assert storage.by_uid == {s.uid: (KEY, s.namespace, s.name) for s in live}
    dependents: dict[str, set[tuple[str, str, str]]] = {}
    for s in live:
        for ref in s.obj["metadata"].get("ownerReferences", ()):
            dependents.setdefault(ref["uid"], set()).add((KEY, s.namespace, s.name))
    assert storage.dependents == dependents


@settings(max_examples=200, deadline=None)
@given(
    st.lists(operation, max_size=60), st.sampled_from(["red", "blue"]), st.sampled_from([None, *NAMESPACES])
)
def test_a_filtered_watcher_that_replays_its_events_ends_with_what_its_selector_matches(
    ops: list[tuple[str, str, str, str | None, str | None]], color: str, namespace: str | None
) -> None:
    storage = Storage(history_size=1000)

    def matches(obj: dict[str, Any]) -> bool:
        return bool((obj["metadata"].get("labels") or {}).get("color") == color)

    watcher = Watcher(KEY, namespace, matches)
    storage.subscribe(lambda event: watcher.offer(event) if event.storage_key == KEY else None)
    states = _apply(storage, ops)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    previous_rv = 0
    while not watcher.queue.empty():
        line = watcher.queue.get_nowait()
        assert line is not None
        event = json.loads(line)
        meta = event["object"]["metadata"]
        rv = int(meta["resourceVersion"])
        assert rv > previous_rv
        previous_rv = rv
        key = (meta["namespace"], meta["name"])
        if event["type"] == "ADDED":
            assert key not in seen
            seen[key] = event["object"]
        elif event["type"] == "MODIFIED":
            assert key in seen
            seen[key] = event["object"]
        else:
            assert event["type"] == "DELETED"
            assert key in seen
            del seen[key]
    present = states[max(states)]
    expected = {k: v for k, v in present.items() if matches(v) and (namespace is None or k[0] == namespace)}
    assert seen == expected
