"""The list-watch loop: a pure state machine and the thin async driver that performs its I/O.

Contract
--------
:func:`step` is a pure function ``(state, input) -> Step(state, events, action)`` (it lives in
:mod:`kctl_runtime._watchmachine` and is re-exported here); the driver (:class:`Watcher`) only
performs the action it is told and feeds the outcome back in. States:

* :class:`Empty` -- nothing known; the next action lists the first page (or, with
  ``streaming_list``, opens a streaming list).
* :class:`InitListing` -- inside a paginated list; holds the ``continue`` token of the next page.
* :class:`InitListed` -- the list is complete at ``resource_version``; the next action starts a
  watch from it.
* :class:`InitStreaming` -- inside a streaming list (``sendInitialEvents``): objects arrive as
  ADDED events until a BOOKMARK annotated ``k8s.io/initial-events-end``; then the same watch goes on.
* :class:`Watching` -- a watch is open; ``resource_version`` is the last one seen (object or
  bookmark), which is where a dropped watch resumes.

Events, in the order the sink receives them:

* a (re)list is delivered as :class:`Init`, one :class:`InitApply` per object, :class:`InitDone`.
  ``Init`` comes with the first page (or the first streamed event); a list that restarts (an
  expired ``continue`` token, an interrupted stream) sends a new ``Init`` and the consumer drops
  what it buffered. Consumers should apply the buffered objects
  atomically at ``InitDone`` (the store's ``replace``): objects absent from the new list were
  deleted while we were not watching.
* a watch delivers :class:`Apply` (ADDED / MODIFIED), :class:`Delete` (DELETED, with the object's
  final state), :class:`Bookmark` (a newer resourceVersion, no object).

A paginated list runs one page ahead of the sink: once a page is decoded and the machine's next
action is the next page, that request is sent before the page's events reach the sink, so the
server works on page n+1 while the sink stores page n. Only the timing of the I/O changes: states,
events and their order are those of :func:`step`, and at most one page is held besides the one
being delivered.

Guarantees: events for one object arrive in the server's order; the watch resumes from the last
seen resourceVersion after a clean close, a dropped connection, a server timeout or a silent stream
(the inactivity limit), so nothing is missed or repeated; a 410 (HTTP, or an ``ERROR`` event whose
``Status`` has code 410) or an expired ``continue`` token leads to a full relist after a jittered
backoff; every other error backs off before retrying the same action (``429`` waits at least the
server's ``Retry-After``); a watch that ends within a second without any event counts as an error,
so a server that closes at once cannot make the loop spin.

Recovery from an API server restart is prompt (issue 10, item 5): the relist after a 410 draws its
delay from a backoff of its own, so the delays that connection errors piled up while the server was
down do not postpone it (a restarted kube-apiserver answers 410 to every watch resumed from before
the restart); and while the server refuses connections, or answers with a ``Retry-After`` hint
(kube-apiserver's 429 while its storage initialises), delays stop growing at
:attr:`WatcherConfig.reconnect_max` (never below the hint). A refused connection costs the server
nothing, so polling every couple of seconds is cheap; every other error still backs off up to
``backoff_max``.

NOT guaranteed: every intermediate state of an object is seen (the API compacts history; a relist
shows only the latest state); exactly-once delivery across relists (an object unchanged across a
relist is sent again as ``InitApply``).
"""

from __future__ import annotations

import contextlib
import errno
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import structlog

from kctl_runtime import _http
from kctl_runtime._watchmachine import (
    KEEP_WATCHING,
    Action,
    Apply,
    BackOff,
    Bookmark,
    Delete,
    Empty,
    Failed,
    GoneInput,
    Init,
    InitApply,
    InitDone,
    InitListed,
    InitListing,
    InitStreaming,
    Input,
    KeepWatching,
    ListPage,
    PageReceived,
    StartStreamingList,
    StartWatch,
    State,
    Step,
    StreamEnded,
    StreamStalled,
    WatcherEvent,
    WatchEvent,
    Watching,
    initial_action,
    step,
)
from kctl_runtime.backoff import Backoff
from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.errors import TRANSPORT_ERRORS, ApiError, Gone, TooManyRequests
from kctl_runtime.resource import Resource

