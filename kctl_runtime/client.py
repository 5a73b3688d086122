"""The client controllers use: reads from the informer cache, writes to the API.

Contract
--------
* **Reads** (:meth:`Client.get`, :meth:`Client.list`) are served from a synced informer cache when
  the :class:`Cache` knows one for that resource and scope -- an informer over all namespaces
  serves every namespace; one over namespace ``x`` serves only ``x``; informers with a label or
  field selector, or metadata-only ones, never serve reads (they would answer "not found" for
  objects outside their selection). Otherwise, or while the informer has not synced yet, the read
  goes to the API. The :class:`~kctl_runtime.manager.Manager` registers the informers of its
  controllers, so a reconciler's reads of its own and its owned kinds cost no request.
* **Indexes** (controller-runtime's field indexers): :meth:`Cache.index_field` names a field --
  real or made up, such as ``"spec.group"`` or ``".status.liveGroup"`` -- and a function giving an
  object's values for it; :meth:`Cache.index_label` indexes a label key. A cached
  :meth:`Client.list` whose field selector has ``field=value`` on an indexed field, or whose label
  selector has ``key=value`` / ``key in (...)`` on an indexed label, looks only at that index's
  bucket instead of every cached object; the answer is the same as without the index. A field
  selector on an indexed field is evaluated with the index function (so made-up fields work);
  without a synced cache it goes to the API server, which rejects fields it does not know.
* ``limit`` on :meth:`Client.list` returns at most that many items: from the cache, the first in
  (namespace, name) order, copied after the cut; from the API, the first page only.
* Cached reads may be **stale** (milliseconds to seconds behind the server) and report
  ``NotFound`` for an object created a moment ago. That is fine for level-based reconcilers: the
  watch event for the change triggers the next reconcile. Use :attr:`Client.api` when you must
  read your own write (rare), e.g. before deciding something irreversible.
* Objects returned are **copies** (one orjson round trip): mutate and send them back freely; the
  cache is never affected. Cached objects may lack fields the informer strips (``managedFields``).
  Items returned by :meth:`Client.list` always carry ``apiVersion`` and ``kind``.
* **Typed** reads and writes: pass a :class:`~kctl_runtime.customresource.CustomResource` class
  instead of a :class:`Resource` (``client.get(Website, name, ns)``) and the answer is parsed into
  it at read time (the cache keeps dicts); :meth:`Client.create`, :meth:`Client.update` and
  :meth:`Client.update_status` take and return model instances the same way. An object that does
  not parse raises :class:`~kctl_runtime.customresource.InvalidObject` naming its bad fields.
  Built-in kinds stay dicts.
* **Writes** always go to the API, as raw JSON dicts encoded and decoded with orjson
  (:mod:`kctl_runtime._rest`: no model classes, no ``sanitize_for_serialization`` walk). The
  answer is the server's object. :meth:`Client.update` and :meth:`Client.update_status` use the
  ``resourceVersion`` in the object for optimistic concurrency (a stale one raises
  :class:`~kctl_runtime.errors.Conflict`).
* **Errors** are the typed :mod:`kctl_runtime.errors` hierarchy (``NotFound``, ``Conflict``, ...).
  ``NotFound`` from :meth:`Client.delete` is raised unless ``ignore_not_found=True``.
* **Retries**: errors for which :func:`kctl_runtime.errors.is_transient` holds (429, 5xx,
  connection failures) are retried with exponential backoff and jitter (tenacity), at most
  ``RetryPolicy.attempts`` attempts in all; a ``Retry-After`` from the server replaces the backoff
  for that wait (capped at ``RetryPolicy.max_retry_after``). Waiting uses the injected clock.

Not guaranteed: exactly-once writes. A write that failed with a 5xx or a dropped connection may
have been applied; its retry then sees the effect -- ``AlreadyExists`` for a create, ``NotFound``
for a delete, ``Conflict`` for an update with a resourceVersion. Reconcilers treat those as the
normal races they are.
"""

from __future__ import annotations

import builtins
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, TypeVar, cast, overload

import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from kctl_runtime._rest import request_json
from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.errors import Gone, NotFound, is_transient
from kctl_runtime.patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from kctl_runtime.resource import Resource
from kctl_runtime.selectors import FieldSelector, LabelSelector, SelectorError, parse_field_selector
from kctl_runtime.store import NAMESPACE_INDEX, IndexFunc

