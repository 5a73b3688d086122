"""The list-watch state machine: states, inputs, events, actions and the pure :func:`step`.

Contract
--------
:func:`step` maps ``(state, input)`` to ``Step(state, events, action)`` with no I/O, no clock and no
randomness, so every transition is unit-testable. :mod:`kctl_runtime.watcher` documents the
semantics (and re-exports every name); its ``Watcher`` is the driver that performs the actions.
Objects inside inputs and events are passed through untouched (never copied or mutated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "INITIAL_EVENTS_END",
    "KEEP_WATCHING",
    "SHORT_WATCH",
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
    "WatcherEvent",
    "Watching",
    "initial_action",
    "step",
]

# ---------------------------------------------------------------------------------------------
# States


@dataclass(frozen=True, slots=True)
class Empty:
    """Nothing listed yet (start, or after a 410)."""


@dataclass(frozen=True, slots=True)
class InitListing:
    """Paginating the initial list; ``continue_token`` fetches the next page."""

    continue_token: str


@dataclass(frozen=True, slots=True)
class InitListed:
    """Listed completely at ``resource_version``; a watch from there comes next."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class Watching:
    """Watching; ``resource_version`` is the newest version seen."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class InitStreaming:
    """Inside a streaming list (a watch with ``sendInitialEvents``) that has begun delivering."""


State = Empty | InitListing | InitListed | InitStreaming | Watching

# ---------------------------------------------------------------------------------------------
# Inputs: the outcome of the last action


@dataclass(frozen=True, slots=True)
class PageReceived:
    """One list page: its items, the list's resourceVersion and the next ``continue`` token."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One decoded watch event: ``type`` is ADDED / MODIFIED / DELETED / BOOKMARK / ERROR."""

    type: str
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The watch stream closed (server timeout, clean close, dropped connection)."""

    duration: float
    events: int


@dataclass(frozen=True, slots=True)
class StreamStalled:
    """The watch stream stayed silent past the inactivity limit and was abandoned."""


@dataclass(frozen=True, slots=True)
class GoneInput:
    """HTTP 410: the resourceVersion or ``continue`` token is too old."""


@dataclass(frozen=True, slots=True)
class Failed:
    """Any other failure; ``retry_after`` is the server's hint (429), if any."""

    status: int | None = None
    retry_after: float | None = None
    message: str = ""


Input = PageReceived | WatchEvent | StreamEnded | StreamStalled | GoneInput | Failed

# ---------------------------------------------------------------------------------------------
# Events for the consumer


@dataclass(frozen=True, slots=True)
class Init:
    """A (re)list begins; forget what was buffered from an earlier, unfinished one."""


@dataclass(frozen=True, slots=True)
class InitApply:
    """One object of the (re)list."""

    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InitDone:
    """The (re)list is complete at ``resource_version``."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class Apply:
    """An object was added or modified."""

    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """An object was deleted; ``object`` is its final state."""

    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Bookmark:
    """The server is at ``resource_version``; nothing changed for us."""

    resource_version: str


WatcherEvent = Init | InitApply | InitDone | Apply | Delete | Bookmark

# ---------------------------------------------------------------------------------------------
# Actions: what the driver does next


@dataclass(frozen=True, slots=True)
class ListPage:
    """List one page (``continue_token=None``: the first page of a fresh, consistent list)."""

    continue_token: str | None


@dataclass(frozen=True, slots=True)
class StartWatch:
    """Open a watch from ``resource_version``."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class StartStreamingList:
    """Open a watch that first streams the current state (``sendInitialEvents=true``)."""


@dataclass(frozen=True, slots=True)
class KeepWatching:
    """Keep reading the open watch stream."""


@dataclass(frozen=True, slots=True)
class BackOff:
    """Wait a backoff delay (at least ``retry_after``), then do ``then``; ``relist`` marks a 410."""

    then: ListPage | StartWatch | StartStreamingList
    retry_after: float | None = None
    reason: str = ""
    relist: bool = False


Action = ListPage | StartWatch | StartStreamingList | KeepWatching | BackOff


@dataclass(frozen=True, slots=True)
class Step:
    """The result of :func:`step`."""

    state: State
    events: tuple[WatcherEvent, ...]
    action: Action


KEEP_WATCHING: Final = KeepWatching()
INITIAL_EVENTS_END: Final = "k8s.io/initial-events-end"
"""The annotation on the BOOKMARK that ends a streaming list."""
_INIT: Final = Init()
_NO_EVENTS: tuple[WatcherEvent, ...] = ()
_FIRST_PAGE: Final = ListPage(None)
_STREAM: Final = StartStreamingList()
SHORT_WATCH: Final = 1.0
"""A watch that ends sooner than this (seconds) without any event is treated as an error."""


def initial_action(state: State, *, streaming: bool = False) -> Action:
    """What to do first in ``state`` (a fresh watcher starts in :class:`Empty`).

    ``streaming`` chooses how a full list is obtained: a streaming list (one watch with
    ``sendInitialEvents``) instead of paginated list requests.
    """
    return _retry(state, streaming)


def _retry(state: State, streaming: bool) -> ListPage | StartWatch | StartStreamingList:
    if isinstance(state, Empty | InitStreaming):
        return _STREAM if streaming else _FIRST_PAGE
    if isinstance(state, InitListing):
        return ListPage(state.continue_token)
    return StartWatch(state.resource_version)


