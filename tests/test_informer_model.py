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
