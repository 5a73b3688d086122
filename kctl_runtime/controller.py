"""Controllers: informer events in, one reconcile per key at a time out.

Contract
--------
A :class:`Controller` composes the pieces below it: it asks an
:class:`~kctl_runtime.informer.InformerFactory` for shared informers, maps their events to
:class:`~kctl_runtime.reconcile.Request` keys, queues the keys in a
:class:`~kctl_runtime.queue.WorkQueue` named after the controller, and runs
``max_concurrent_reconciles`` workers that call the reconciler.

Which events enqueue which key:

* ``for_`` -- every add, update (including resyncs) and delete of the primary resource enqueues
  that object's own key, after the controller's ``predicates`` let it through.
* ``owns`` -- an event on an owned object enqueues the owner named by its *controller*
  ``ownerReference`` (``controller: true``) whose ``apiVersion`` group and ``kind`` are those of
  ``for_``; on update, the owners of both the old and the new object. Owners live in the owned
  object's namespace (or are cluster-scoped when ``for_`` is). Controller predicates do not apply
  here (``generation_changed`` would drop every ConfigMap update); ``Owns(resource, predicates)``
  gives an owned resource filters of its own.
* ``watches`` -- each :class:`Watch` maps an event's object (old and new, on update) to any number
  of requests with its ``map_fn``, after its own predicates.

Guarantees:

* **One key, one reconcile at a time** -- the queue never hands a key to two workers; a key
  queued again while it is being reconciled runs once more afterwards.
* **Events for a waiting key merge** -- many events for a key that has not started yet cause one
  reconcile. The log field ``trigger`` names the last reason recorded before it started
  (``"Website add"``, ``"Deployment update (owner)"``, ``"ConfigMap delete (watch)"``,
  ``"Website resync"``, ``"requeue_after"``, ``"retry"``).
* **Outcomes** (see :mod:`kctl_runtime.reconcile`): ``None`` forgets the key's failures;
  :class:`~kctl_runtime.reconcile.RequeueAfter` forgets them and re-adds the key after the delay;
  an exception re-adds it through the rate limiter (5 ms, 10 ms, 20 ms, ... by default);
  :class:`~kctl_runtime.reconcile.TerminalError` is logged and counted, and the key is forgotten.
* **Error logs** -- one line per failed reconcile. Expected failures carry no traceback: a
  :class:`~kctl_runtime.reconcile.TerminalError` (a user's mistake) is a warning; a failed API call
  is logged at :func:`~kctl_runtime.errors.expected_failure_level` (info for 409, 404 and a
  terminating namespace, warning for 422, 429, 5xx and connection failures, error for other API
  answers). Any other exception is a bug: logged at error level with its traceback.
* **Context** -- each reconcile runs with structlog contextvars ``controller``, ``namespace``,
  ``name``, ``reconcile_id`` (a fresh UUID) and ``trigger`` bound, so every log line the
  reconciler writes carries them.
* **Stopping** -- :meth:`Controller.stop` is the graceful stop: workers take no new keys, the
  reconciles in flight run to completion, then :meth:`Controller.run` returns. Cancelling
  :meth:`Controller.run` is the forceful stop: in-flight reconciles are cancelled. The
  :class:`~kctl_runtime.manager.Manager` does the first and, after ``graceful_shutdown_timeout``,
  the second. Queued and delayed keys are dropped on stop; the next process's initial list finds
  them again (level-based).

Metrics (controller-runtime's names, label ``controller``): ``controller_runtime_reconcile_total``
(with ``result`` = success | error | requeue | requeue_after; ``requeue`` stays 0 -- there is no
``requeue: bool``), ``controller_runtime_reconcile_errors_total``,
``controller_runtime_terminal_reconcile_errors_total``, ``controller_runtime_reconcile_time_seconds``,
``controller_runtime_max_concurrent_reconciles``, ``controller_runtime_active_workers``. The queue
exports the ``workqueue_*`` metrics with ``name`` = the controller's name.

Not guaranteed: a reconcile per event; ordering between keys; that a reconcile sees the state
that triggered it (it sees the cache's current state, which may be newer -- or, for a reconciler
reading through the API, older than the cache). A reconciler that never returns holds its worker
forever (there is no per-reconcile timeout; add one inside the reconciler if you need it).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from prometheus_client import Counter, Gauge, Histogram

from kctl_runtime.clock import Clock, SystemClock, move_on_after
from kctl_runtime.errors import ApiError, expected_failure_level
from kctl_runtime.informer import HandlerRegistration, Informer, InformerFactory, _unsynced
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.ownership import controller_name
from kctl_runtime.predicates import Predicate
from kctl_runtime.queue import ShutDown, WorkQueue
from kctl_runtime.ratelimit import RateLimiter
from kctl_runtime.reconcile import (
    ReconcileFunc,
    Reconciler,
    Request,
    RequeueAfter,
    Result,
    TerminalError,
    as_reconciler,
)
from kctl_runtime.resource import Resource

__all__ = ["ALL_NAMESPACES", "Controller", "Owns", "Watch", "enqueue_owner", "owner_requests"]

_log = structlog.get_logger("kctl_runtime.controller")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_RESULTS = ("success", "error", "requeue", "requeue_after")
# controller-runtime's reconcile_time_seconds buckets
_TIME_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9),
    *(1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0),
    *(25.0, 30.0, 40.0, 50.0, 60.0),
)

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller",
    ["controller"],
    registry=REGISTRY,
)
TERMINAL_ERRORS = Counter(
    "controller_runtime_terminal_reconcile_errors_total",
    "Total number of terminal reconciliation errors per controller",
    ["controller"],
    registry=REGISTRY,
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller",
    ["controller"],
    buckets=_TIME_BUCKETS,
    registry=REGISTRY,
)
MAX_CONCURRENT = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller",
    ["controller"],
    registry=REGISTRY,
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller",
    ["controller"],
    registry=REGISTRY,
)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")

Obj = Mapping[str, Any]
MapFunc = Callable[[dict[str, Any]], Iterable[Request]]

ALL_NAMESPACES = ""
"""A :class:`Watch` namespace meaning every namespace (client-go's ``metav1.NamespaceAll``)."""


@dataclass(frozen=True)
class Watch:
    """Reconcile whatever ``map_fn`` names when an object of ``resource`` changes.

    ``map_fn(obj)`` returns the requests to enqueue (any iterable, possibly empty); it is called on
    the informer's delivery path, so it must be fast and must not block (read the cache, not the
    API). ``predicates`` filter this watch's events before mapping.

    Scope: ``namespace=None`` (the default) watches in the controller's namespace; a namespace name
    watches that namespace; ``ALL_NAMESPACES`` (``""``, client-go's ``NamespaceAll``) watches every
    namespace even when the controller itself is namespace-scoped (for objects that live elsewhere,
    such as a group namespace's ServiceAccounts). ``label_selector`` narrows the informer on the
    server, so only matching objects are cached.
    """

    resource: Resource
    map_fn: MapFunc
    predicates: Sequence[Predicate] = ()
    namespace: str | None = None
    label_selector: str | None = None


@dataclass(frozen=True)
class Owns:
    """An owned resource with its own event filters.

    ``owns=[Owns(DEPLOYMENTS, [resource_version_changed()])]`` drops resyncs of owned Deployments.

    A bare :class:`~kctl_runtime.resource.Resource` in ``owns`` is ``Owns(resource)`` (no filters).
    ``label_selector`` narrows the owned resource's informer on the server, so only matching objects
    are cached and seen (a sharded controller selects its shard's children this way).
    """

    resource: Resource
    predicates: Sequence[Predicate] = ()
    label_selector: str | None = None


def owner_requests(obj: Obj, owner: Resource) -> list[Request]:
    """The request for ``obj``'s controller owner if that owner is of kind ``owner`` (else ``[]``).

    Only the ownerReference with ``controller: true`` counts, matched on API group and kind (any
    version), as controller-runtime's ``EnqueueRequestForOwner(OnlyControllerOwner)`` does.
    """
    name = controller_name(obj, owner)
    if name is None:
        return []
    if owner.namespaced:
        namespace = (obj.get("metadata") or {}).get("namespace")
        if not namespace:
            return []  # a cluster-scoped object cannot have a namespaced owner
        return [Request(name, str(namespace))]
    return [Request(name)]


def enqueue_owner(owner: Resource) -> MapFunc:
    """A ``map_fn`` for :class:`Watch` that maps an object to its controller owner of kind ``owner``."""

    def map_fn(obj: dict[str, Any]) -> list[Request]:
        return owner_requests(obj, owner)

    return map_fn


class _Handler:
    """Informer handler for one source of a controller: filters, maps, enqueues with a trigger."""

    __slots__ = ("_controller", "_kind", "_map", "_map_old", "_predicates", "_suffix")

    def __init__(
        self,
        controller: Controller,
        kind: str,
        map_fn: MapFunc,
        predicates: Sequence[Predicate],
        *,
        suffix: str,
        map_old: bool,
    ) -> None:
        self._controller = controller
        self._kind = kind
        self._map = map_fn
        self._predicates = tuple(predicates)
        self._suffix = suffix
        self._map_old = map_old

    def _requests(self, obj: dict[str, Any]) -> Iterable[Request]:
        try:
            return list(self._map(obj))
        except Exception:
            meta = obj.get("metadata") or {}
            _log.exception(
                "mapping an event to requests failed; event dropped",
                controller=self._controller.name,
                kind=self._kind,
                object=f"{meta.get('namespace') or ''}/{meta.get('name')}",
            )
            return ()

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        if all(p.create(obj) for p in self._predicates):
            trigger = f"{self._kind} add{self._suffix}"
            for request in self._requests(obj):
                self._controller.enqueue(request, trigger=trigger)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if not all(p.update(old, new) for p in self._predicates):
            return
        old_rv = (old.get("metadata") or {}).get("resourceVersion")
        new_rv = (new.get("metadata") or {}).get("resourceVersion")
        verb = "resync" if old is new or (old_rv is not None and old_rv == new_rv) else "update"
        trigger = f"{self._kind} {verb}{self._suffix}"
        requests = list(self._requests(new))
        if self._map_old and old is not new:
            requests.extend(r for r in self._requests(old) if r not in requests)
        for request in requests:
            self._controller.enqueue(request, trigger=trigger)

    def on_delete(self, obj: dict[str, Any]) -> None:
        if all(p.delete(obj) for p in self._predicates):
            trigger = f"{self._kind} delete{self._suffix}"
            for request in self._requests(obj):
                self._controller.enqueue(request, trigger=trigger)

    def __repr__(self) -> str:
        return f"<controller {self._controller.name} handler for {self._kind}{self._suffix}>"


@dataclass(frozen=True)
class _Source:
    resource: Resource
    namespace: str | None
    label_selector: str | None
    handler: _Handler


def _self_request(obj: dict[str, Any]) -> list[Request]:
    return [Request.from_object(obj)]


class Controller:
    """Runs a reconciler for one kind of object; see the module docstring for the contract.

    Args:
        name: unique per process; names the queue, the metrics' ``controller`` label and the logs.
            Lower-case letters, digits, ``-``, ``_`` and ``.``.
        for_: the primary resource; its objects' keys are the requests.
        reconciler: a :class:`~kctl_runtime.reconcile.Reconciler` or ``async def fn(request)``.
        owns: resources whose objects carry a controller ownerReference to a ``for_`` object
            (a :class:`~kctl_runtime.resource.Resource`, or :class:`Owns` to add event filters).
        watches: other resources, mapped to requests by each :class:`Watch`'s ``map_fn``.
        predicates: filters for ``for_`` events (not for owned or watched ones).
        max_concurrent_reconciles: workers; distinct keys reconcile in parallel up to this (1).
        rate_limiter: per-key retry backoff for failed reconciles (default: controller-runtime's,
            5 ms doubling to 1000 s per key, and 10 qps / burst 100 overall).
        namespace: watch only this namespace (``None``: all, or the manager's namespace).
        label_selector: watch only ``for_`` objects matching it (server-side selection).
        cache_sync_timeout: seconds :meth:`run` waits for its informers to sync before failing
            with ``TimeoutError`` naming them (``None``: wait forever; the manager already waits).
        clock: time source for queue delays and the reconcile-time metric.
    """

    def __init__(
        self,
        name: str,
        *,
        for_: Resource,
        reconciler: Reconciler | ReconcileFunc,
        owns: Sequence[Resource | Owns] = (),
        watches: Sequence[Watch] = (),
        predicates: Sequence[Predicate] = (),
        max_concurrent_reconciles: int = 1,
        rate_limiter: RateLimiter[Any] | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
        cache_sync_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"controller name {name!r} must be lower-case letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
        if not isinstance(for_, Resource):
            raise TypeError(f"for_ must be a Resource, got {type(for_).__name__}")
        if isinstance(max_concurrent_reconciles, bool) or not isinstance(max_concurrent_reconciles, int):
            raise TypeError("max_concurrent_reconciles must be an int")
        if max_concurrent_reconciles < 1:
            raise ValueError(f"max_concurrent_reconciles must be >= 1, got {max_concurrent_reconciles}")
        owned_list = [o if isinstance(o, Owns) else Owns(o) for o in owns]
        for entry in owned_list:
            owned = entry.resource
            if not isinstance(owned, Resource):
                raise TypeError(f"owns entries must be Resources or Owns(...), got {owned!r}")
            if owned.namespaced is False and for_.namespaced:
                raise ValueError(
                    f"{owned.group_resource} is cluster-scoped and cannot be owned by namespaced {for_.kind}"
                )
        for watch in watches:
            if not isinstance(watch, Watch):
                raise TypeError(f"watches entries must be Watch(...), got {watch!r}")
        if cache_sync_timeout is not None and cache_sync_timeout <= 0:
            raise ValueError("cache_sync_timeout must be > 0 or None")
        self.name = name
        self.for_ = for_
        self.reconciler: Reconciler = as_reconciler(reconciler)
        self.owns = tuple(owned_list)
        self.watches = tuple(watches)
        self.predicates = tuple(predicates)
        self.max_concurrent_reconciles = max_concurrent_reconciles
        self.namespace = namespace
        self.label_selector = label_selector or None
        self.cache_sync_timeout = cache_sync_timeout
        self._clock: Clock = clock or SystemClock()
        self.queue: WorkQueue[Request] = WorkQueue(name=name, rate_limiter=rate_limiter, clock=self._clock)
        # the reason recorded for a key by the last direct add, and by the last delayed add
        self._triggers: dict[Request, str] = {}
        self._delayed_triggers: dict[Request, str] = {}
        self._started = False
        self._stopped = False
        self._stop_requested: anyio.Event | None = None
        self._log = _log.bind(controller=name)
        self.unauthorized = False
        """Whether the last reconcile failed with 401 (credentials revoked); the manager's
        ``/healthz`` fails while it holds, so the pod is restarted instead of enforcing nothing."""
        # label children looked up once: the per-reconcile path only increments
        self._m_total = {result: RECONCILE_TOTAL.labels(name, result) for result in _RESULTS}
        self._m_errors = RECONCILE_ERRORS.labels(name)
        self._m_terminal = TERMINAL_ERRORS.labels(name)
        self._m_time = RECONCILE_TIME.labels(name)
        self._m_active = ACTIVE_WORKERS.labels(name)
        self._m_active.set(0)
        MAX_CONCURRENT.labels(name).set(max_concurrent_reconciles)

    def __repr__(self) -> str:
        return f"Controller({self.name!r}, for_={self.for_.kind}, workers={self.max_concurrent_reconciles})"

    # ------------------------------------------------------------------ sources

    def _scope(self, resource: Resource) -> str | None:
        return self.namespace if resource.namespaced else None

    def sources(self) -> list[tuple[Resource, str | None, str | None]]:
        """The informers this controller reads: ``(resource, namespace, label_selector)`` each."""
        return [(s.resource, s.namespace, s.label_selector) for s in self._sources()]

    def _sources(self) -> list[_Source]:
        out = [
            _Source(
                self.for_,
                self._scope(self.for_),
                self.label_selector,
                _Handler(self, self.for_.kind, _self_request, self.predicates, suffix="", map_old=False),
            )
        ]
        for owned in self.owns:
            out.append(
                _Source(
                    owned.resource,
                    self._scope(owned.resource),
                    owned.label_selector or None,
                    _Handler(
                        self,
                        owned.resource.kind,
                        enqueue_owner(self.for_),
                        owned.predicates,
                        suffix=" (owner)",
                        map_old=True,
                    ),
                )
            )
        for watch in self.watches:
            scope = self._scope(watch.resource)
            if watch.namespace is not None and watch.resource.namespaced:
                scope = watch.namespace or None  # "" is every namespace
            out.append(
                _Source(
                    watch.resource,
                    scope,
                    watch.label_selector or None,
                    _Handler(
                        self,
                        watch.resource.kind,
                        watch.map_fn,
                        watch.predicates,
                        suffix=" (watch)",
                        map_old=True,
                    ),
                )
            )
        return out

    # ------------------------------------------------------------------ queueing

    def enqueue(self, request: Request, *, trigger: str = "external") -> None:
        """Queue ``request`` now (deduplicated), recording ``trigger`` as why. Safe from handlers."""
        if self.queue.shutting_down:
            return
        self._triggers[request] = trigger
        self.queue.add(request)

    def _take_trigger(self, request: Request) -> str:
        trigger = self._triggers.pop(request, None)
        if trigger is None:
            trigger = self._delayed_triggers.pop(request, "unknown")
        return trigger

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is in progress."""
        return self._started and not self._stopped

    def stop(self) -> None:
        """Graceful stop: take no new keys; in-flight reconciles finish, then :meth:`run` returns."""
        self.queue.shut_down()
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self, informers: InformerFactory) -> None:
        """Register handlers, wait for the caches, run the workers until :meth:`stop` or cancellation.

        ``informers`` must be running (``InformerFactory.run`` in the same or a parent task group);
        the manager does that. A controller runs once; create a new one to run again.
        """
        if self._started:
            raise RuntimeError(f"controller {self.name} has already been run; controllers run once")
        self._started = True
        self._stop_requested = anyio.Event()
        if self.queue.shutting_down:
            self._stop_requested.set()
        registrations: list[HandlerRegistration] = []
        try:
            watched: list[Informer] = []
            for source in self._sources():
                informer = informers.informer(
                    source.resource, namespace=source.namespace, label_selector=source.label_selector
                )
                watched.append(informer)
                registrations.append(informer.add_handler(source.handler))
            await self._wait_synced(watched)
            if self.queue.shutting_down:
                return
            MAX_CONCURRENT.labels(self.name).set(self.max_concurrent_reconciles)
            self._log.info("starting workers", worker_count=self.max_concurrent_reconciles)
            async with anyio.create_task_group() as tg:
                for index in range(self.max_concurrent_reconciles):
                    tg.start_soon(self._worker, name=f"controller {self.name} worker {index}")
            self._log.info("all workers finished")
        finally:
            for registration in registrations:
                registration.remove()
            self.queue.shut_down()
            self._triggers.clear()
            self._delayed_triggers.clear()
            self._stopped = True

    async def _wait_synced(self, watched: list[Informer]) -> None:
        pending = [i for i in watched if not i.has_synced]
        if not pending:
            return
        self._log.info("waiting for caches to sync", informers=[i.name for i in pending])

        async def stopped(scope: anyio.CancelScope, event: anyio.Event) -> None:
            # stop() during the wait ends it; run() then returns without starting workers
            await event.wait()
            scope.cancel()

        async with (
            move_on_after(self._clock, self.cache_sync_timeout) as waited,
            anyio.create_task_group() as tg,
        ):
            if self._stop_requested is not None:
                tg.start_soon(stopped, tg.cancel_scope, self._stop_requested)
            for informer in pending:
                await informer.wait_synced()
            tg.cancel_scope.cancel()
        if waited.expired:
            names = [_unsynced(i) for i in watched if not i.has_synced]
            if names:
                raise TimeoutError(
                    f"controller {self.name}: caches not synced after {self.cache_sync_timeout}s: "
                    f"{', '.join(names)}"
                )

    async def _worker(self) -> None:
        while True:
            try:
                async with self.queue.get() as request:
                    await self._reconcile_one(request)
            except ShutDown:
                return

    async def _reconcile_one(self, request: Request) -> None:
        trigger = self._take_trigger(request)
        reconcile_id = str(uuid.uuid4())
        active = self._m_active
        active.inc()
        started = self._clock.monotonic()
        with structlog.contextvars.bound_contextvars(
            controller=self.name,
            namespace=request.namespace,
            name=request.name,
            reconcile_id=reconcile_id,
            trigger=trigger,
        ):
            try:
                result = await self._call(request)
            except TerminalError as exc:
                self.queue.forget(request)
                self._m_terminal.inc()
                self._m_errors.inc()
                self._m_total["error"].inc()
                # a user's mistake (the reconciler reports it on the object): no traceback
                self._log.warning("terminal reconcile error; not retrying", error=str(exc))
            except Exception as exc:
                self.unauthorized = _is_unauthorized(exc)
                self._delayed_triggers[request] = "retry"
                self.queue.add_rate_limited(request)
                self._m_errors.inc()
                self._m_total["error"].inc()
                level = expected_failure_level(exc)
                self._log.log(
                    _LEVELS[level or "error"],
                    "reconcile failed; will retry",
                    error=str(exc) or type(exc).__name__,
                    error_type=type(exc).__name__,
                    retries=self.queue.num_requeues(request),
                    exc_info=exc if level is None else None,
                )
            else:
                self.unauthorized = False
                self.queue.forget(request)
                if result is None:
                    self._m_total["success"].inc()
                else:
                    self._delayed_triggers[request] = "requeue_after"
                    self.queue.add_after(request, result.seconds)
                    self._m_total["requeue_after"].inc()
            finally:
                self._m_time.observe(max(0.0, self._clock.monotonic() - started))
                active.dec()

    async def _call(self, request: Request) -> Result:
        result = await self.reconciler.reconcile(request)
        if result is not None and not isinstance(result, RequeueAfter):
            raise TypeError(
                f"reconciler returned {result!r}; return None (done) or RequeueAfter(seconds), "
                "or raise to retry"
            )
        return result


def _is_unauthorized(exc: BaseException) -> bool:
    """A 401 answer, also when wrapped (``wraps_cause``, as the finalizer helper's errors are)."""
    while getattr(type(exc), "wraps_cause", False) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(exc, ApiError) and exc.status == 401