def _relist(reason: str, streaming: bool) -> Step:
    return Step(
        Empty(), _NO_EVENTS, BackOff(_STREAM if streaming else _FIRST_PAGE, reason=reason, relist=True)
    )


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        rv = meta.get("resourceVersion")
        if rv:
            return str(rv)
    return None


def _ends_initial_events(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(INITIAL_EVENTS_END) == "true")


def step(state: State, received: Input, *, streaming: bool = False) -> Step:
    """Advance the list-watch machine by one input. Pure: no I/O, no clock, no randomness.

    ``streaming`` says how a relist is done (see :func:`initial_action`). A streaming list that the
    server answers with an error status (429 aside) before anything arrived is answered with
    ``ListPage(None)``: this relist falls back to a paginated list (the next one streams again).
    """
    if isinstance(received, WatchEvent):
        if isinstance(state, Empty | InitStreaming):
            if not streaming:
                raise TypeError(f"a watch event arrived in state {state} without a streaming list")
            return _on_initial_event(state, received)
        return _on_watch_event(state, received, streaming)
    if isinstance(received, PageReceived):
        if not isinstance(state, Empty | InitListing):
            raise TypeError(f"a list page arrived in state {state}")
        events: list[WatcherEvent] = [_INIT] if isinstance(state, Empty) else []
        events.extend(map(InitApply, received.items))
        token = received.continue_token
        if token:
            return Step(InitListing(token), tuple(events), ListPage(token))
        rv = received.resource_version
        events.append(InitDone(rv))
        return Step(InitListed(rv), tuple(events), StartWatch(rv))
    if isinstance(received, GoneInput):
        return _relist("410 Gone", streaming)
    if isinstance(state, InitStreaming):
        # An interrupted streaming list cannot resume: start it over (the consumer gets a new Init).
        return Step(Empty(), _NO_EVENTS, BackOff(_STREAM, reason="streaming list interrupted"))
    if isinstance(received, Failed):
        if streaming and isinstance(state, Empty) and received.status not in (None, 429):
            # The server answered a streaming list with an error (unsupported, disabled, or an
            # etcd without progress notify): fall back to a paginated list, as client-go does.
            return Step(state, _NO_EVENTS, _FIRST_PAGE)
        reason = f"{received.status or 'connection'}: {received.message}".strip()
        return Step(state, _NO_EVENTS, BackOff(_retry(state, streaming), received.retry_after, reason))
    if isinstance(received, StreamStalled):
        return Step(state, _NO_EVENTS, _retry(state, streaming))
    # StreamEnded
    if received.events == 0 and received.duration < SHORT_WATCH:
        reason = "watch closed within a second without events"
        return Step(state, _NO_EVENTS, BackOff(_retry(state, streaming), reason=reason))
    return Step(state, _NO_EVENTS, _retry(state, streaming))


def _error_input(obj: Mapping[str, Any]) -> GoneInput | Failed:
    code = obj.get("code")
    if code == 410:
        return GoneInput()
    retry_after = None
    details = obj.get("details")
    if isinstance(details, Mapping) and details.get("retryAfterSeconds"):
        retry_after = float(details["retryAfterSeconds"])
    return Failed(code if isinstance(code, int) else None, retry_after, str(obj.get("message", "")))


def _on_initial_event(state: Empty | InitStreaming, event: WatchEvent) -> Step:
    kind = event.type
    obj = event.object
    begin: tuple[WatcherEvent, ...] = (_INIT,) if isinstance(state, Empty) else ()
    if kind in {"ADDED", "MODIFIED"}:
        return Step(InitStreaming(), (*begin, InitApply(obj)), KEEP_WATCHING)
    if kind == "BOOKMARK":
        if not _ends_initial_events(obj):
            return Step(state, _NO_EVENTS, KEEP_WATCHING)
        rv = _resource_version(obj) or ""
        return Step(Watching(rv), (*begin, InitDone(rv)), KEEP_WATCHING)
    if kind == "ERROR":
        return step(state, _error_input(obj), streaming=True)
    reason = f"unexpected {kind} event in a streaming list"
    return Step(Empty(), _NO_EVENTS, BackOff(_STREAM, reason=reason))


def _on_watch_event(state: InitListing | InitListed | Watching, event: WatchEvent, streaming: bool) -> Step:
    if isinstance(state, InitListing):
        raise TypeError(f"a watch event arrived in state {state}")
    kind = event.type
    obj = event.object
    current = state.resource_version
    if kind == "ERROR":
        received = _error_input(obj)
        if isinstance(received, GoneInput):
            return _relist(f"410 in watch: {obj.get('message', '')}", streaming)
        return step(state, received, streaming=streaming)
    rv = _resource_version(obj)
    new_state = Watching(rv if rv is not None else current)
    if kind in {"ADDED", "MODIFIED"}:
        return Step(new_state, (Apply(obj),), KEEP_WATCHING)
    if kind == "DELETED":
        return Step(new_state, (Delete(obj),), KEEP_WATCHING)
    if kind == "BOOKMARK":
        return Step(new_state, (Bookmark(new_state.resource_version),), KEEP_WATCHING)
    reason = f"unknown watch event type {kind!r}"
    return Step(state, _NO_EVENTS, BackOff(_retry(state, streaming), reason=reason))