__all__ = [
    "Action",
    "Apply",
    "BackOff",
    "Bookmark",
    "Delete",
    "Empty",
    "Failed",
    "GoneInput",
    "Init",
    "InitApply",
    "InitDone",
    "InitListed",
    "InitListing",
    "InitStreaming",
    "Input",
    "KeepWatching",
    "ListPage",
    "PageReceived",
    "StartStreamingList",
    "StartWatch",
    "State",
    "Step",
    "StreamEnded",
    "StreamStalled",
    "WatchEvent",
    "Watcher",
    "WatcherConfig",
    "WatcherEvent",
    "Watching",
    "initial_action",
    "step",
]

_log = structlog.get_logger("kctl_runtime.watcher")

# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class WatcherConfig:
    """What to list and watch, and how. Every field has a safe default."""

    namespace: str | None = None
    """Only this namespace (``None``: every namespace, or a cluster-scoped resource)."""

    label_selector: str | None = None
    """Server-side label filter (``"app=web,tier!=db"``); ``None`` watches everything."""

    field_selector: str | None = None
    """Server-side field filter (``"metadata.name=x"``); only fields the resource supports."""

    page_size: int = 500
    """Objects per list page (``limit``). 500 is client-go's default: large enough to amortise
    round trips, small enough to keep the server's memory and each response bounded."""

    bookmarks: bool = True
    """Ask for BOOKMARK events (``allowWatchBookmarks``), so a resumed watch starts from a recent
    resourceVersion even when nothing we watch changes, making 410s after a drop rarer."""

    timeout_range: tuple[int, int] = (300, 600)
    """Each watch asks the server to end it after a random number of seconds in this range
    (``timeoutSeconds``), like client-go's reflector (5 minutes x (1 + rand)): connections get
    re-balanced across API servers and a half-dead connection is replaced eventually."""

    inactivity_timeout: float | None = None
    """A list or watch response silent for this many seconds is treated as dead and the request
    is retried (a watch resumes from the last resourceVersion). ``None``: twice the watch's
    ``timeoutSeconds`` (twice the range's upper end for lists) -- a healthy server has closed the
    watch long before. Lower it where a middlebox may silently drop idle connections."""

    metadata_only: bool = False
    """List and watch ``PartialObjectMetadata`` (metadata only, via the ``Accept`` header) to
    save memory and bandwidth. A server that cannot (406 or a plain list) is handled: the full
    objects are reduced to their metadata on the client, so the cache looks the same."""

    streaming_list: bool = False
    """Get the full state with a *streaming list* -- one watch with ``sendInitialEvents=true`` that
    first sends every object as ADDED, then a BOOKMARK marking the end (KEP-3157, on by default
    from Kubernetes 1.32) -- instead of paginated lists. The API server serves it from its watch
    cache with far less memory than a large list. Off by default because not every server can:
    before 1.27 or with the WatchList feature off it is rejected (400/422), and an API server on an
    etcd without progress notifications answers 500. An error answer to a streaming list (429
    aside) is followed at once by a paginated list, as client-go falls back; the next relist tries
    streaming again. NOT detected: a proxy that silently drops the parameter (the end bookmark
    never comes)."""

    backoff_initial: float = 0.8
    """First delay after an error or a 410 (client-go's reflector: 800 ms)."""

    backoff_max: float = 30.0
    """Longest delay between attempts (client-go: 30 s)."""

    backoff_reset_after: float = 120.0
    """After this many seconds without errors the delays start over from ``backoff_initial``."""

    reconnect_max: float = 2.0
    """Longest delay while the server refuses connections or sends ``Retry-After`` (a restart
    or rolling update): the watch reconnects within about this long of the server coming back,
    instead of up to ``backoff_max`` later (a ``backoff_max`` below it wins)."""

    def __post_init__(self) -> None:
        if self.page_size < 0:
            raise ValueError(f"page_size must be >= 0 (0: no pagination), got {self.page_size}")
        low, high = self.timeout_range
        if not 0 < low <= high:
            raise ValueError(f"timeout_range must satisfy 0 < low <= high, got {self.timeout_range}")
        if self.inactivity_timeout is not None and self.inactivity_timeout <= 0:
            raise ValueError(f"inactivity_timeout must be > 0, got {self.inactivity_timeout}")
        Backoff(self.backoff_initial, self.backoff_max, reset_after=self.backoff_reset_after)
        if self.reconnect_max <= 0:
            raise ValueError(f"reconnect_max must be > 0, got {self.reconnect_max}")

    def new_backoff(self, clock: Clock, rand: Callable[[], float] | None = None) -> Backoff:
        """The backoff sequence these settings describe."""
        return Backoff(
            self.backoff_initial,
            self.backoff_max,
            reset_after=self.backoff_reset_after,
            clock=clock,
            rand=rand,
        )


