"""Read paths of resource requests: GET of one object, LIST and WATCH.

Contract
--------
:class:`ReadHandlers` answers reads against a :class:`~.cluster.Cluster`:

* Lists are built by byte concatenation of each object's stored encoding; pagination uses an opaque
  base64 ``continue`` token ``{"v","rv","start"}`` like the real server, consistent at the first page's
  resourceVersion; an expired token is 410. ``remainingItemCount`` is set when no selector is used.
* ``Accept: ...;as=Table`` renders server-side tables; ``as=PartialObjectMetadata(List)`` returns
  metadata only (for lists, single objects and watches).
* Watches are served by :func:`~.watch.serve_watch` (metadata-only watches send
  ``PartialObjectMetadata`` bookmarks); a too-old resourceVersion produces a 200 stream
  with a single ``ERROR`` event carrying a 410 ``Expired`` Status, as the real watch cache does.
  Without a resourceVersion (or with ``0``, or ``sendInitialEvents=true``) the stream starts with
  synthetic ``ADDED`` events for the current objects.
* Label and field selectors are parsed by :mod:`.selectors`; unsupported fields are a 400 with the
  real wording.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from . import tables
from .cluster import Cluster
from .discovery import ResourceType
from .errors import (
    ApiError,
    bad_request,
    expired,
    invalid,
    not_found,
    query_bool,
    status_body,
)
from .storage import Stored, sort_key
from .watch import Watcher, line, serve_watch

if TYPE_CHECKING:
    import datetime as _dt

__all__ = ["ReadHandlers", "Target", "not_found_path", "resolve"]

_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list."
)


def not_found_path() -> ApiError:
    return ApiError(
        status_body(404, "NotFound", "the server could not find the requested resource", details={})
    )


@dataclass
class Target:
    """What a resource path names."""

    rt: ResourceType
    namespace: str
    name: str
    subresource: str
    verb: str = ""


def resolve(
    cluster: Cluster, group: str, version: str, rest: list[str], method: str, *, watch: bool
) -> Target:
    registry = cluster.registry
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = registry.get(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace = rest[1]
            rest = rest[2:]
    if not rest or len(rest) > 3:
        raise not_found_path()
    rt = registry.get(group, version, rest[0])
    if rt is None:
        raise not_found_path()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if rt.namespaced and name and not namespace:
        raise not_found_path()
    if sub and not (
        (sub == "status" and rt.status_subresource)
        or (sub == "scale" and rt.scale_subresource is not None)
        or sub in rt.subresources
        or (sub == "finalize" and rt.plural == "namespaces" and not rt.custom)
    ):
        # the CRD handler answers an unknown subresource as a missing object
        raise not_found(rt.plural, rt.group, name) if rt.custom else not_found_path()
    target = Target(rt, namespace, name, sub)
    if method == "GET":
        target.verb = "get" if name else ("watch" if watch else "list")
    elif method == "POST":
        target.verb = "create"
    elif method == "PUT":
        target.verb = "update"
    elif method == "PATCH":
        target.verb = "patch"
    elif method == "DELETE":
        target.verb = "delete" if name else "deletecollection"
    else:
        raise ApiError(
            status_body(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        )
    return target


def _accept_flags(accept: str) -> str:
    """``"table"``, ``"partial"`` or ``""`` from the Accept header's first supported entry."""
    for entry in accept.split(","):
        params = {
            p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in entry.split(";")[1:] if "=" in p
        }
        kind = params.get("as")
        if kind == "Table" and params.get("g") == "meta.k8s.io":
            return "table"
        if (
            kind in ("PartialObjectMetadata", "PartialObjectMetadataList")
            and params.get("g") == "meta.k8s.io"
        ):
            return "partial"
        if kind is None:
            return ""
    return ""


