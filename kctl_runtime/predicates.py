"""Event filters: which informer events may enqueue a reconcile.

Contract
--------
A :class:`Predicate` is asked once per event, synchronously, on the informer's delivery path:
``create(obj)`` for adds (including the initial list), ``update(old, new)`` for updates (including
resyncs, where ``old`` and ``new`` carry the same resourceVersion), ``delete(obj)`` for deletes,
``generic(obj)`` for anything else. ``True`` lets the event through. Predicates must be fast, pure
and must not mutate the objects they are shown (the objects are the cache's own).

Predicates filter *events*, not state: a reconciler still re-reads everything it needs. Filtering
too much means a change is never reconciled until the next unfiltered event, so prefer few,
well-understood predicates.

Not guaranteed / caveats:

* :func:`generation_changed` drops every update of a kind without ``metadata.generation``
  (ConfigMaps, Secrets: generation stays absent) and drops resyncs; use it on the primary resource
  of a controller, not on owned ConfigMaps. Controller-level predicates in
  :class:`~kctl_runtime.controller.Controller` apply to the ``for_`` resource only, for that reason.
* :func:`label_selector` matches the labels the object has *now*; an update that removes the
  label is seen as ``update(old, new)`` and passes if either side matches, so the reconciler sees
  the object leave the selection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from kctl_runtime.selectors import LabelSelector

__all__ = [
    "LabelSelector",
    "Predicate",
    "and_",
    "annotations_changed",
    "from_functions",
    "generation_changed",
    "label_selector",
    "labels_changed",
    "namespace_in",
    "not_",
    "or_",
    "resource_version_changed",
]

Obj = Mapping[str, Any]


@runtime_checkable
class Predicate(Protocol):
    """Decides, per event, whether it may enqueue a reconcile."""

    def create(self, obj: Obj) -> bool: ...

    def update(self, old: Obj, new: Obj) -> bool: ...

    def delete(self, obj: Obj) -> bool: ...

    def generic(self, obj: Obj) -> bool: ...


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _true1(_obj: Obj) -> bool:
    return True


def _true2(_old: Obj, _new: Obj) -> bool:
    return True


class _Funcs:
    """A predicate built from up to four functions; a missing one lets its events through."""

    __slots__ = ("_create", "_delete", "_generic", "_name", "_update")

    def __init__(
        self,
        create: Callable[[Obj], bool] | None = None,
        update: Callable[[Obj, Obj], bool] | None = None,
        delete: Callable[[Obj], bool] | None = None,
        generic: Callable[[Obj], bool] | None = None,
        *,
        name: str = "from_functions",
    ) -> None:
        self._create = create or _true1
        self._update = update or _true2
        self._delete = delete or _true1
        self._generic = generic or _true1
        self._name = name

    def create(self, obj: Obj) -> bool:
        return self._create(obj)

    def update(self, old: Obj, new: Obj) -> bool:
        return self._update(old, new)

    def delete(self, obj: Obj) -> bool:
        return self._delete(obj)

    def generic(self, obj: Obj) -> bool:
        return self._generic(obj)

    def __repr__(self) -> str:
        return self._name


def from_functions(
    create: Callable[[Obj], bool] | None = None,
    update: Callable[[Obj, Obj], bool] | None = None,
    delete: Callable[[Obj], bool] | None = None,
    generic: Callable[[Obj], bool] | None = None,
) -> Predicate:
    """A predicate from plain functions; an omitted function means "let those events through"."""
    return _Funcs(create, update, delete, generic)


def generation_changed() -> Predicate:
    """Pass updates whose ``metadata.generation`` changed (spec changes); skip status-only updates.

    Creates, deletes and generic events pass. Kinds without a generation never pass an update.
    """

    def update(old: Obj, new: Obj) -> bool:
        return _meta(old).get("generation") != _meta(new).get("generation")

    return _Funcs(update=update, name="generation_changed()")


def labels_changed() -> Predicate:
    """Pass updates whose ``metadata.labels`` changed; creates, deletes and generic events pass."""

    def update(old: Obj, new: Obj) -> bool:
        return (_meta(old).get("labels") or {}) != (_meta(new).get("labels") or {})

    return _Funcs(update=update, name="labels_changed()")


def annotations_changed() -> Predicate:
    """Pass updates whose ``metadata.annotations`` changed; other events pass."""

    def update(old: Obj, new: Obj) -> bool:
        return (_meta(old).get("annotations") or {}) != (_meta(new).get("annotations") or {})

    return _Funcs(update=update, name="annotations_changed()")


def resource_version_changed() -> Predicate:
    """Pass updates whose ``metadata.resourceVersion`` changed: drops resyncs, keeps real updates."""

    def update(old: Obj, new: Obj) -> bool:
        return _meta(old).get("resourceVersion") != _meta(new).get("resourceVersion")

    return _Funcs(update=update, name="resource_version_changed()")


def label_selector(selector: str | LabelSelector) -> Predicate:
    """Pass events for objects whose labels match ``selector`` (Kubernetes selector syntax).

    An update passes when the old *or* the new object matches, so leaving the selection is seen.
    """
    sel = selector if isinstance(selector, LabelSelector) else LabelSelector.parse(selector)

    def one(obj: Obj) -> bool:
        return sel.matches(_meta(obj).get("labels") or {})

    def update(old: Obj, new: Obj) -> bool:
        return one(old) or one(new)

    return _Funcs(one, update, one, one, name=f"label_selector({str(sel)!r})")


def namespace_in(*namespaces: str) -> Predicate:
    """Pass events for objects in one of ``namespaces`` (cluster-scoped objects never pass)."""
    allowed = frozenset(namespaces)
    if not allowed:
        raise ValueError("namespace_in() needs at least one namespace")

    def one(obj: Obj) -> bool:
        return _meta(obj).get("namespace") in allowed

    def update(_old: Obj, new: Obj) -> bool:
        return one(new)

    return _Funcs(one, update, one, one, name=f"namespace_in{tuple(sorted(allowed))!r}")


class _All:
    __slots__ = ("_ps",)

    def __init__(self, ps: tuple[Predicate, ...]) -> None:
        self._ps = ps

    def create(self, obj: Obj) -> bool:
        return all(p.create(obj) for p in self._ps)

    def update(self, old: Obj, new: Obj) -> bool:
        return all(p.update(old, new) for p in self._ps)

    def delete(self, obj: Obj) -> bool:
        return all(p.delete(obj) for p in self._ps)

    def generic(self, obj: Obj) -> bool:
        return all(p.generic(obj) for p in self._ps)

    def __repr__(self) -> str:
        return f"and_({', '.join(map(repr, self._ps))})"


class _Any:
    __slots__ = ("_ps",)

    def __init__(self, ps: tuple[Predicate, ...]) -> None:
        self._ps = ps

    def create(self, obj: Obj) -> bool:
        return any(p.create(obj) for p in self._ps)

    def update(self, old: Obj, new: Obj) -> bool:
        return any(p.update(old, new) for p in self._ps)

    def delete(self, obj: Obj) -> bool:
        return any(p.delete(obj) for p in self._ps)

    def generic(self, obj: Obj) -> bool:
        return any(p.generic(obj) for p in self._ps)

    def __repr__(self) -> str:
        return f"or_({', '.join(map(repr, self._ps))})"


class _Not:
    __slots__ = ("_p",)

    def __init__(self, p: Predicate) -> None:
        self._p = p

    def create(self, obj: Obj) -> bool:
        return not self._p.create(obj)

    def update(self, old: Obj, new: Obj) -> bool:
        return not self._p.update(old, new)

    def delete(self, obj: Obj) -> bool:
        return not self._p.delete(obj)

    def generic(self, obj: Obj) -> bool:
        return not self._p.generic(obj)

    def __repr__(self) -> str:
        return f"not_({self._p!r})"


def _check(ps: Iterable[Predicate]) -> tuple[Predicate, ...]:
    out = tuple(ps)
    for p in out:
        if not isinstance(p, Predicate):
            raise TypeError(f"{p!r} is not a Predicate (needs create/update/delete/generic)")
    return out


def and_(*predicates: Predicate) -> Predicate:
    """Pass an event only if every predicate passes it (``and_()`` passes everything)."""
    return _All(_check(predicates))


def or_(*predicates: Predicate) -> Predicate:
    """Pass an event if any predicate passes it (``or_()`` passes nothing)."""
    return _Any(_check(predicates))


def not_(predicate: Predicate) -> Predicate:
    """Invert a predicate for every event type."""
    return _Not(_check([predicate])[0])
