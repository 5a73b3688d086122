"""Watch fan-out: storage events to open HTTP watch streams.

Contract
--------
* :class:`WatchHub` subscribes to :class:`~.storage.Storage` and hands every event to the watchers
  of that resource. Each event line is encoded **once per variant** (event type x object version x
  rendering) and the bytes are shared by all watchers that receive that variant.
* Filtering follows the real watch cache (``cacheWatcher.convertToWatchEvent``): an object that
  starts matching a watcher's selectors arrives as ``ADDED``, one that stops matching as ``DELETED``
  (its previous state, stamped with the event's resourceVersion), and unrelated changes not at all.
* A watch stream writes newline-delimited ``{"type":..,"object":..}`` JSON. It ends when the
  client's ``timeoutSeconds`` elapse, when :meth:`WatchHub.close_all` is called, or when the server
  stops. With ``allowWatchBookmarks`` a ``BOOKMARK`` carrying the latest resourceVersion is sent every
  ``bookmark_interval`` seconds and about 2 s before the timeout (the real server does the same,
  every minute by default), but only when that resourceVersion is newer than anything the client was
  already sent, as the real watch cache does.
* Watchers' queues are unbounded: a client that never reads grows memory (the real server would
  drop it). Timers use the event loop's real time, not the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from .storage import Event, Storage, Stored

__all__ = ["Renderer", "WatchHub", "Watcher", "serve_watch"]

Renderer = Callable[[dict[str, Any]], Any]
Rewriter = Callable[[bytes], Awaitable[tuple[bytes, bool]]]


def line(event_type: str, obj: Any) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


def _raw_line(event_type: str, raw: bytes) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + raw + b"}\n"


class Watcher:
    """One open watch: its filters, how it renders objects, and its outgoing queue."""

    def __init__(
        self,
        storage_key: str,
        namespace: str | None,
        matches: Callable[[dict[str, Any]], bool] | None,
        *,
        variant: Any = None,
        render: Renderer | None = None,
    ) -> None:
        self.storage_key = storage_key
        self.namespace = namespace
        self.matches = matches
        self.variant = variant
        self.render = render
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        #: the newest resourceVersion this client has been sent (events or bookmarks)
        self.sent_rv = 0

    def passes(self, stored: Stored | None) -> bool:
        if stored is None:
            return False
        return self.matches is None or self.matches(stored.obj)

    def encode(self, event_type: str, stored: Stored) -> bytes:
        if self.render is None:
            return _raw_line(event_type, stored.raw)
        return line(event_type, self.render(stored.obj))

    def convert(self, event: Event) -> bytes | None:
        """The watch line this watcher sends for ``event``, or ``None``."""
        if self.namespace is not None and event.namespace != self.namespace:
            return None
        if event.type == "DELETED":
            kind = "DELETED" if self.passes(event.prev) else None
            source = "cur"
        else:
            cur = self.passes(event.current)
            old = self.passes(event.prev)
            if cur:
                kind, source = ("MODIFIED" if old else "ADDED"), "cur"
            elif old:
                kind, source = "DELETED", "prev"
            else:
                kind = None
        if kind is None:
            return None
        key = (self.variant, kind, source)
        cached = event.cache.get(key)
        if cached is None:
            if source == "cur":
                stored = event.current
            else:
                assert event.prev is not None
                obj = dict(event.prev.obj)
                obj["metadata"] = {**obj["metadata"], "resourceVersion": str(event.rv)}
                stored = Stored(obj, event.rv)
            cached = self.encode(kind, stored)
            event.cache[key] = cached
        return cached

    def offer(self, event: Event) -> None:
        data = self.convert(event)
        if data is not None:
            self.sent_rv = event.rv
            self.queue.put_nowait(data)

    def close(self) -> None:
        self.queue.put_nowait(None)


class WatchHub:
    """Routes storage events to the watchers of each resource."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._watchers: dict[str, set[Watcher]] = {}
        self._unsubscribe = storage.subscribe(self._publish)

    def _publish(self, event: Event) -> None:
        for watcher in tuple(self._watchers.get(event.storage_key, ())):
            watcher.offer(event)

    def register(self, watcher: Watcher, since_rv: int | None) -> list[Event]:
        """Start delivering live events; returns the history after ``since_rv`` to replay first.

        Raises :class:`LookupError` when ``since_rv`` has been compacted.
        """
        backlog = self._storage.events_since(since_rv) if since_rv is not None else []
        backlog = [e for e in backlog if e.storage_key == watcher.storage_key]
        watcher.sent_rv = since_rv if since_rv is not None else self._storage.rv
        self._watchers.setdefault(watcher.storage_key, set()).add(watcher)
        return backlog

    def unregister(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.storage_key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.storage_key]

    def close_all(self, storage_key: str | None = None) -> None:
        for key, watchers in list(self._watchers.items()):
            if storage_key is None or key == storage_key:
                for watcher in tuple(watchers):
                    watcher.close()

    @property
    def open_watches(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def stop(self) -> None:
        self.close_all()
        self._unsubscribe()


async def serve_watch(
    request: web.Request,
    hub: WatchHub,
    watcher: Watcher,
    *,
    initial: Iterable[bytes],
    timeout: float | None,
    bookmark: Callable[[Watcher], bytes | None] | None,
    bookmark_interval: float,
    headers: dict[str, str] | None = None,
    rewrite: Rewriter | None = None,
) -> web.StreamResponse:
    """Stream ``initial`` lines, then live events, until timeout / close / client disconnect.

    ``rewrite`` (CRD conversion webhooks) turns each batch of lines into what is sent, and says
    whether the watch must end after it (a failed conversion ends it with an ERROR event).
    """

    async def send(data: bytes) -> bool:
        """Write ``data`` (rewritten); False when the watch must end."""
        stop = False
        if rewrite is not None:
            data, stop = await rewrite(data)
        await response.write(data)
        return not stop

    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout is not None else None
    try:
        await response.prepare(request)
        pending = b"".join(initial)
        ended = bool(pending) and not await send(pending)
        next_bookmark = _next_bookmark(loop.time(), deadline, bookmark_interval) if bookmark else None
        while not ended:
            now = loop.time()
            wake = min((t for t in (deadline, next_bookmark) if t is not None), default=None)
            if deadline is not None and now >= deadline:
                break
            if next_bookmark is not None and bookmark is not None and now >= next_bookmark:
                # flush queued events first so the bookmark never overtakes them
                chunks: list[bytes] = []
                closed = False
                while not watcher.queue.empty():
                    queued = watcher.queue.get_nowait()
                    if queued is None:
                        closed = True
                        break
                    chunks.append(queued)
                mark = None if closed else bookmark(watcher)
                if mark is not None:
                    chunks.append(mark)
                if chunks and not await send(b"".join(chunks)):
                    break
                if closed:
                    break
                next_bookmark = _next_bookmark(now, deadline, bookmark_interval)
                continue
            try:
                if wake is None:
                    item = await watcher.queue.get()
                else:
                    item = await asyncio.wait_for(watcher.queue.get(), max(0.0, wake - now))
            except TimeoutError:
                continue
            chunks = []
            closed = item is None
            if item is not None:
                chunks.append(item)
            while not closed and not watcher.queue.empty():
                more = watcher.queue.get_nowait()
                if more is None:
                    closed = True
                else:
                    chunks.append(more)
            if chunks and not await send(b"".join(chunks)):
                break
            if closed:
                break
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
    except ConnectionError:
        pass  # the client went away; nothing left to tell it
    finally:
        hub.unregister(watcher)
    return response


def _next_bookmark(now: float, deadline: float | None, interval: float) -> float | None:
    candidate = now + interval
    if deadline is not None:
        pre = deadline - 2.0
        candidate = min(candidate, pre)
        if candidate < now:
            return None
    return candidate