def _encode_continue(rv: int, start: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise bad_request(
                "invalid continue token: continue key is not valid: "
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            )
        return int(data["rv"]), str(data["start"])
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise bad_request(
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 0"
        ) from None


def _timeout_seconds(query: Any) -> float | None:
    raw = query.get("timeoutSeconds")
    if not raw:
        return None
    try:
        return float(int(raw))
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None


def _parse_rv(raw: str) -> int:
    """A resourceVersion query parameter; an unparsable one is the real server's 500."""
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(raw)
        return value
    except ValueError:
        body = status_body(
            500,
            "",
            f'resourceVersion: Invalid value: "{raw}": strconv.ParseUint: parsing "{raw}": invalid syntax',
        )
        raise ApiError(body) from None


class ReadHandlers:
    """Reads against a :class:`Cluster`; :class:`~.handlers.ResourceHandler` adds the writes."""

    def __init__(
        self,
        cluster: Cluster,
        now: Callable[[], _dt.datetime],
        bookmark_interval: Callable[[], float],
    ) -> None:
        self.cluster = cluster
        self.now = now
        self.bookmark_interval = bookmark_interval

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")

    def _object(
        self,
        request: web.Request,
        rt: ResourceType,
        obj: dict[str, Any],
        stored: Stored | None = None,
        status: int = 200,
    ) -> web.Response:
        mode = _accept_flags(request.headers.get("Accept", ""))
        if mode == "table":
            body = tables.table(
                rt,
                [obj],
                self.now(),
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=request.query.get("includeObject", "Metadata"),
            )
            return self._json(body, status)
        if mode == "partial":
            return self._json(
                {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
                status,
            )
        if stored is not None:
            return web.Response(
                body=self.cluster.raw(rt, stored), status=status, content_type="application/json"
            )
        return self._json(obj, status)

    # ---- selectors ----

    def _matcher(self, rt: ResourceType, query: Any) -> Callable[[dict[str, Any]], bool] | None:
        from .selectors import SelectorError, check_supported, parse_field_selector, parse_label_selector

        label_raw = query.get("labelSelector", "")
        field_raw = query.get("fieldSelector", "")
        try:
            labels = parse_label_selector(label_raw) if label_raw else None
            fields = parse_field_selector(field_raw) if field_raw else None
            if fields is not None:
                if rt.custom:
                    allowed = {"metadata.name", "metadata.namespace"}
                    for field, _, _ in fields.requirements:
                        if field not in allowed:
                            raise SelectorError(f"field label not supported: {field}")
                else:
                    check_supported(fields, rt.group, rt.plural)
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        if labels is None and fields is None:
            return None

        def matches(obj: dict[str, Any]) -> bool:
            if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
                return False
            return fields is None or fields.matches(obj)

        return matches

    async def _wait_for_rv(self, requested: int, timeout: float = 3.0) -> None:
        """Like the watch cache: wait up to 3 s for a future resourceVersion, then 504."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.cluster.storage.rv < requested:
            if loop.time() >= deadline:
                message = (
                    f"Timeout: Too large resource version: {requested}, current: {self.cluster.storage.rv}"
                )
                # client-go's IsTooLargeResourceVersion reads this cause (reflectors relist on it)
                cause = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                details = {"causes": [cause], "retryAfterSeconds": 1}
                raise ApiError(status_body(504, "Timeout", message, details=details))
            await asyncio.sleep(0.05)

    # ---- list ----

    async def list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        query = request.query
        _timeout_seconds(query)
        matches = self._matcher(rt, query)
        namespace = target.namespace if rt.namespaced and target.namespace else None
        try:
            limit = int(query.get("limit", "0") or 0)
        except ValueError:
            raise bad_request(f"invalid limit: {query.get('limit')}") from None
        token = query.get("continue", "")
        if query.get("resourceVersion") == "0" and not token:
            limit = 0  # served from the watch cache, which ignores limit
        storage = self.cluster.storage
        start = ""
        if token:
            if query.get("resourceVersion"):
                raise bad_request("specifying resource version is not allowed when using continue")
            at_rv, start = _decode_continue(token)
        else:
            at_rv = storage.rv
            rv_param = query.get("resourceVersion", "")
            match = query.get("resourceVersionMatch", "")
            causes = []
            if match and not rv_param:
                causes.append(
                    {
                        "reason": "FieldValueForbidden",
                        "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion "
                        "is provided",
                        "field": "resourceVersionMatch",
                    }
                )
            if match not in ("", "Exact", "NotOlderThan"):
                causes.append(
                    {
                        "reason": "FieldValueNotSupported",
                        "message": f'Unsupported value: "{match}": supported values: '
                        '"Exact", "NotOlderThan", ""',
                        "field": "resourceVersionMatch",
                    }
                )
            if causes:
                raise invalid("ListOptions", "meta.k8s.io", "", causes)
            if rv_param:
                requested = _parse_rv(rv_param)
                if requested > storage.rv:
                    await self._wait_for_rv(requested)
                if match == "Exact":
                    at_rv = requested
        try:
            items = storage.snapshot(rt.storage_key, namespace, at_rv)
        except LookupError:
            if token:
                raise expired(_EXPIRED_CONTINUE) from None
            raise expired(f"too old resource version: {at_rv} ({storage.compacted_rv})") from None
        index = bisect.bisect_left(items, start, key=sort_key) if start else 0
        selected: list[Stored] = []
        next_token = ""
        remaining: int | None = None
        for position in range(index, len(items)):
            item = items[position]
            if matches is not None and not matches(item.obj):
                continue
            selected.append(item)
            if limit and len(selected) >= limit:
                if position + 1 < len(items):
                    next_token = _encode_continue(at_rv, sort_key(item) + "\x00")
                    if matches is None:
                        remaining = len(items) - position - 1
                break
        if rt.custom:  # unstructured lists keep an empty continue
            metadata: dict[str, Any] = {"continue": next_token, "resourceVersion": str(at_rv)}
        else:
            metadata = {"resourceVersion": str(at_rv)}
            if next_token:
                metadata["continue"] = next_token
        if next_token and remaining is not None:
            metadata["remainingItemCount"] = remaining
        mode = _accept_flags(request.headers.get("Accept", ""))
        if mode == "table":
            body = tables.table(
                rt,
                [self.cluster.view(rt, s.obj) for s in selected],
                self.now(),
                resource_version=str(at_rv),
                continue_token=next_token,
                include_object=query.get("includeObject", "Metadata"),
            )
            return self._json(body)
        if mode == "partial":
            return self._json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                    "items": [
                        {
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": s.obj["metadata"],
                        }
                        for s in selected
                    ],
                }
            )
        head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata})
        if rt.custom:
            raws = b",".join(self.cluster.raw(rt, s) for s in selected)
        else:  # items of built-in (typed) lists carry no apiVersion / kind on the real server
            raws = b",".join(s.item_raw() for s in selected)
        body_bytes = head[:-1] + b',"items":[' + raws + b"]}"
        return web.Response(body=body_bytes, content_type="application/json")

    # ---- watch ----

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        query = request.query
        matches = self._matcher(rt, query)
        namespace = target.namespace if rt.namespaced and target.namespace else None
        mode = _accept_flags(request.headers.get("Accept", ""))
        table = mode == "table"
        render: Callable[[dict[str, Any]], Any] | None = None
        variant: Any = rt.api_version
        cluster = self.cluster
        if table:
            include = query.get("includeObject", "Metadata")
            variant = ("table", rt.api_version, include)

            def render(obj: dict[str, Any]) -> Any:
                return tables.table(
                    rt,
                    [cluster.view(rt, obj)],
                    self.now(),
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                    include_object=include,
                    with_columns=False,
                )
        elif mode == "partial":
            variant = "partial"

            def render(obj: dict[str, Any]) -> Any:
                return {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                }
        elif rt.storage_version and rt.storage_version != rt.version:

            def render(obj: dict[str, Any]) -> Any:
                return cluster.view(rt, obj)

        timeout = _timeout_seconds(query)
        bookmarks = query_bool(query.get("allowWatchBookmarks"))
        send_initial = query_bool(query.get("sendInitialEvents"))
        rv_param = query.get("resourceVersion", "")
        watcher = Watcher(rt.storage_key, namespace, matches, variant=variant, render=render)
        initial: list[bytes] = []

        def bookmark_object(rv: int, *, initial_end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            if variant == "partial":  # metadata-only watches get metadata-only bookmarks
                return line(
                    "BOOKMARK",
                    {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
                )
            return line("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

        def bookmark_line(w: Watcher) -> bytes | None:
            rv = cluster.storage.rv
            if rv <= w.sent_rv:
                return None  # nothing new since the last event or bookmark
            w.sent_rv = rv
            return bookmark_object(rv)

        if rv_param in ("", "0") or send_initial:
            for stored in cluster.storage.snapshot(rt.storage_key, namespace):
                if matches is None or matches(stored.obj):
                    initial.append(watcher.encode("ADDED", stored))
            cluster.hub.register(watcher, None)
            if send_initial and bookmarks:
                initial.append(bookmark_object(cluster.storage.rv, initial_end=True))
        else:
            since = _parse_rv(rv_param)
            try:
                backlog = cluster.hub.register(watcher, since)
            except LookupError:
                error = status_body(
                    410, "Expired", f"too old resource version: {since} ({cluster.storage.compacted_rv})"
                )
                return await serve_watch(
                    request,
                    cluster.hub,
                    watcher,
                    initial=[line("ERROR", error)],
                    timeout=0.0,
                    bookmark=None,
                    bookmark_interval=1.0,
                )
            for event in backlog:
                data = watcher.convert(event)
                if data is not None:
                    initial.append(data)
                    watcher.sent_rv = max(watcher.sent_rv, event.rv)
        return await serve_watch(
            request,
            cluster.hub,
            watcher,
            initial=initial,
            timeout=timeout,
            bookmark=bookmark_line if bookmarks else None,
            bookmark_interval=self.bookmark_interval(),
        )

    # ---- patch ----
