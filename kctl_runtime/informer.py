"""Informers: a watcher feeding a store, with event handlers, resync and a shared factory.

Contract
--------
* :class:`Informer` lists and watches one resource (one :class:`~kctl_runtime.watcher.Watcher`),
  transforms each object once (default: :func:`strip_managed_fields`; :func:`compact_object` also
  interns string values, so the many copies of ``"TCP"`` or an image name share one string -- less
  memory for large caches, several times the transform's CPU per object) and keeps the result in
  :attr:`Informer.store`, then tells the handlers. The store is updated *before* the handlers are
  called, so a handler reading the store sees at least the state it is told about.
* Handlers are synchronous and must not block or await: they run inline on the watch loop (a
  controller's handler only enqueues a key). All handlers see all events in the same order;
  per object the order is the server's. An exception in a handler is logged and does not stop the
  informer or the other handlers.
* Per object, each handler sees ``on_add`` first, then ``on_update`` s, then ``on_delete``, and
  nothing after that unless the object is created again (``on_add``). resourceVersions never go
  backwards between two calls for the same object. If an object was deleted and re-created under
  the same name while we were disconnected (a new ``uid``), the handler sees ``on_delete(old)``
  then ``on_add(new)``, never an update across incarnations.
* After a relist (410 Gone, an expired list) the handlers get the difference against the cache:
  ``on_delete`` with the last known state for objects gone while disconnected (that state may be
  older than the real final state -- a tombstone), ``on_update`` for objects whose
  resourceVersion changed, ``on_add(obj, is_initial_list=False)`` for new ones; unchanged
  objects are not re-sent.
* The first complete list is delivered as ``on_add(obj, is_initial_list=True)`` and then
  :attr:`Informer.has_synced` turns true. The first list goes into the store and to the handlers
  page by page as it arrives (a page at a time between two turns of the event loop), not in one
  step at the end: a 50k-object cache sync never holds the loop for the whole list. Until
  ``has_synced`` the store holds the pages received so far. If that first list restarts, the next
  complete one is reconciled against what was delivered, like a relist (below).
* ``freeze_gc`` (default on): while the first list arrives, every ``page_size`` objects the
  informer moves what is alive to CPython's permanent generation (:func:`gc.freeze`), as
  ``Manager(freeze_gc=True)`` does once caches have synced. Cached objects live as long as the
  process; without this the collector rescans the growing cache in full passes of 100-300 ms
  at 20k-50k objects (measured, benchmarks/bench_informer.py). Cost: cyclic garbage created
  anywhere in the process during the first list is never collected (that window is seconds).
* A handler added after the first list receives synthetic
  ``on_add(obj, is_initial_list=True)`` for everything cached at that moment, within
  :meth:`Informer.add_handler`.
* Resync (off by default): every ``resync_period`` seconds of the injected clock, each handler
  with a period gets ``on_update(obj, obj)`` for every cached object -- a level-triggered safety
  net, not a relist: nothing is fetched from the server.
* NOT guaranteed: seeing every intermediate state of an object (the API compacts history and a
  relist shows only the latest state); exactly when a handler sees a change (readers may see
  stale data for as long as the watch lags).
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import structlog
from prometheus_client import Counter, Gauge

from kctl_runtime.clock import Clock, SystemClock, move_on_after
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.resource import Resource, object_key
from kctl_runtime.store import Store
from kctl_runtime.watcher import (
    Apply,
    Bookmark,
    Delete,
    Init,
    InitApply,
    InitDone,
    Watcher,
    WatcherConfig,
    WatcherEvent,
)

__all__ = [
    "HandlerRegistration",
    "Informer",
    "InformerFactory",
    "ResourceEventHandler",
    "ResourceEventHandlerFuncs",
    "Transform",
    "compact_object",
    "intern_strings",
    "strip_managed_fields",
]

_log = structlog.get_logger("kctl_runtime.informer")

Obj = dict[str, Any]
Transform = Callable[[Obj], Obj]

CACHE_SIZE = Gauge(
    "informer_cache_size", "Objects in an informer's cache.", ["resource", "informer"], registry=REGISTRY
)
EVENTS = Counter(
    "informer_events_received_total",
    "Objects received from the API server, by type (list, added/modified, deleted, bookmark).",
    ["resource", "informer", "type"],
    registry=REGISTRY,
)
WATCH_RESTARTS = Counter(
    "informer_watch_restarts_total",
    "Watches that were re-opened, by reason (ended, stalled, error, relist).",
    ["resource", "informer", "reason"],
    registry=REGISTRY,
)
RELISTS = Counter(
    "informer_relists_total",
    "Full lists after the first one (410 Gone, expired continue token).",
    ["resource", "informer"],
    registry=REGISTRY,
)


def strip_managed_fields(obj: Obj) -> Obj:
    """The default transform: drop ``metadata.managedFields`` (about 40% of a typical object).

    Transforms receive a freshly decoded dict that nothing else references, so they may mutate it
    in place and return it (as this one does) or return a new dict.
    """
    meta = obj.get("metadata")
    if meta is not None:
        meta.pop("managedFields", None)
    return obj


def intern_strings(obj: Obj) -> Obj:
    """Replace every string value in ``obj`` (at any depth) by its interned copy, in place.

    Cached objects of one kind repeat the same values (``"TCP"``, image names, label values,
    namespaces, volume paths): decoded JSON gives each its own string object, interned they share
    one. Measured on the Website example's children as the API server returns them (managedFields
    dropped): a Deployment 13.6 KB -> 9.9 KB, a Service 3.8 KB -> 2.2 KB, a Website 1.2 KB ->
    0.6 KB. Keys are already shared by the JSON decoder. Interned strings are freed when nothing
    holds them any more (CPython's interned strings are mortal), so unique values (uids,
    timestamps) do not accumulate. Cached objects must not be mutated (the store's contract), so
    sharing strings between them is safe; strings are immutable anyway.
    """
    stack: list[Any] = [obj]
    intern = sys.intern
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if type(value) is str:
                    node[key] = intern(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        else:
            for index, value in enumerate(node):
                if type(value) is str:
                    node[index] = intern(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return obj


def compact_object(obj: Obj) -> Obj:
    """:func:`strip_managed_fields`, then :func:`intern_strings` (opt-in: ``transform=compact_object``).

    What the cache keeps is the object as sent, minus ``metadata.managedFields``; only its memory
    layout changes (equal values, shared strings).
    """
    return intern_strings(strip_managed_fields(obj))


class ResourceEventHandler(Protocol):
    """What an informer calls. Synchronous and non-blocking: controllers just enqueue."""

    def on_add(self, obj: Obj, is_initial_list: bool) -> None: ...

    def on_update(self, old: Obj, new: Obj) -> None: ...

    def on_delete(self, obj: Obj) -> None: ...


@dataclass(frozen=True)
class ResourceEventHandlerFuncs:
    """A handler built from up to three plain functions; missing ones ignore their events."""

    add: Callable[[Obj, bool], None] | None = None
    update: Callable[[Obj, Obj], None] | None = None
    delete: Callable[[Obj], None] | None = None

    def on_add(self, obj: Obj, is_initial_list: bool) -> None:
        if self.add is not None:
            self.add(obj, is_initial_list)

    def on_update(self, old: Obj, new: Obj) -> None:
        if self.update is not None:
            self.update(old, new)

    def on_delete(self, obj: Obj) -> None:
        if self.delete is not None:
            self.delete(obj)


class HandlerRegistration:
    """A handler added to an informer; :meth:`remove` stops its events."""

    def __init__(
        self, informer: Informer, handler: ResourceEventHandler, resync_period: float | None
    ) -> None:
        self.handler = handler
        self.resync_period = resync_period
        self._informer = informer
        self._next_resync: float | None = None
        self.removed = False

    @property
    def has_synced(self) -> bool:
        """True once this handler has been told about the whole initial list."""
        return not self.removed and self._informer.has_synced

    def remove(self) -> None:
        """Stop delivering events to this handler (idempotent)."""
        self._informer._remove(self)

    def __repr__(self) -> str:
        return f"<HandlerRegistration {self.handler!r} on {self._informer.name}>"


class Informer:
    """List-watch one resource into a :class:`~kctl_runtime.store.Store` and tell handlers."""

    def __init__(
        self,
        api_client: Any,
        resource: Resource,
        *,
        config: WatcherConfig | None = None,
        transform: Transform | None = strip_managed_fields,
        resync_period: float | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        freeze_gc: bool = True,
    ) -> None:
        if resync_period is not None and resync_period <= 0:
            raise ValueError(f"resync_period must be > 0 or None, got {resync_period}")
        self.resource = resource
        self.config = config or WatcherConfig()
        self.name = name or _default_name(resource, self.config)
        self.clock: Clock = clock or SystemClock()
        self.resync_period = resync_period
        self.store = Store()
        self._transform = transform
        self._handlers: tuple[HandlerRegistration, ...] = ()
        self._buffer: list[Obj] | None = None  # a relist, compared with the cache at its end
        self._streamed: int | None = None  # objects of the first list delivered so far
        self._freeze_every = (self.config.page_size or 500) if freeze_gc else 0
        self._synced = False
        self._synced_event = anyio.Event()
        self._running = False
        self._resync_scope: anyio.CancelScope | None = None
        labels = (str(resource), self.name)
        self._m_list = EVENTS.labels(*labels, "list")
        self._m_apply = EVENTS.labels(*labels, "apply")
        self._m_delete = EVENTS.labels(*labels, "delete")
        self._m_bookmark = EVENTS.labels(*labels, "bookmark")
        self._m_relists = RELISTS.labels(*labels)
        self._labels = labels
        store_ref = weakref.ref(self.store)
        CACHE_SIZE.labels(*labels).set_function(lambda: float(len(s)) if (s := store_ref()) else 0.0)
        self.watcher = Watcher(
            api_client, resource, self.config, clock=self.clock, on_restart=self._on_restart
        )

    # -- public ----------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first complete list is in the store and was handed to the handlers."""
        return self._synced

    async def wait_synced(self) -> None:
        """Return once :attr:`has_synced` is true."""
        await self._synced_event.wait()

    def add_handler(
        self, handler: ResourceEventHandler, *, resync_period: float | None = None
    ) -> HandlerRegistration:
        """Start telling ``handler`` about events; it first gets adds for the current cache.

        ``resync_period`` defaults to the informer's; ``None`` on both means no resync.
        """
        period = resync_period if resync_period is not None else self.resync_period
        if period is not None and period <= 0:
            raise ValueError(f"resync_period must be > 0, got {period}")
        registration = HandlerRegistration(self, handler, period)
        if period is not None:
            registration._next_resync = self.clock.monotonic() + period
        self._handlers = (*self._handlers, registration)
        if self._synced:
            for obj in self.store.list():
                self._call(registration, "on_add", obj, True)
        self._wake_resync()
        return registration

    async def run(self) -> None:
        """List, watch and dispatch until cancelled. API errors are retried, never raised."""
        if self._running:
            raise RuntimeError(f"informer {self.name} is already running")
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._resync_loop)
                await self.watcher.run(self.process, page_sink=self.process_page)
        except ExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self._running = False

    def __repr__(self) -> str:
        return f"<Informer {self.name} synced={self._synced} objects={len(self.store)}>"

    # -- the reflector: watcher events -> store -> handlers -----------------------------------

    def process(self, event: WatcherEvent) -> None:
        """Apply one watcher event to the store and tell the handlers (the reflector step).

        :meth:`run` calls this for every event its watcher produces; call it yourself only to drive
        an informer from your own event source (tests, benchmarks) -- never alongside :meth:`run`.
        """
        kind = type(event)
        if kind is Apply:
            self._m_apply.inc()
            self._on_apply(event.object)  # type: ignore[union-attr]
        elif kind is InitApply:
            if self._streamed is not None:
                self._on_initial_run((event,), 0)
            elif self._buffer is not None:
                obj = event.object  # type: ignore[union-attr]
                self._buffer.append(obj if self._transform is None else self._transform(obj))
        elif kind is Delete:
            self._m_delete.inc()
            self._on_delete(event.object)  # type: ignore[union-attr]
        elif kind is Bookmark:
            self._m_bookmark.inc()
        elif kind is Init:
            restarted = self._buffer is not None or self._streamed is not None
            if restarted:  # a list that restarted: count what it had received
                self._m_list.inc(len(self._buffer) if self._buffer is not None else self._streamed or 0)
            if self._synced or restarted:
                self._m_relists.inc()
            if self._synced or restarted or len(self.store):
                self._streamed, self._buffer = None, []
            else:  # the first list, into an empty store: deliver it as it comes
                self._streamed, self._buffer = 0, None
        elif kind is InitDone:
            if self._streamed is not None:
                self._m_list.inc(self._streamed)
                self._streamed = None
                self._synced = True
                self._synced_event.set()
            else:
                self._on_listed()

    def process_page(self, events: Sequence[WatcherEvent]) -> None:
        """:meth:`process` every event of one list page, in order (what :meth:`run` does per page).

        The same effects as one :meth:`process` call per event; the objects of the first list go
        into the store and to the handlers in one loop (:meth:`_on_initial_run`).
        """
        process = self.process
        i, n = 0, len(events)
        while i < n:
            event = events[i]
            if type(event) is InitApply and self._streamed is not None:
                i = self._on_initial_run(events, i)
            else:
                process(event)
                i += 1

    def _on_initial_run(self, events: Sequence[WatcherEvent], start: int) -> int:
        """The ``InitApply`` events from ``start``, of the first list: into the store, then to the
        handlers (contract); returns the index after them.

        One loop with every lookup hoisted out of it: this is the informer's whole per-object cost
        at cache sync. A handler's exception is logged as :meth:`_call` does.
        """
        streamed = self._streamed or 0
        transform = self._transform
        apply = self.store.apply
        handlers = self._handlers
        freeze_every = self._freeze_every if gc.isenabled() else 0
        count = 0
        try:
            for event in itertools.islice(events, start, None):
                if type(event) is not InitApply:
                    break
                count += 1
                obj = event.object
                if transform is not None:
                    obj = transform(obj)
                streamed += 1
                if freeze_every and streamed % freeze_every == 0:
                    gc.freeze()
                old = apply(obj)
                if old is None:
                    for registration in handlers:
                        if not registration.removed:
                            try:
                                registration.handler.on_add(obj, True)
                            except Exception:
                                self._handler_failed(registration, "on_add")
                elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                    for registration in handlers:  # the same key twice in one list: keep the order rule
                        self._call(registration, "on_update", old, obj)
        finally:
            self._streamed = streamed
        return start + count

    def _on_apply(self, obj: Obj) -> None:
        if self._transform is not None:
            obj = self._transform(obj)
        old = self.store.apply(obj)
        if not self._handlers:
            return
        if old is None:
            self._dispatch_add(obj, False)
            return
        old_meta = old["metadata"]
        new_meta = obj["metadata"]
        if old_meta.get("resourceVersion") == new_meta.get("resourceVersion"):
            return
        if old_meta.get("uid") != new_meta.get("uid"):
            self._dispatch_delete(old)
            self._dispatch_add(obj, False)
            return
        for registration in self._handlers:
            self._call(registration, "on_update", old, obj)

    def _on_delete(self, obj: Obj) -> None:
        if self._transform is not None:
            obj = self._transform(obj)
        old = self.store.delete(object_key(obj))
        if old is not None:
            self._dispatch_delete(obj)

    def _on_listed(self) -> None:
        objects = self._buffer or []
        self._buffer = None
        self._m_list.inc(len(objects))
        initial = not self._synced
        result = self.store.replace(objects)
        self._synced = True
        for obj in result.deleted:
            self._dispatch_delete(obj)
        for old, new in result.updated:
            if old["metadata"].get("uid") != new["metadata"].get("uid"):
                self._dispatch_delete(old)
                self._dispatch_add(new, initial)
            else:
                for registration in self._handlers:
                    self._call(registration, "on_update", old, new)
        for obj in result.added:
            self._dispatch_add(obj, initial)
        self._synced_event.set()

    def _dispatch_add(self, obj: Obj, initial: bool) -> None:
        for registration in self._handlers:
            self._call(registration, "on_add", obj, initial)

    def _dispatch_delete(self, obj: Obj) -> None:
        for registration in self._handlers:
            self._call(registration, "on_delete", obj)

    def _call(self, registration: HandlerRegistration, method: str, *args: Any) -> None:
        if registration.removed:
            return
        try:
            getattr(registration.handler, method)(*args)
        except Exception:
            self._handler_failed(registration, method)

    def _handler_failed(self, registration: HandlerRegistration, method: str) -> None:
        _log.exception(
            "event handler failed", informer=self.name, handler=repr(registration.handler), call=method
        )

    def _on_restart(self, reason: str) -> None:
        WATCH_RESTARTS.labels(*self._labels, reason).inc()

    # -- handlers and resync -------------------------------------------------------------------

    def _remove(self, registration: HandlerRegistration) -> None:
        registration.removed = True
        self._handlers = tuple(r for r in self._handlers if r is not registration)
        self._wake_resync()

    def _wake_resync(self) -> None:
        if self._resync_scope is not None:
            self._resync_scope.cancel()

    async def _resync_loop(self) -> None:
        while True:
            deadlines = [r._next_resync for r in self._handlers if r._next_resync is not None]
            with anyio.CancelScope() as scope:
                self._resync_scope = scope
                if not deadlines:
                    await anyio.sleep_forever()
                await self.clock.sleep(min(deadlines) - self.clock.monotonic())
            self._resync_scope = None
            if scope.cancelled_caught:
                continue
            self._resync_due()

    def _resync_due(self) -> None:
        now = self.clock.monotonic()
        due = [r for r in self._handlers if r._next_resync is not None and r._next_resync <= now]
        if not due:
            return
        objects = self.store.list() if self._synced else []
        for registration in due:
            assert registration.resync_period is not None
            registration._next_resync = now + registration.resync_period
            for obj in objects:
                self._call(registration, "on_update", obj, obj)