__all__ = [
    "FIELD_INDEX_PREFIX",
    "LABEL_INDEX_PREFIX",
    "Cache",
    "CachedInformer",
    "Client",
    "PatchType",
    "RetryPolicy",
    "TypedResource",
]

_log = structlog.get_logger("kctl_runtime.client")

PatchType = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: Mapping[str, str] = {
    "merge": MERGE_PATCH,
    "json": JSON_PATCH,
    "strategic": STRATEGIC_MERGE_PATCH,
    "apply": APPLY_PATCH,
}
_LIST_PAGE = 500
T = TypeVar("T")


class TypedResource(Protocol):
    """A typed view of a kind (a :class:`~kctl_runtime.customresource.CustomResource` class)."""

    @classmethod
    def kube_resource(cls) -> Resource: ...

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Self: ...

    def to_object(self) -> dict[str, Any]: ...


M = TypeVar("M", bound=TypedResource)


class _Store(Protocol):
    def get_object(self, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def list(self) -> builtins.list[dict[str, Any]]: ...

    def by_index(self, name: str, value: str) -> builtins.list[dict[str, Any]]: ...

    def index_names(self) -> builtins.list[str]: ...


class CachedInformer(Protocol):
    """What the client needs from an informer: its store, and whether it has synced."""

    @property
    def store(self) -> Any: ...

    @property
    def has_synced(self) -> bool: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How transient API errors are retried.

    attempts: total attempts per call, first one included (default 5; 1 disables retrying).
    initial_backoff: seconds before the first retry (default 0.05), doubling after each failure.
    max_backoff: cap on one backoff wait (default 5 s).
    jitter: up to this many seconds are added at random to each backoff wait (default 0.05) so
        that many clients failing together do not retry in lock-step.
    max_retry_after: cap on a server's ``Retry-After`` (default 60 s), which otherwise replaces
        the backoff for that wait.
    """

    attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 5.0
    jitter: float = 0.05
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff or self.jitter < 0:
            raise ValueError("RetryPolicy needs 0 <= initial_backoff <= max_backoff and jitter >= 0")

    def wait(self, retry_state: RetryCallState) -> float:
        """tenacity wait: the server's Retry-After if it sent one, else jittered exponential."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            return float(min(retry_after, self.max_retry_after))
        exponent = max(0, retry_state.attempt_number - 1)
        backoff = min(self.max_backoff, self.initial_backoff * (2**exponent))
        return float(backoff + random.uniform(0, self.jitter))


FIELD_INDEX_PREFIX = "field:"
LABEL_INDEX_PREFIX = "label:"


class Cache:
    """Which informers may serve the client's reads, by resource and namespace scope, and the
    indexes those informers' stores keep (module doc).

    Only register informers without label/field selectors that hold whole objects (not
    metadata-only); the :class:`~kctl_runtime.manager.Manager` does this for its controllers.
    """

    def __init__(self) -> None:
        self._informers: dict[tuple[Resource, str | None], CachedInformer] = {}
        self._indexes: dict[Resource, dict[str, IndexFunc]] = {}

    def register(self, resource: Resource, informer: CachedInformer, namespace: str | None = None) -> None:
        """Let ``informer`` (over ``namespace``, ``None`` = all) serve reads of ``resource``."""
        scope = namespace if resource.namespaced else None
        self._informers.setdefault((resource, scope), informer)
        for name, fn in self._indexes.get(resource, {}).items():
            _ensure_index(informer, name, fn)

    def index_field(self, resource: Resource, field: str, values: IndexFunc) -> None:
        """Index cached ``resource`` objects by ``field``: ``values(obj)`` gives the object's values.

        Registering the same field twice with the same function does nothing; with another
        function it raises ``ValueError``. Informers registered before or after are indexed.
        """
        self._add_index(resource, FIELD_INDEX_PREFIX + field, values)

    def index_label(self, resource: Resource, key: str) -> None:
        """Index cached ``resource`` objects by the value of their label ``key``."""
        self._add_index(resource, LABEL_INDEX_PREFIX + key, _LabelValues(key))

    def _add_index(self, resource: Resource, name: str, fn: IndexFunc) -> None:
        indexes = self._indexes.setdefault(resource, {})
        known = indexes.get(name)
        if known is not None:
            if known == fn:
                return
            raise ValueError(f"{resource.group_resource} already has an index {name!r}")
        indexes[name] = fn
        for (registered, _scope), informer in self._informers.items():
            if registered == resource:
                _ensure_index(informer, name, fn)

    def index_names(self, resource: Resource) -> frozenset[str]:
        """The store index names registered for ``resource`` (``field:...`` / ``label:...``)."""
        return frozenset(self._indexes.get(resource, ()))

    def informer_for(self, resource: Resource, namespace: str | None) -> CachedInformer | None:
        """A synced informer that covers ``namespace`` (``None`` = all namespaces), or ``None``."""
        candidates: list[CachedInformer | None] = [self._informers.get((resource, None))]
        if namespace is not None and resource.namespaced:
            candidates.insert(0, self._informers.get((resource, namespace)))
        for informer in candidates:
            if informer is not None and informer.has_synced:
                return informer
        return None

    def __contains__(self, resource: object) -> bool:
        return any(r == resource for r, _ in self._informers)


class _LabelValues:
    """Index function: the value of one label (nothing when the object lacks it)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, obj: dict[str, Any]) -> Iterable[str]:
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(self.key)
        return (value,) if isinstance(value, str) else ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LabelValues) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _ensure_index(informer: CachedInformer, name: str, fn: IndexFunc) -> None:
    store = informer.store
    if name not in store.index_names():
        store.add_index(name, fn)


def _copy(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj))


def _untyped(obj: Mapping[str, Any] | TypedResource) -> Mapping[str, Any]:
    return obj if isinstance(obj, Mapping) else obj.to_object()


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise TypeError("object has no metadata mapping")
    return meta


def _not_found(resource: Resource, name: str, namespace: str | None) -> NotFound:
    where = f" in namespace {namespace!r}" if namespace else ""
    message = f'{resource.group_resource} "{name}" not found{where} (cache)'
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "message": message,
        "details": {"name": name, "group": resource.group, "kind": resource.plural},
        "code": 404,
    }
    return NotFound(404, "NotFound", message, body)


def _field_filter(
    field_selector: str | None, indexes: Mapping[str, IndexFunc]
) -> tuple[Callable[[Mapping[str, Any]], bool], tuple[str, str] | None] | None:
    """A cache-side filter for a field selector, and the ``(index, value)`` to draw candidates
    from; ``None`` when the cache cannot answer it (ask the server).

    Understood: ``metadata.name``/``metadata.namespace`` and indexed fields (through their index
    function). Parsed by :func:`kctl_runtime.selectors.parse_field_selector`: escaped commas
    (``\\,``) and other escapes in values are honoured."""
    if not field_selector:
        return (lambda _obj: True), None
    try:
        selector = parse_field_selector(field_selector)
    except SelectorError:
        return None  # the server words the error
    plain = {"metadata.name", "metadata.namespace"}
    if not all(f in plain or FIELD_INDEX_PREFIX + f in indexes for f in selector.fields):
        return None
    indexed = [(f, op, v) for f, op, v in selector.requirements if FIELD_INDEX_PREFIX + f in indexes]
    if not indexed:
        return selector.matches, None
    rest = FieldSelector([r for r in selector.requirements if r not in indexed])
    checks = [(indexes[FIELD_INDEX_PREFIX + f], op == "=", v) for f, op, v in indexed]

    def matches(obj: Mapping[str, Any]) -> bool:
        for fn, equal, value in checks:
            if (value in fn(cast("dict[str, Any]", obj))) != equal:
                return False
        return rest.matches(obj)

    seed = next(((FIELD_INDEX_PREFIX + f, v) for f, op, v in indexed if op == "="), None)
    return matches, seed


def _label_seed(
    labels: LabelSelector | None, indexes: Mapping[str, IndexFunc]
) -> tuple[str, tuple[str, ...]] | None:
    """An indexed label key the selector pins to some values, as ``(index, values)``."""
    if labels is None:
        return None
    for requirement in labels.requirements:
        name = LABEL_INDEX_PREFIX + requirement.key
        if requirement.operator in ("=", "==", "in") and name in indexes:
            return name, requirement.values
    return None


class Client:
    """Cache-reading, API-writing client over a kubernetes-asyncio ``ApiClient`` (module doc)."""

    def __init__(
        self,
        api_client: Any,
        *,
        cache: Cache | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        timeout: float | None = 60.0,
        field_manager: str | None = None,
    ) -> None:
        self._api_client = api_client
        self._cache = cache
        self._retry = retry or RetryPolicy()
        self._clock: Clock = clock or SystemClock()
        self._timeout = timeout
        self._field_manager = field_manager
        self.api: Client = (
            self
            if cache is None
            else Client(
                api_client,
                retry=self._retry,
                clock=self._clock,
                timeout=timeout,
                field_manager=field_manager,
            )
        )
        """The same client without the cache: every read is a request (read-your-writes)."""

    @property
    def cache(self) -> Cache | None:
        """The cache serving reads (``None`` for :attr:`api`)."""
        return self._cache

    # ------------------------------------------------------------------ transport

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        async def once() -> Any:
            return await request_json(
                self._api_client,
                method,
                path,
                query=query,
                body=body,
                content_type=content_type,
                timeout=self._timeout,
            )

        return await self._retrying(once, method, path)

    async def _retrying(self, fn: Callable[[], Awaitable[T]], method: str, path: str) -> T:
        # Fast path: most requests succeed at once, and building tenacity's retry state costs about
        # a tenth of a busy controller's CPU. Only a transient failure enters the retry loop, which
        # then replays that failure as its first attempt: the same waits, logs and attempt count.
        try:
            return await fn()
        except Exception as exc:
            if self._retry.attempts <= 1 or not is_transient(exc):
                raise
            first_failure = exc
        replayed = False

        async def attempt() -> T:
            nonlocal replayed
            if not replayed:
                replayed = True
                raise first_failure
            return await fn()

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            _log.info(
                "api request failed, retrying",
                method=method,
                path=path,
                attempt=state.attempt_number,
                wait_seconds=round(wait, 4),
                error=str(exc),
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=self._retry.wait,
            retry=retry_if_exception(is_transient),
            sleep=self._clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        result: T = await retrying(attempt)
        return result

    def _query(
        self, *, field_manager: str | None = None, dry_run: bool = False, force: bool = False
    ) -> list[tuple[str, str]]:
        query: list[tuple[str, str]] = []
        manager = field_manager or self._field_manager
        if manager:
            query.append(("fieldManager", manager))
        if dry_run:
            query.append(("dryRun", "All"))
        if force:
            query.append(("force", "true"))
        return query

    # ------------------------------------------------------------------ reads

    @overload
    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    @overload
    async def get(self, resource: type[M], name: str, namespace: str | None = None) -> M: ...

    async def get(
        self, resource: Resource | type[TypedResource], name: str, namespace: str | None = None
    ) -> dict[str, Any] | TypedResource:
        """The object ``name`` (in ``namespace`` for namespaced kinds); raises ``NotFound``.

        With a typed class for ``resource``, the object parsed into it (module doc)."""
        if not isinstance(resource, Resource):
            return resource.from_object(await self.get(resource.kube_resource(), name, namespace))
        if resource.namespaced and namespace is None:
            raise ValueError(f"{resource.group_resource} is namespaced: pass namespace=")
        ns = namespace if resource.namespaced else None
        informer = self._cache.informer_for(resource, ns) if self._cache is not None else None
        if informer is not None:
            store: _Store = informer.store
            obj = store.get_object(ns, name)
            if obj is None:
                raise _not_found(resource, name, ns)
            out: dict[str, Any] = _copy(obj)
            out.setdefault("apiVersion", resource.api_version)
            out.setdefault("kind", resource.kind)
            return out
        found: dict[str, Any] = await self._call("GET", resource.path(ns, name))
        return found

    @overload
    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[dict[str, Any]]: ...

    @overload
    async def list(
        self,
        resource: type[M],
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[M]: ...

    async def list(
        self,
        resource: Resource | type[TypedResource],
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[Any]:
        """Objects of ``resource`` (in ``namespace``, or everywhere for ``None``) matching the selectors.

        From the cache, the label selector is evaluated locally and field selectors are supported
        for ``metadata.name`` / ``metadata.namespace`` and indexed fields; any other field selector
        goes to the API. ``limit``: at most that many items (module doc). With a typed class, the
        objects parsed into it (the first that does not parse raises).
        """
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1")
        if not isinstance(resource, Resource):
            raw = await self.list(
                resource.kube_resource(), namespace, label_selector, field_selector, limit=limit
            )
            return [resource.from_object(obj) for obj in raw]
        ns = namespace if resource.namespaced else None
        informer = self._cache.informer_for(resource, ns) if self._cache is not None else None
        indexes = self._cache._indexes.get(resource, {}) if self._cache is not None else {}
        field_filter = _field_filter(field_selector, indexes)
        if informer is not None and field_filter is not None:
            field_match, seed = field_filter
            labels = LabelSelector.parse(label_selector) if label_selector else None
            store: _Store = informer.store
            label_seed = _label_seed(labels, indexes) if seed is None else None
            objects: Iterable[dict[str, Any]]
            scoped = False
            if seed is not None:
                objects = store.by_index(*seed)
            elif label_seed is not None:
                name, values = label_seed
                objects = [o for value in values for o in store.by_index(name, value)]
            elif ns is not None:
                objects, scoped = store.by_index(NAMESPACE_INDEX, ns), True
            else:
                objects = store.list()
            found: builtins.list[dict[str, Any]] = []
            for obj in objects:
                meta = obj.get("metadata") or {}
                if ns is not None and not scoped and meta.get("namespace") != ns:
                    continue
                if labels is not None and not labels.matches(meta.get("labels") or {}):
                    continue
                if not field_match(obj):
                    continue
                found.append(obj)
            found.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
            items: builtins.list[dict[str, Any]] = []
            for obj in found if limit is None else found[:limit]:
                item: dict[str, Any] = _copy(obj)
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                items.append(item)
            return items
        return await self._list_api(resource, ns, label_selector, field_selector, limit)

    async def _list_api(
        self,
        resource: Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        limit: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        base: builtins.list[tuple[str, str]] = []
        if label_selector:
            base.append(("labelSelector", label_selector))
        if field_selector:
            base.append(("fieldSelector", field_selector))
        path = resource.path(namespace)
        for paginate in (True, False):
            items: builtins.list[dict[str, Any]] = []
            token = ""
            try:
                while True:
                    query = list(base)
                    if paginate:
                        query.append(("limit", str(min(limit or _LIST_PAGE, _LIST_PAGE))))
                        if token:
                            query.append(("continue", token))
                    page = await self._call("GET", path, query=query)
                    items.extend(page.get("items") or [])
                    token = (page.get("metadata") or {}).get("continue") or ""
                    if not paginate or not token or (limit is not None and len(items) >= limit):
                        break
            except Gone:
                if not paginate or not token:
                    raise
                continue  # the continue token expired mid-list: list again in one request
            if limit is not None:
                del items[limit:]
            for item in items:
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
            return items
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ writes

    def _namespace_of(self, resource: Resource, obj: Mapping[str, Any], namespace: str | None) -> str | None:
        if not resource.namespaced:
            return None
        ns = namespace or _meta(obj).get("namespace")
        if not ns:
            raise ValueError(
                f"{resource.group_resource} is namespaced: set metadata.namespace or pass namespace="
            )
        return str(ns)

    @overload
    async def create(
        self,
        resource: Resource,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...

    @overload
    async def create(
        self,
        resource: type[M],
        obj: M,
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> M: ...

    async def create(
        self,
        resource: Resource | type[TypedResource],
        obj: Mapping[str, Any] | TypedResource,
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any] | TypedResource:
        """Create ``obj``; ``apiVersion``/``kind`` default to the resource's. Raises ``AlreadyExists``."""
        if not isinstance(resource, Resource):
            typed = await self.create(
                resource.kube_resource(),
                _untyped(obj),
                namespace=namespace,
                field_manager=field_manager,
                dry_run=dry_run,
            )
            return resource.from_object(typed)
        body = dict(_untyped(obj))
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)
        ns = self._namespace_of(resource, body, namespace)
        created: dict[str, Any] = await self._call(
            "POST",
            resource.path(ns),
            query=self._query(field_manager=field_manager, dry_run=dry_run),
            body=body,
        )
        return created

    @overload
    async def update(
        self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str | None = None
    ) -> dict[str, Any]: ...

    @overload
    async def update(self, resource: type[M], obj: M, *, field_manager: str | None = None) -> M: ...

    async def update(
        self,
        resource: Resource | type[TypedResource],
        obj: Mapping[str, Any] | TypedResource,
        *,
        field_manager: str | None = None,
    ) -> dict[str, Any] | TypedResource:
        """Replace the object (PUT); its ``metadata.resourceVersion`` guards against lost updates."""
        return await self._put(resource, obj, None, field_manager)

    @overload
    async def update_status(
        self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str | None = None
    ) -> dict[str, Any]: ...

    @overload
    async def update_status(self, resource: type[M], obj: M, *, field_manager: str | None = None) -> M: ...

    async def update_status(
        self,
        resource: Resource | type[TypedResource],
        obj: Mapping[str, Any] | TypedResource,
        *,
        field_manager: str | None = None,
    ) -> dict[str, Any] | TypedResource:
        """Replace the ``status`` subresource (PUT .../status) from ``obj``."""
        return await self._put(resource, obj, "status", field_manager)

    async def _put(
        self,
        resource: Resource | type[TypedResource],
        obj: Mapping[str, Any] | TypedResource,
        subresource: str | None,
        field_manager: str | None,
    ) -> dict[str, Any] | TypedResource:
        if not isinstance(resource, Resource):
            typed = await self._put(resource.kube_resource(), _untyped(obj), subresource, field_manager)
            assert isinstance(typed, dict)
            return resource.from_object(typed)
        body = dict(_untyped(obj))
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)
        ns = self._namespace_of(resource, body, None)
        name = str(_meta(body)["name"])
        updated: dict[str, Any] = await self._call(
            "PUT",
            resource.path(ns, name, subresource),
            query=self._query(field_manager=field_manager),
            body=body,
        )
        return updated

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """PATCH the object. ``"apply"`` is server-side apply: it needs a field manager and sends
        ``apiVersion``/``kind``/``metadata.name`` for you if the patch lacks them; ``force`` takes
        over fields other managers own (apply only)."""
        try:
            content_type = _PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"patch_type must be one of {', '.join(_PATCH_CONTENT_TYPES)}") from None
        ns = namespace if resource.namespaced else None
        if resource.namespaced and ns is None:
            raise ValueError(f"{resource.group_resource} is namespaced: pass namespace=")
        body: Any = patch
        if patch_type == "apply":
            if not (field_manager or self._field_manager):
                raise ValueError("server-side apply needs a field_manager")
            if not isinstance(patch, Mapping):
                raise TypeError("an apply patch is an object (a partial manifest)")
            applied = dict(patch)
            applied.setdefault("apiVersion", resource.api_version)
            applied.setdefault("kind", resource.kind)
            meta = dict(applied.get("metadata") or {})
            meta.setdefault("name", name)
            if ns is not None:
                meta.setdefault("namespace", ns)
            applied["metadata"] = meta
            body = applied
        elif force:
            raise ValueError("force=True only applies to patch_type='apply'")
        elif patch_type == "json" and isinstance(patch, Mapping):
            raise TypeError("a JSON patch is a list of operations")
        elif patch_type != "json" and not isinstance(patch, Mapping):
            raise TypeError(f"a {patch_type} patch is an object")
        patched: dict[str, Any] = await self._call(
            "PATCH",
            resource.path(ns, name, subresource),
            query=self._query(field_manager=field_manager, force=force),
            body=body if isinstance(body, Mapping) else list(body),
            content_type=content_type,
        )
        return patched

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions: Mapping[str, str] | None = None,
        ignore_not_found: bool = False,
    ) -> dict[str, Any] | None:
        """Delete the object. Returns it when the server keeps it for now (finalizers pending,
        ``deletionTimestamp`` set), ``None`` when the answer was a ``Status`` (gone already).
        ``preconditions`` is ``{"uid": ...}`` and/or ``{"resourceVersion": ...}``."""
        ns = namespace if resource.namespaced else None
        if resource.namespaced and ns is None:
            raise ValueError(f"{resource.group_resource} is namespaced: pass namespace=")
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = dict(preconditions)
        try:
            answer = await self._call("DELETE", resource.path(ns, name), body=options)
        except NotFound:
            if ignore_not_found:
                return None
            raise
        if isinstance(answer, dict) and answer.get("kind") != "Status":
            return answer
        return None
