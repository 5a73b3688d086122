"""Versioned object storage: the fake's etcd.

Contract
--------
* One global, strictly increasing revision counter. Every write (create, update, delete) takes the
  next revision and stamps it into ``metadata.resourceVersion`` as a decimal string.
* Stored objects are **immutable**: :class:`Stored` holds the decoded dict and its orjson encoding,
  produced once at write time. Callers must never mutate ``Stored.obj``; writers build a new dict.
  Reads, lists and watch fan-out reuse ``Stored.raw`` without copying or re-encoding.
* Every write appends a :class:`Event` to a bounded history (``history_size`` events). Watches and
  paginated lists can resume from any revision not older than :attr:`Storage.compacted_rv`; older
  ones are "compacted" (the caller answers 410 Expired).
* Lists are sorted by ``namespace/name`` (etcd key order). :meth:`Storage.snapshot` returns the
  sorted objects as they were at a given revision (from a small cache or by undoing history), so a
  paginated list is consistent at its first page's revision, like etcd.
* Listeners registered with :meth:`Storage.subscribe` are called synchronously, in revision order,
  for every event. They must not write to storage from the callback.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Event", "Storage", "Stored", "encode"]


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


class Stored:
    """One object version: the dict (never mutated), its encoding and its revision.

    ``apiVersion`` and ``kind`` are put first in the encoding, so :meth:`item_raw` (the object as an
    item of a built-in list, which the real server sends without them) is a cheap slice.
    """

    __slots__ = ("obj", "raw", "rv")

    def __init__(self, obj: dict[str, Any], rv: int) -> None:
        if "apiVersion" in obj and "kind" in obj and next(iter(obj)) != "apiVersion":
            obj = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], **obj}
        self.obj = obj
        self.rv = rv
        self.raw = encode(obj)

    def item_raw(self) -> bytes:
        """The encoding without ``apiVersion`` / ``kind`` (items of typed lists carry neither)."""
        head = encode({"apiVersion": self.obj.get("apiVersion"), "kind": self.obj.get("kind")})
        prefix = head[:-1] + b","
        if self.raw.startswith(prefix):
            return b"{" + self.raw[len(prefix) :]
        return self.raw

    @property
    def namespace(self) -> str:
        ns: str = self.obj["metadata"].get("namespace", "")
        return ns

    @property
    def name(self) -> str:
        name: str = self.obj["metadata"]["name"]
        return name

    @property
    def uid(self) -> str:
        uid: str = self.obj["metadata"].get("uid", "")
        return uid


@dataclass(eq=False)
class Event:
    """A write: ``ADDED`` / ``MODIFIED`` / ``DELETED`` of one object at revision ``rv``.

    ``current`` is the object after the write (for ``DELETED``: the last state, stamped with the
    deletion revision); ``prev`` the version before (``None`` for ``ADDED``). ``cache`` memoizes
    encoded watch lines so each variant is encoded once however many watchers receive it.
    """

    type: str
    rv: int
    storage_key: str
    namespace: str
    name: str
    current: Stored
    prev: Stored | None
    cache: dict[Any, bytes] = field(default_factory=dict)


Key = tuple[str, str]  # (namespace, name)


def sort_key(item: Stored) -> str:
    """The order lists are served in (and continue tokens resume from): ``namespace/name``."""
    return f"{item.namespace}/{item.name}"


class Storage:
    """All objects of all resources, their revision history and owner/uid indexes."""

    def __init__(self, history_size: int = 10_000, snapshot_cache: int = 16) -> None:
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self.rv = 1
        self.compacted_rv = 1
        self._tables: dict[str, dict[str, dict[str, Stored]]] = {}
        self._modified: dict[str, int] = {}
        self._history: deque[Event] = deque()
        self._history_size = history_size
        self._snapshots: OrderedDict[tuple[str, str | None, int], list[Stored]] = OrderedDict()
        self._snapshot_cache = snapshot_cache
        self._listeners: list[Callable[[Event], None]] = []
        self.by_uid: dict[str, tuple[str, str, str]] = {}
        self.dependents: dict[str, set[tuple[str, str, str]]] = {}

    # ---- reads ----

    def get(self, storage_key: str, namespace: str, name: str) -> Stored | None:
        return self._tables.get(storage_key, {}).get(namespace, {}).get(name)

    def iter(self, storage_key: str, namespace: str | None = None) -> Iterator[Stored]:
        """Objects of one resource, in no particular order (``namespace=None``: all namespaces)."""
        table = self._tables.get(storage_key, {})
        if namespace is not None:
            yield from table.get(namespace, {}).values()
            return
        for objects in table.values():
            yield from objects.values()

    def count(self, storage_key: str, namespace: str | None = None) -> int:
        table = self._tables.get(storage_key, {})
        if namespace is not None:
            return len(table.get(namespace, {}))
        return sum(len(v) for v in table.values())

    def namespaces_with_objects(self, namespace: str) -> list[str]:
        """Storage keys that hold at least one object in ``namespace``."""
        return [key for key, table in self._tables.items() if table.get(namespace)]

    def modified_rv(self, storage_key: str) -> int:
        return self._modified.get(storage_key, 0)

    def snapshot(self, storage_key: str, namespace: str | None, at_rv: int | None = None) -> list[Stored]:
        """Objects sorted by key as of revision ``at_rv`` (default: now).

        Raises :class:`LookupError` when ``at_rv`` is older than the compacted revision.
        """
        modified = self.modified_rv(storage_key)
        if at_rv is None or at_rv >= self.rv:
            at_rv = self.rv
        if at_rv >= modified:
            cache_key = (storage_key, namespace, modified)
            cached = self._snapshots.get(cache_key)
            if cached is not None:
                self._snapshots.move_to_end(cache_key)
                return cached
            items = sorted(self.iter(storage_key, namespace), key=sort_key)
            self._remember(cache_key, items)
            return items
        if at_rv < self.compacted_rv:
            raise LookupError(at_rv)
        state: dict[Key, Stored] = {(s.namespace, s.name): s for s in self.iter(storage_key, namespace)}
        for event in reversed(self._history):
            if event.rv <= at_rv:
                break
            if event.storage_key != storage_key:
                continue
            if namespace is not None and event.namespace != namespace:
                continue
            key = (event.namespace, event.name)
            if event.prev is None:
                state.pop(key, None)
            else:
                state[key] = event.prev
        return sorted(state.values(), key=sort_key)

    def _remember(self, key: tuple[str, str | None, int], items: list[Stored]) -> None:
        self._snapshots[key] = items
        while len(self._snapshots) > self._snapshot_cache:
            self._snapshots.popitem(last=False)

    def events_since(self, rv: int) -> list[Event]:
        """Events with revision greater than ``rv``; :class:`LookupError` if compacted away."""
        if rv < self.compacted_rv:
            raise LookupError(rv)
        if not self._history or self._history[-1].rv <= rv:
            return []
        # history is sorted by rv; walk back from the end (watch resumes are usually recent)
        out: list[Event] = []
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            out.append(event)
        out.reverse()
        return out

    # ---- writes ----

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def create(self, storage_key: str, obj: dict[str, Any]) -> Stored:
        """Store a new object (its rv is assigned here). The caller checked it does not exist."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = Stored(obj, rv)
        self._put(storage_key, stored, None)
        self._emit(Event("ADDED", rv, storage_key, stored.namespace, stored.name, stored, None))
        return stored

    def replace(self, storage_key: str, obj: dict[str, Any], prev: Stored) -> Stored:
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = Stored(obj, rv)
        self._put(storage_key, stored, prev)
        self._emit(Event("MODIFIED", rv, storage_key, stored.namespace, stored.name, stored, prev))
        return stored

    def remove(self, storage_key: str, prev: Stored, *, final: dict[str, Any] | None = None) -> Stored:
        """Delete ``prev``; the DELETED event carries ``final`` (default: ``prev``) at a new rv."""
        rv = self.next_rv()
        source = final if final is not None else prev.obj
        obj = dict(source)
        obj["metadata"] = {**source["metadata"], "resourceVersion": str(rv)}
        stored = Stored(obj, rv)
        table = self._tables[storage_key]
        objects = table[prev.namespace]
        del objects[prev.name]
        if not objects:
            del table[prev.namespace]
        self._unindex(storage_key, prev)
        self._modified[storage_key] = rv
        self._emit(Event("DELETED", rv, storage_key, prev.namespace, prev.name, stored, prev))
        return stored

    def seed(self, storage_key: str, objects: list[dict[str, Any]]) -> None:
        """Bulk-load objects without events (benchmarks, fixtures). Each gets its own revision."""
        for obj in objects:
            rv = self.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self._put(storage_key, Stored(obj, rv), None)
        self.compacted_rv = self.rv
        self._history.clear()

    def dump(self) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        """The current revision and every stored object by storage key (for a state file)."""
        tables = {key: [s.obj for s in self.iter(key)] for key in self._tables}
        return self.rv, {key: objs for key, objs in tables.items() if objs}

    def restore(self, revision: int, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Replace every object with a :meth:`dump` (no events), as ``etcdutl snapshot restore
        --bump-revision --mark-compacted`` does: every revision up to ``revision`` is compacted
        (watches and ``continue`` tokens from before get 410) and objects get new resourceVersions
        above it."""
        self._tables.clear()
        self._modified.clear()
        self.by_uid.clear()
        self.dependents.clear()
        self.rv = max(self.rv, revision)
        for key, objects in tables.items():
            self.seed(key, objects)
        self.bump(0)

    def bump(self, by: int) -> None:
        """Advance the revision by ``by`` and compact everything older (an etcd restore's bump)."""
        self.rv += by
        self.expire()

    def expire(self) -> None:
        """Forget all history: every older revision becomes compacted."""
        self._history.clear()
        self._snapshots.clear()
        self.compacted_rv = self.rv

    def _put(self, storage_key: str, stored: Stored, prev: Stored | None) -> None:
        table = self._tables.setdefault(storage_key, {})
        table.setdefault(stored.namespace, {})[stored.name] = stored
        if prev is not None:
            self._unindex(storage_key, prev)
        self._index(storage_key, stored)
        self._modified[storage_key] = stored.rv

    def _index(self, storage_key: str, stored: Stored) -> None:
        ref = (storage_key, stored.namespace, stored.name)
        if stored.uid:
            self.by_uid[stored.uid] = ref
        for owner in stored.obj["metadata"].get("ownerReferences") or ():
            uid = owner.get("uid")
            if uid:
                self.dependents.setdefault(uid, set()).add(ref)

    def _unindex(self, storage_key: str, stored: Stored) -> None:
        ref = (storage_key, stored.namespace, stored.name)
        if stored.uid and self.by_uid.get(stored.uid) == ref:
            del self.by_uid[stored.uid]
        for owner in stored.obj["metadata"].get("ownerReferences") or ():
            deps = self.dependents.get(owner.get("uid", ""))
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self.dependents[owner["uid"]]

    def _emit(self, event: Event) -> None:
        self._history.append(event)
        if len(self._history) > self._history_size:
            dropped = self._history.popleft()
            self.compacted_rv = max(self.compacted_rv, dropped.rv)
        for listener in list(self._listeners):
            listener(event)