def _default_name(resource: Resource, config: WatcherConfig) -> str:
    parts = [resource.group_resource]
    if config.namespace:
        parts.append(f"ns={config.namespace}")
    if config.label_selector:
        parts.append(f"labels={config.label_selector}")
    if config.field_selector:
        parts.append(f"fields={config.field_selector}")
    if config.metadata_only:
        parts.append("metadata")
    return ",".join(parts)


class InformerFactory:
    """Shares informers: the same resource and scope always give the same :class:`Informer`.

    ``config`` is the template for every informer's :class:`WatcherConfig` (page size, timeouts,
    backoff); each informer's namespace, selectors and metadata mode come from :meth:`informer`.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        clock: Clock | None = None,
        default_resync: float | None = None,
        config: WatcherConfig | None = None,
        transform: Transform | None = strip_managed_fields,
    ) -> None:
        self.api_client = api_client
        self.clock: Clock = clock or SystemClock()
        self.default_resync = default_resync
        self._template = config or WatcherConfig()
        self._transform = transform
        self._informers: dict[tuple[Resource, str | None, str | None, str | None, bool], Informer] = {}
        self._task_group: anyio.abc.TaskGroup | None = None

    def informer(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
    ) -> Informer:
        """The shared informer for this resource and scope (created, and started if running)."""
        key = (resource, namespace, label_selector or None, field_selector or None, metadata_only)
        informer = self._informers.get(key)
        if informer is None:
            config = dataclasses.replace(
                self._template,
                namespace=namespace,
                label_selector=label_selector or None,
                field_selector=field_selector or None,
                metadata_only=metadata_only,
            )
            informer = Informer(
                self.api_client,
                resource,
                config=config,
                transform=self._transform,
                resync_period=self.default_resync,
                clock=self.clock,
            )
            self._informers[key] = informer
            if self._task_group is not None:
                self._task_group.start_soon(informer.run, name=f"informer {informer.name}")
        return informer

    @property
    def informers(self) -> list[Informer]:
        """Every informer requested so far."""
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer, including ones requested later, until cancelled."""
        if self._task_group is not None:
            raise RuntimeError("this InformerFactory is already running")
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                for informer in list(self._informers.values()):
                    tg.start_soon(informer.run, name=f"informer {informer.name}")
                await anyio.sleep_forever()
        finally:
            self._task_group = None

    def unauthorized(self) -> bool:
        """Whether any informer's last list or watch was refused with 401 (credentials revoked)."""
        return any(i.watcher.unauthorized for i in self._informers.values())

    async def wait_for_sync(self, timeout: float | None = None) -> None:
        """Wait until every informer requested so far has synced.

        Raises :class:`TimeoutError` naming the informers that have not, after ``timeout`` seconds
        of the factory's clock.
        """
        async with move_on_after(self.clock, timeout) as waited:
            while pending := [i for i in self._informers.values() if not i.has_synced]:
                await pending[0].wait_synced()
        if waited.expired:
            names = [_unsynced(i) for i in self._informers.values() if not i.has_synced]
            if names:
                raise TimeoutError(f"informers not synced after {timeout}s: {', '.join(names)}")


def _unsynced(informer: Informer) -> str:
    """The informer's name, with the last list-watch failure (a 403 names RBAC) when there was one."""
    failure = informer.watcher.last_failure
    return f"{informer.name} (last error: {failure})" if failure else informer.name