# ---------------------------------------------------------------------------------------------
# The driver


_Sink = Callable[[WatcherEvent], None]
_PageSink = Callable[[Sequence[WatcherEvent]], None]


def _one_at_a_time(sink: _Sink) -> _PageSink:
    def deliver(events: Sequence[WatcherEvent]) -> None:
        for event in events:
            sink(event)

    return deliver


_OBJECT_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


class _Silence:
    """Cancels a scope when :meth:`touch` has not been called for ``limit`` clock seconds."""

    def __init__(self, clock: Clock, limit: float, scope: anyio.CancelScope) -> None:
        self.clock = clock
        self.limit = limit
        self.scope = scope
        self.last = clock.monotonic()
        self.fired = False

    def touch(self) -> None:
        self.last = self.clock.monotonic()

    async def run(self) -> None:
        while True:
            remaining = self.last + self.limit - self.clock.monotonic()
            if remaining <= 0:
                self.fired = True
                self.scope.cancel()
                return
            await self.clock.sleep(remaining)


class _Ahead:
    """The outcome of a list request started ahead of time (:meth:`Watcher._paginate`)."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._received: Input | None = None

    async def run(self, list_page: Callable[[str | None], Awaitable[Input]], token: str | None) -> None:
        self._received = await list_page(token)
        self._done.set()

    async def result(self) -> Input:
        await self._done.wait()
        assert self._received is not None
        return self._received


class Watcher:
    """Lists then watches one resource forever, feeding :data:`WatcherEvent` s to a sink.

    The sink is a synchronous callable run inline for every event; it must not block. ``run``
    returns only when cancelled and raises only for programming errors (including exceptions the
    sink raises); API and connection errors are retried with backoff. ``run(sink, page_sink=f)``
    hands each list page's events to ``f`` in one call (the same events, in the same order, that
    ``sink`` would get one at a time): a consumer can store a page in one tight loop.
    """

    def __init__(
        self,
        api_client: Any,
        resource: Resource,
        config: WatcherConfig | None = None,
        *,
        clock: Clock | None = None,
        rand: Callable[[], float] | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.api_client = api_client
        self.resource = resource
        self.config = config or WatcherConfig()
        if self.config.namespace is not None and not resource.namespaced:
            raise ValueError(f"{resource.group_resource} is cluster-scoped; a namespace makes no sense")
        self.clock: Clock = clock or SystemClock()
        self._rand = rand or random.random
        self.backoff = self.config.new_backoff(self.clock, self._rand)
        #: Delays before relists after a 410, apart from the error delays (see the module docstring).
        self.relist_backoff = self.config.new_backoff(self.clock, self._rand)
        self._reconnecting = False  # the last failure was a refused connection or carried Retry-After
        self.state: State = Empty()
        self._path = resource.path(self.config.namespace)
        self._meta_accept = self.config.metadata_only
        self._streaming = self.config.streaming_list
        self._on_restart = on_restart or (lambda _reason: None)
        self.last_failure: str | None = None
        self.unauthorized = False
        """Whether the last answer was a 401 (credentials revoked); cleared by any other answer."""
        """Why the list-watch last backed off (e.g. ``403 Forbidden: ...``); for timeout messages."""

    # -- query building -------------------------------------------------------------------

    def _selectors(self) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        if self.config.label_selector:
            params.append(("labelSelector", self.config.label_selector))
        if self.config.field_selector:
            params.append(("fieldSelector", self.config.field_selector))
        return params

    def watch_timeout(self) -> int:
        """A fresh random ``timeoutSeconds`` from the configured range."""
        low, high = self.config.timeout_range
        return int(low + (high - low) * self._rand())

    def _inactivity(self, server_timeout: float) -> float:
        return self.config.inactivity_timeout or 2.0 * server_timeout

    # -- the loop -------------------------------------------------------------------------

    async def run(self, sink: _Sink, *, page_sink: _PageSink | None = None) -> None:
        """Drive the state machine until cancelled (``page_sink``: the class docstring)."""
        try:
            await self._run(sink, page_sink or _one_at_a_time(sink))
        except ExceptionGroup as group:  # a sink's (programming) error, raised inside a task group
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _run(self, sink: _Sink, page_sink: _PageSink) -> None:
        action: Action = initial_action(self.state, streaming=self._streaming)
        while True:
            if isinstance(action, BackOff):
                if action.relist:
                    delay = self.relist_backoff.next_delay()
                else:
                    delay = self.backoff.next_delay()
                    if self._reconnecting or action.retry_after is not None:
                        delay = min(delay, self.config.reconnect_max)
                if action.retry_after is not None:
                    delay = max(delay, action.retry_after)
                self.last_failure = action.reason
                self._reconnecting = False
                log = _log.info if action.relist else _log.warning
                log(
                    "list-watch backing off",
                    resource=str(self.resource),
                    reason=action.reason,
                    delay=round(delay, 3),
                    relist=action.relist,
                )
                self._on_restart("relist" if action.relist else "error")
                await self.clock.sleep(delay)
                action = action.then
            elif isinstance(action, ListPage):
                action = await self._paginate(action.continue_token, page_sink)
            elif isinstance(action, StartWatch):
                action = await self._watch(action.resource_version, sink)
            elif isinstance(action, StartStreamingList):
                action = await self._watch(None, sink)
            else:  # pragma: no cover - KeepWatching never escapes _watch
                raise TypeError(action)

    def _apply(self, received: Input, sink: _Sink) -> Action:
        result = self._step(received)
        for event in result.events:
            sink(event)
        return result.action

    def _step(self, received: Input) -> Step:
        """Advance the machine (its new state is kept); the caller delivers the events."""
        self.unauthorized = isinstance(received, Failed) and received.status == 401
        result = step(self.state, received, streaming=self._streaming)
        if self._streaming and isinstance(self.state, Empty) and isinstance(result.action, ListPage):
            _log.warning(
                "streaming list refused; falling back to a paginated list",
                resource=str(self.resource),
                error=getattr(received, "message", ""),
            )
        self.state = result.state
        return result

    async def _paginate(self, continue_token: str | None, sink: _PageSink) -> Action:
        """List from ``continue_token`` page after page, one page ahead of the sink.

        When the machine's next action is the next page, that request is sent before the sink gets
        the page just received, so the server produces page n+1 while the sink stores page n. The
        machine, its states and the order of events are as without it: the driver only starts the
        I/O of its next action early. Returns the first action that is not the next page.
        """
        result = self._step(await self._list(continue_token))
        async with anyio.create_task_group() as tg:
            while isinstance(result.action, ListPage):
                ahead = _Ahead()
                tg.start_soon(ahead.run, self._list, result.action.continue_token)
                await anyio.lowlevel.checkpoint()  # the request goes out before the page is stored
                sink(result.events)
                result = self._step(await ahead.result())
        sink(result.events)
        return result.action

    async def _list(self, continue_token: str | None) -> Input:
        params = self._selectors()
        if self.config.page_size:
            params.append(("limit", str(self.config.page_size)))
        if continue_token:
            params.append(("continue", continue_token))
        accept = _http.ACCEPT_META_LIST if self._meta_accept else _http.ACCEPT_JSON
        limit = self._inactivity(self.config.timeout_range[1])
        body = await self._read_all(params, accept, limit)
        if not isinstance(body, bytes):
            return body
        try:
            data = _http.loads(body)
            items: list[dict[str, Any]] = data.get("items") or []
            meta = data.get("metadata") or {}
            for item in items:  # a malformed object must not reach the store
                item["metadata"]["name"]
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
            return Failed(message=f"undecodable list response: {type(exc).__name__}: {exc}")
        if self.config.metadata_only and data.get("kind") != "PartialObjectMetadataList":
            items = [_partial(item) for item in items]
        self._healthy()
        return PageReceived(items, str(meta.get("resourceVersion", "")), meta.get("continue") or None)

    async def _read_all(self, params: list[tuple[str, str]], accept: str, limit: float) -> bytes | Input:
        """The whole body of a GET, or the input describing why there is none."""
        chunks: list[bytes] = []
        outcome: Input | None = None
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                silence = _Silence(self.clock, limit, scope)
                tg.start_soon(silence.run)
                try:
                    response = await self._open(params, accept)
                    try:
                        async for chunk in response.content.iter_any():
                            chunks.append(chunk)
                            silence.touch()
                    finally:
                        response.release()
                except ApiError as exc:
                    outcome = self._api_failure(exc)
                except TRANSPORT_ERRORS as exc:
                    outcome = self._transport_failure(exc)
                tg.cancel_scope.cancel()
        if scope.cancelled_caught:
            return Failed(message=f"list response silent for {limit}s")
        if outcome is not None:
            return outcome
        return b"".join(chunks)

    def _healthy(self) -> None:
        now = self.clock.monotonic()
        self.backoff.mark_healthy(now)
        self.relist_backoff.mark_healthy(now)

    def _transport_failure(self, exc: BaseException) -> Input:
        self._reconnecting = _refused(exc)
        return Failed(message=f"{type(exc).__name__}: {exc}")

    def _api_failure(self, exc: ApiError) -> Input:
        self._reconnecting = exc.retry_after is not None
        if exc.status == 406 and self._meta_accept:
            _log.info("server cannot serve PartialObjectMetadata; reducing objects on the client")
            self._meta_accept = False
        return _classify(exc)

    async def _open(self, params: list[tuple[str, str]], accept: str) -> Any:
        return await _http.open_get(self.api_client, self._path, params, accept)

    async def _watch(self, resource_version: str | None, sink: _Sink) -> Action:
        """Watch from ``resource_version``; ``None`` starts a streaming list."""
        timeout = self.watch_timeout()
        params = [("watch", "true"), ("timeoutSeconds", str(timeout))]
        if resource_version is None:
            params += [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan")]
        else:
            params.append(("resourceVersion", resource_version))
        if self.config.bookmarks or resource_version is None:
            params.append(("allowWatchBookmarks", "true"))
        params.extend(self._selectors())
        accept = _http.ACCEPT_META_WATCH if self._meta_accept else _http.ACCEPT_JSON
        started = self.clock.monotonic()
        counter = [0]
        action: Action = KEEP_WATCHING
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                silence = _Silence(self.clock, self._inactivity(timeout), scope)
                tg.start_soon(silence.run)
                try:
                    response = await self._open(params, accept)
                except ApiError as exc:
                    action = self._apply(self._api_failure(exc), sink)
                except TRANSPORT_ERRORS as exc:
                    action = self._apply(self._transport_failure(exc), sink)
                else:
                    try:
                        action = await self._consume(response, sink, silence, counter)
                    finally:
                        # A stream read to its end can return its connection to the pool; one we
                        # walked away from (410, error, stall, cancellation) must be closed.
                        if response.content.at_eof():
                            response.release()
                        else:
                            response.close()
                tg.cancel_scope.cancel()
        if scope.cancelled_caught:
            _log.info("watch silent past the inactivity limit; resuming", resource=str(self.resource))
            self._on_restart("stalled")
            return self._apply(StreamStalled(), sink)
        if isinstance(action, KeepWatching):
            self._on_restart("ended")
            return self._apply(StreamEnded(self.clock.monotonic() - started, counter[0]), sink)
        return action

    async def _consume(self, response: Any, sink: _Sink, silence: _Silence, counter: list[int]) -> Action:
        """Read the stream until it ends (``KeepWatching``) or the machine wants something else."""
        try:
            async with contextlib.aclosing(_http.iter_lines(response)) as lines:
                async for line in lines:
                    silence.touch()
                    counter[0] += 1
                    action = self.feed_line(line, sink)
                    if not isinstance(action, KeepWatching):
                        return action
                    self._healthy()
        except TRANSPORT_ERRORS as exc:
            _log.info("watch connection dropped; resuming", resource=str(self.resource), error=str(exc))
        return KEEP_WATCHING

    def feed_line(self, line: bytes, sink: _Sink) -> Action:
        """Decode one watch line and step the machine with it; what the stream reader does per line.

        A line that is not JSON, not an event, or carries an object without ``metadata.name`` is
        fed to the machine as a failure (back off, resume), so it never reaches the sink.
        """
        try:
            raw = _http.loads(line)
            event = WatchEvent(raw["type"], raw["object"])
            if event.type in _OBJECT_EVENTS:
                event.object["metadata"]["name"]  # malformed objects stop here
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return self._apply(Failed(message=f"undecodable watch line: {type(exc).__name__}: {exc}"), sink)
        if (
            self.config.metadata_only
            and event.type != "ERROR"
            and event.object.get("kind") != "PartialObjectMetadata"
        ):
            event = WatchEvent(event.type, _partial(event.object))
        return self._apply(event, sink)


def _classify(exc: ApiError) -> Input:
    if isinstance(exc, Gone):
        return GoneInput()
    retry_after = exc.retry_after if isinstance(exc, TooManyRequests) or exc.retry_after else None
    return Failed(exc.status, retry_after, exc.message)


def _refused(exc: BaseException) -> bool:
    """Whether a transport error is a refused connection (nothing listens: a server restarting)."""
    seen: BaseException | None = exc
    for _ in range(4):  # aiohttp wraps the OSError; follow a short chain
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False


def _partial(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Reduce a full object to the ``PartialObjectMetadata`` the server would have sent."""
    return {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]}
