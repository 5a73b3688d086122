"""The reflector (``Informer.process``) against a model of the server, over random histories.

No I/O: the events a watcher would produce are generated from a model server that creates,
updates, deletes and re-creates objects, while the informer is randomly disconnected (it misses
events) and relisted (it gets the full current state). After every relist and at the end the cache
must equal the model, and every handler's per-object history must be consistent.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime.informer import Informer
from kctl_runtime.resource import CONFIGMAPS, object_key
from kctl_runtime.watcher import Apply, Delete, Init, InitApply, InitDone
from tests.test_informer import Recorder

Obj = dict[str, Any]

steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=7),  # which object
        st.sampled_from(["write", "write", "write", "delete", "drop", "relist", "late-handler"]),
    ),
    min_size=1,
    max_size=300,
)


class ModelServer:
    def __init__(self) -> None:
        self.rv = 1
        self.objects: dict[str, Obj] = {}

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    def write(self, name: str) -> Obj:
        old = self.objects.get(name)
        meta = {
            "namespace": "ns",
            "name": name,
            "uid": old["metadata"]["uid"] if old else str(uuid.uuid4()),
            "resourceVersion": self._next(),
        }
        obj = {"metadata": meta, "data": {"rv": meta["resourceVersion"]}}
        self.objects[name] = obj
        return obj

    def delete(self, name: str) -> Obj | None:
        old = self.objects.pop(name, None)
        if old is None:
            return None
        return {**old, "metadata": {**old["metadata"], "resourceVersion": self._next()}}

    def state(self) -> dict[str, str]:
        return {object_key(o): o["metadata"]["resourceVersion"] for o in self.objects.values()}


def relist(informer: Informer, server: ModelServer) -> None:
    informer.process(Init())
    for obj in server.objects.values():
        informer.process(InitApply(_copy(obj)))
    informer.process(InitDone(str(server.rv)))


def _copy(obj: Obj) -> Obj:
    return {"metadata": dict(obj["metadata"]), "data": dict(obj["data"])}


def cache(informer: Informer) -> dict[str, str]:
    return {object_key(o): o["metadata"]["resourceVersion"] for o in informer.store.list()}


@settings(max_examples=300, deadline=None)
@given(steps)
def test_random_histories_with_drops_and_relists_keep_cache_and_handlers_consistent(
    history: list[tuple[int, str]],
) -> None:
    server = ModelServer()
    informer = Informer(None, CONFIGMAPS)
    recorders = [Recorder()]
    informer.add_handler(recorders[0])
    relist(informer, server)
    connected = True
    for index, action in history:
        name = f"cm-{index}"
        if action == "write":
            obj = server.write(name)
            if connected:
                informer.process(Apply(_copy(obj)))
        elif action == "delete":
            final = server.delete(name)
            if final is not None and connected:
                informer.process(Delete(_copy(final)))
        elif action == "drop":
            connected = False
        elif action == "relist":
            relist(informer, server)
            connected = True
            assert cache(informer) == server.state()
        else:
            late = Recorder()
            informer.add_handler(late)
            recorders.append(late)
        if connected:
            assert cache(informer) == server.state()
    relist(informer, server)
    assert cache(informer) == server.state()
    for recorder in recorders:
        assert recorder.violations == []
        assert {k: o["metadata"]["resourceVersion"] for k, o in recorder.live.items()} == server.state()


def test_a_relist_sends_deletes_with_the_last_known_state_and_new_incarnations_as_delete_then_add() -> None:
    server = ModelServer()
    informer = Informer(None, CONFIGMAPS)
    recorder = Recorder()
    informer.add_handler(recorder)
    server.write("a")
    server.write("b")
    relist(informer, server)
    known_a = informer.store.get("ns/a")
    known_b = informer.store.get("ns/b")
    assert known_a is not None
    assert known_b is not None
    # disconnected: a is deleted, b is deleted and re-created (a new uid), c is created
    server.delete("a")
    server.delete("b")
    server.write("b")
    server.write("c")
    relist(informer, server)
    assert recorder.calls[2:] == [
        ("delete", "ns/a", known_a["metadata"]["resourceVersion"]),
        ("delete", "ns/b", known_b["metadata"]["resourceVersion"]),
        ("add", "ns/b", server.objects["b"]["metadata"]["resourceVersion"]),
        ("add", "ns/c", server.objects["c"]["metadata"]["resourceVersion"]),
    ]
    assert recorder.initial_adds == 2  # only the first list counts as the initial one
    assert recorder.violations == []


class CallLog:
    """Every call a handler gets, as (method, key, resourceVersion...); raises for ``cm-3``."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_add(self, obj: Obj, is_initial_list: bool) -> None:
        self.calls.append(("add", object_key(obj), obj["metadata"]["resourceVersion"], is_initial_list))
        if obj["metadata"]["name"] == "cm-3":
            raise RuntimeError("a handler bug")

    def on_update(self, old: Obj, new: Obj) -> None:
        self.calls.append(
            (
                "update",
                object_key(new),
                old["metadata"]["resourceVersion"],
                new["metadata"]["resourceVersion"],
            )
        )

    def on_delete(self, obj: Obj) -> None:
        self.calls.append(("delete", object_key(obj), obj["metadata"]["resourceVersion"]))


lists = st.lists(st.lists(st.integers(min_value=0, max_value=5), max_size=6), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(first=lists, second=lists)
def test_a_page_at_once_has_the_effects_of_its_events_one_at_a_time(
    first: list[list[int]], second: list[list[int]]
) -> None:
    """``process_page`` (what ``run`` calls per list page) == ``process`` per event, for the first
    list (streamed into the store) and a relist (buffered), duplicates and a failing handler included."""
    rv = iter(range(2, 10_000))
    pages: list[list[Any]] = []
    for listing in (first, second):
        for number, names in enumerate(listing):
            page: list[Any] = [Init()] if number == 0 else []
            for i in names:
                meta = {
                    "namespace": "ns",
                    "name": f"cm-{i}",
                    "uid": f"u{i}",
                    "resourceVersion": str(next(rv)),
                }
                page.append(InitApply({"metadata": meta, "data": {}}))
            if number == len(listing) - 1:
                page.append(InitDone(str(next(rv))))
            pages.append(page)
    one, paged = Informer(None, CONFIGMAPS), Informer(None, CONFIGMAPS)
    logs = [CallLog(), CallLog(), CallLog(), CallLog()]
    for handler in logs[:2]:
        one.add_handler(handler)
    for handler in logs[2:]:
        paged.add_handler(handler)
    for page in pages:
        for event in page:
            one.process(_copy_event(event))
        paged.process_page(tuple(_copy_event(event) for event in page))
        assert cache(one) == cache(paged)
        assert one.has_synced == paged.has_synced
    assert logs[0].calls == logs[2].calls
    assert logs[1].calls == logs[3].calls
    # the first list, as the contract states it: a key's first object is an initial add, a later
    # one with another resourceVersion an update (both paths share the loop, so spell it out)
    seen: dict[str, str] = {}
    expected: list[tuple[Any, ...]] = []
    for page in pages[: len(first)]:
        for event in page:
            if isinstance(event, InitApply):
                key, version = object_key(event.object), event.object["metadata"]["resourceVersion"]
                if key not in seen:
                    expected.append(("add", key, version, True))
                elif seen[key] != version:
                    expected.append(("update", key, seen[key], version))
                seen[key] = version
    assert logs[2].calls[: len(expected)] == expected
    assert logs[3].calls[: len(expected)] == expected


def _copy_event(event: Any) -> Any:
    return InitApply(_copy(event.object)) if isinstance(event, InitApply) else event
