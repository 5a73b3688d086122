"""The informer cache: objects by key, plus secondary indexes.

Contract
--------
* One writer, many readers. The reflector (the informer's watch loop) is the only writer
  (:meth:`Store.apply`, :meth:`Store.delete`, :meth:`Store.replace`); any number of tasks read.
  Every method is synchronous and never awaits, so within one event loop a reader always sees a
  consistent snapshot between two writes -- no locks needed.
* Readers see the cache, not the server: an object may be stale (the watch lags the API by
  milliseconds to seconds, longer while disconnected), may already be deleted, or may be missing
  although it already exists. Reconcile on what the cache says and rely on the next event.
* Objects are shared, not copied: :meth:`get`, :meth:`list` and :meth:`by_index` hand out the
  cached dicts themselves. **Never mutate them** -- copy first (``copy.deepcopy``) when you need a
  modified version. Mutating one corrupts the cache for every reader and may break the indexes.
  (Freezing each object would cost a deep copy per event; the rule is cheaper and is what
  client-go asks too.)
* Keys are :func:`~kctl_runtime.resource.object_key` values: ``"ns/name"`` or ``"name"``.
* Index functions map an object to zero or more index values; they must be pure functions of the
  object. The built-in ``"namespace"`` index maps a namespaced object to its namespace.
  :meth:`by_index` / :meth:`index_keys` return results in no particular order.
* :meth:`list` and :meth:`keys` return new lists (safe to keep); order is insertion order but is
  not part of the contract.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from kctl_runtime.resource import object_key

__all__ = ["NAMESPACE_INDEX", "IndexFunc", "ReplaceResult", "Store", "namespace_index"]

IndexFunc = Callable[[dict[str, Any]], Iterable[str]]
NAMESPACE_INDEX = "namespace"


def namespace_index(obj: dict[str, Any]) -> Iterable[str]:
    """The built-in index: a namespaced object's namespace (nothing for cluster-scoped ones)."""
    namespace = obj["metadata"].get("namespace")
    return (namespace,) if namespace else ()


class ReplaceResult(NamedTuple):
    """What :meth:`Store.replace` changed."""

    added: list[dict[str, Any]]
    """Objects that were not cached before."""
    updated: list[tuple[dict[str, Any], dict[str, Any]]]
    """``(old, new)`` pairs whose resourceVersion changed."""
    deleted: list[dict[str, Any]]
    """Cached objects missing from the new list (their last known state)."""


def _rv(obj: Mapping[str, Any]) -> Any:
    return obj["metadata"].get("resourceVersion")


class _Index:
    __slots__ = ("buckets", "fn")

    def __init__(self, fn: IndexFunc) -> None:
        self.fn = fn
        self.buckets: dict[str, set[str]] = {}

    def add(self, key: str, obj: dict[str, Any]) -> None:
        for value in self.fn(obj):
            bucket = self.buckets.get(value)
            if bucket is None:
                self.buckets[value] = {key}
            else:
                bucket.add(key)

    def remove(self, key: str, obj: dict[str, Any]) -> None:
        for value in self.fn(obj):
            bucket = self.buckets.get(value)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self.buckets[value]

    def rebuild(self, items: dict[str, dict[str, Any]]) -> None:
        self.buckets = {}
        add = self.add
        for key, obj in items.items():
            add(key, obj)


class _NamespaceIndex(_Index):
    """The built-in index, inlined: it runs for every object of every informer."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(namespace_index)

    def add(self, key: str, obj: dict[str, Any]) -> None:
        namespace = obj["metadata"].get("namespace")
        if namespace:
            bucket = self.buckets.get(namespace)
            if bucket is None:
                self.buckets[namespace] = {key}
            else:
                bucket.add(key)

    def remove(self, key: str, obj: dict[str, Any]) -> None:
        namespace = obj["metadata"].get("namespace")
        if namespace:
            bucket = self.buckets.get(namespace)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self.buckets[namespace]

    def rebuild(self, items: dict[str, dict[str, Any]]) -> None:
        buckets: dict[str, set[str]] = {}
        for key, obj in items.items():
            namespace = obj["metadata"].get("namespace")
            if namespace:
                bucket = buckets.get(namespace)
                if bucket is None:
                    buckets[namespace] = {key}
                else:
                    bucket.add(key)
        self.buckets = buckets


class Store:
    """A keyed cache of API objects with indexes (see the module docstring for the rules)."""

    def __init__(self, key_func: Callable[[Mapping[str, Any]], str] = object_key) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._indexes: dict[str, _Index] = {NAMESPACE_INDEX: _NamespaceIndex()}
        self._key = key_func

    # -- readers ---------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached object with this key (do not mutate it)."""
        return self._items.get(key)

    def get_object(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The cached object ``namespace/name`` (``namespace=None`` for cluster-scoped ones)."""
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every cached object (a new list of the shared objects)."""
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        """Every cached key."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Iterate over a snapshot of the cached objects."""
        return iter(list(self._items.values()))

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Add an index; existing objects are indexed at once. Names are unique."""
        if name in self._indexes:
            raise ValueError(f"index {name!r} already exists")
        index = _Index(fn)
        for key, obj in self._items.items():
            index.add(key, obj)
        self._indexes[name] = index

    def index_names(self) -> builtins.list[str]:
        """The names of the indexes, built-in ones included."""
        return list(self._indexes)

    def index_keys(self, name: str, value: str) -> builtins.list[str]:
        """Keys of the objects whose index ``name`` yields ``value``."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"no index named {name!r}; add it with add_index()")
        return list(index.buckets.get(value, ()))

    def by_index(self, name: str, value: str) -> builtins.list[dict[str, Any]]:
        """The objects whose index ``name`` yields ``value``."""
        items = self._items
        return [items[key] for key in self.index_keys(name, value)]

    def index_values(self, name: str) -> builtins.list[str]:
        """Every value index ``name`` currently holds."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"no index named {name!r}; add it with add_index()")
        return list(index.buckets)

    # -- the writer ------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Insert or replace ``obj``; returns the object it replaced, if any."""
        key = self._key(obj)
        items = self._items
        old = items.get(key)
        items[key] = obj
        if old is None:
            for index in self._indexes.values():
                index.add(key, obj)
        else:
            for index in self._indexes.values():
                index.remove(key, old)
                index.add(key, obj)
        return old

    def delete(self, key: str) -> dict[str, Any] | None:
        """Remove the object with ``key``; returns it (``None`` if it was not cached)."""
        old = self._items.pop(key, None)
        if old is not None:
            for index in self._indexes.values():
                index.remove(key, old)
        return old

    def replace(self, objects: Iterable[dict[str, Any]]) -> ReplaceResult:
        """Make the cache hold exactly ``objects``; returns what changed (by resourceVersion)."""
        old_items = self._items
        new_items: dict[str, dict[str, Any]] = {}
        key_of = self._key
        added: builtins.list[dict[str, Any]] = []
        updated: builtins.list[tuple[dict[str, Any], dict[str, Any]]] = []
        for obj in objects:
            key = key_of(obj)
            new_items[key] = obj
            old = old_items.get(key)
            if old is None:
                added.append(obj)
            elif old is not obj and _rv(old) != _rv(obj):
                updated.append((old, obj))
        deleted = [obj for key, obj in old_items.items() if key not in new_items]
        self._items = new_items
        for index in self._indexes.values():
            index.rebuild(new_items)
        return ReplaceResult(added, updated, deleted)

    def __repr__(self) -> str:
        return f"<Store {len(self._items)} objects, indexes={list(self._indexes)}>"
