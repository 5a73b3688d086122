"""HTTP handlers for resource paths: ``/api/v1/...`` and ``/apis/GROUP/VERSION/...``.

Contract
--------
:func:`resolve` maps a request path to ``(resource type, namespace, name, subresource)`` exactly as
kube-apiserver's request-info resolver does (``namespaces/NS/RESOURCE/NAME/SUB``; ``namespaces/NAME``
is the namespace itself). :class:`ResourceHandler` turns the HTTP verb and query into a Kubernetes
verb, parses the body and query, calls :class:`~.cluster.Cluster` and encodes the answer:

* Lists are built by byte concatenation of each object's stored encoding; pagination uses an opaque
  base64 ``continue`` token ``{"v","rv","start"}`` like the real server, consistent at the first page's
  resourceVersion; an expired token is 410. ``remainingItemCount`` is set when no selector is used.
* ``Accept: ...;as=Table`` renders server-side tables; ``as=PartialObjectMetadata(List)`` returns
  metadata only.
* Watches are served by :func:`~.watch.serve_watch`; a too-old resourceVersion produces a 200 stream
  with a single ``ERROR`` event carrying a 410 ``Expired`` Status, as the real watch cache does.
* PATCH accepts JSON merge, JSON patch and (built-ins only; 415 for custom resources) strategic merge;
  ``application/apply-patch+yaml`` uses :mod:`.apply` when present.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import yaml
from aiohttp import web

from . import tables
from .cluster import Cluster, DeleteOptions
from .discovery import ResourceType
from .errors import (
    ApiError,
    bad_request,
    expired,
    method_not_allowed,
    query_bool,
    status_body,
    unsupported_media_type,
)
from .storage import Stored
from .watch import Watcher, line, serve_watch

if TYPE_CHECKING:
    import datetime as _dt

__all__ = ["ResourceHandler", "Target", "not_found_path", "resolve"]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
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
        or (sub == "finalize" and rt.plural == "namespaces" and not rt.custom)
    ):
        raise not_found_path()
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


def _json_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding body: {exc}") from None


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
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            )
        return int(data["rv"]), str(data["start"])
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise bad_request("continue key is not valid: illegal base64 data at input byte 0") from None


def _manager_from_agent(agent: str) -> str:
    """The default field manager: the User-Agent up to its first ``/`` (as kube-apiserver does)."""
    return agent.split("/", 1)[0][:128] or "unknown"


def _key(item: Stored) -> str:
    return f"{item.namespace}/{item.name}"


class ResourceHandler:
    """Serves one resource request against a :class:`Cluster`."""

    def __init__(
        self,
        cluster: Cluster,
        now: Callable[[], _dt.datetime],
        bookmark_interval: Callable[[], float],
    ) -> None:
        self.cluster = cluster
        self.now = now
        self.bookmark_interval = bookmark_interval

    # ---- entry ----

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        if target.verb not in ("create", "update", "patch"):
            return await self._handle(request, target)
        validation = request.query.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f'fieldValidation: Unsupported value: "{validation}": '
                'supported values: "Ignore", "Strict", "Warn"'
            )
        # Read the body first: from here to the response nothing awaits (aiohttp returns the cached
        # body at once), so no other request can run while these per-request fields are set.
        await request.read()
        self.cluster.field_validation = validation
        self.cluster.warnings = []
        try:
            response = await self._handle(request, target)
            for warning in dict.fromkeys(self.cluster.warnings):
                escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
                response.headers.add("Warning", f'299 - "{escaped}"')
            return response
        finally:
            self.cluster.field_validation = "Warn"
            self.cluster.warnings = []

    async def _handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        query = request.query
        if target.verb not in rt.verbs and not target.subresource:
            raise method_not_allowed(rt.plural, rt.group, target.verb)
        if target.verb == "list":
            return self.list(request, target)
        if target.verb == "watch":
            return await self.watch(request, target)
        if target.verb == "get":
            stored = self.cluster.get(rt, target.namespace, target.name)
            if target.subresource == "scale":
                return self._json(self._scale(rt, stored.obj))
            return self._object(request, rt, stored.obj, stored)
        dry_run = "All" in query.getall("dryRun", [])
        content_type = request.headers.get("Content-Type", "")
        if "protobuf" in content_type or "cbor" in content_type:
            raise unsupported_media_type(content_type, ["application/json", "application/yaml"])
        body = _json_body(await request.read()) if target.verb != "delete" or request.can_read_body else None
        manager = query.get("fieldManager") or _manager_from_agent(request.headers.get("User-Agent", ""))
        if target.verb == "create":
            if target.name or target.subresource:
                raise method_not_allowed(rt.plural, rt.group, "create")
            out = self.cluster.create(rt, target.namespace, body, dry_run=dry_run, manager=manager)
            return self._object(request, rt, out, status=201)
        if target.verb == "update":
            if target.subresource == "finalize":
                finalizers = ((body or {}).get("spec") or {}).get("finalizers") or []
                return self._object(request, rt, self.cluster.finalize_namespace(target.name, finalizers))
            if target.subresource == "scale":
                return self._json(self._scale_update(rt, target, body, dry_run))
            out = self.cluster.update(
                rt,
                target.namespace,
                target.name,
                body,
                subresource=target.subresource or None,
                dry_run=dry_run,
                manager=manager,
            )
            return self._object(request, rt, out)
        if target.verb == "patch":
            return await self.patch(request, target, body, dry_run, manager)
        if target.verb == "delete":
            options = DeleteOptions(body if isinstance(body, dict) else None, dict(query))
            out, _ = self.cluster.delete(rt, target.namespace, target.name, options)
            return self._json(out)
        if target.verb == "deletecollection":
            return self.delete_collection(request, target, body)
        raise method_not_allowed(rt.plural, rt.group, target.verb)

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
                            raise SelectorError(
                                f'"{field}" is not a known field selector: '
                                'only "metadata.name", "metadata.namespace"'
                            )
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

    # ---- list ----

    def list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        query = request.query
        matches = self._matcher(rt, query)
        namespace = target.namespace if rt.namespaced and target.namespace else None
        try:
            limit = int(query.get("limit", "0") or 0)
        except ValueError:
            raise bad_request(f"invalid limit: {query.get('limit')}") from None
        token = query.get("continue", "")
        storage = self.cluster.storage
        start = ""
        if token:
            if query.get("resourceVersion"):
                raise bad_request("specifying resource version is not allowed when using continue")
            at_rv, start = _decode_continue(token)
        else:
            at_rv = storage.rv
            rv_param = query.get("resourceVersion", "")
            if rv_param and query.get("resourceVersionMatch") == "Exact":
                try:
                    at_rv = int(rv_param)
                except ValueError:
                    raise bad_request(f"invalid resource version: {rv_param}") from None
        try:
            items = storage.snapshot(rt.storage_key, namespace, at_rv)
        except LookupError:
            if token:
                raise expired(_EXPIRED_CONTINUE) from None
            raise expired(f"too old resource version: {at_rv} ({storage.compacted_rv})") from None
        index = bisect.bisect_left(items, start, key=_key) if start else 0
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
                    next_token = _encode_continue(at_rv, _key(item) + "\x00")
                    if matches is None:
                        remaining = len(items) - position - 1
                break
        metadata: dict[str, Any] = {"resourceVersion": str(at_rv)}
        if next_token:
            metadata["continue"] = next_token
            if remaining is not None:
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
        raws = b",".join(self.cluster.raw(rt, s) for s in selected)
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

        timeout: float | None = None
        if query.get("timeoutSeconds"):
            try:
                timeout = float(int(query["timeoutSeconds"]))
            except ValueError:
                raise bad_request(f"invalid timeoutSeconds: {query['timeoutSeconds']}") from None
        bookmarks = query_bool(query.get("allowWatchBookmarks"))
        send_initial = query_bool(query.get("sendInitialEvents"))
        rv_param = query.get("resourceVersion", "")
        watcher = Watcher(rt.storage_key, namespace, matches, variant=variant, render=render)
        initial: list[bytes] = []

        def bookmark_line(_: int, *, initial_end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(cluster.storage.rv), "creationTimestamp": None}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return line("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

        if rv_param in ("", "0") or send_initial:
            for stored in cluster.storage.snapshot(rt.storage_key, namespace):
                if matches is None or matches(stored.obj):
                    initial.append(watcher.encode("ADDED", stored))
            cluster.hub.register(watcher, None)
            if send_initial and bookmarks:
                initial.append(bookmark_line(0, initial_end=True))
        else:
            try:
                since = int(rv_param)
            except ValueError:
                raise bad_request(f"invalid resource version: {rv_param}") from None
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

    async def patch(
        self, request: web.Request, target: Target, body: Any, dry_run: bool, manager: str
    ) -> web.Response:
        from . import patch as patchlib

        rt = target.rt
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        accepted = [JSON_PATCH, MERGE, APPLY] if rt.custom else [JSON_PATCH, MERGE, STRATEGIC, APPLY]
        if content_type == APPLY:
            return self._apply(request, target, body, dry_run)
        if content_type not in accepted:
            raise unsupported_media_type(content_type, accepted)

        def apply(obj: dict[str, Any]) -> dict[str, Any]:
            try:
                if content_type == MERGE:
                    return patchlib.json_merge_patch(obj, body)
                if content_type == JSON_PATCH:
                    return patchlib.json_patch(obj, body)
                return patchlib.strategic_merge_patch(obj, body, api_version=rt.api_version, kind=rt.kind)
            except patchlib.PatchError as exc:
                raise ApiError(exc.to_status()) from None

        if target.subresource == "scale":
            return self._json(self._scale_patch(rt, target, apply, dry_run))
        out = self.cluster.patch_with(
            rt,
            target.namespace,
            target.name,
            apply,
            subresource=target.subresource or None,
            dry_run=dry_run,
            manager=manager,
        )
        return self._object(request, rt, out)

    def _apply(self, request: web.Request, target: Target, body: Any, dry_run: bool) -> web.Response:
        rt = target.rt
        query = request.query
        manager = query.get("fieldManager")
        if not manager:
            raise bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: '
                "fieldManager: Required value: is required for apply patch"
            )
        if not isinstance(body, dict):
            raise bad_request("error decoding YAML: the apply patch must be an object")
        force = query_bool(query.get("force"))
        from .apply import server_side_apply
        from .patch import PatchError

        existing = self.cluster.storage.get(
            rt.storage_key, target.namespace if rt.namespaced else "", target.name
        )
        if existing is None and target.subresource:
            self.cluster.get(rt, target.namespace, target.name)  # 404 for a subresource of nothing
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != target.name:
            raise bad_request(
                f"the name of the object ({body_meta['name']}) does not match "
                f"the name on the URL ({target.name})"
            )
        try:
            merged = server_side_apply(
                None if existing is None else self.cluster.view(rt, existing.obj),
                body,
                manager=manager,
                force=force,
                api_version=rt.api_version,
                kind=rt.kind,
                now=self.cluster.now(),
                schema=rt.schema if rt.custom else None,
                subresource=target.subresource or None,
                status_subresource=rt.status_subresource,
            )
        except PatchError as exc:
            raise ApiError(exc.to_status()) from None
        if existing is None:
            merged.setdefault("metadata", {}).setdefault("name", target.name)
            out = self.cluster.create(rt, target.namespace, merged, dry_run=dry_run, manager=None)
            return self._object(request, rt, out, status=201)
        out = self.cluster.patch_with(
            rt,
            target.namespace,
            target.name,
            lambda _: merged,
            subresource=target.subresource or None,
            dry_run=dry_run,
            manager=None,
        )
        return self._object(request, rt, out)

    # ---- scale ----

    def _scale(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        paths = rt.scale_subresource or {}
        spec_path = paths.get("specReplicasPath", ".spec.replicas")
        status_path = paths.get("statusReplicasPath", ".status.replicas")
        selector_path = paths.get("labelSelectorPath")
        spec_vals = tables.evaluate_jsonpath(obj, spec_path)
        status_vals = tables.evaluate_jsonpath(obj, status_path)
        status: dict[str, Any] = {"replicas": status_vals[0] if status_vals else 0}
        if selector_path:
            found = tables.evaluate_jsonpath(obj, selector_path)
            if found:
                status["selector"] = found[0]
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": spec_vals[0] if spec_vals else 0},
            "status": status,
        }

    def _set_replicas(self, rt: ResourceType, obj: dict[str, Any], replicas: Any) -> dict[str, Any]:
        path = (rt.scale_subresource or {}).get("specReplicasPath", ".spec.replicas").lstrip(".").split(".")
        cursor = obj
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[path[-1]] = replicas
        return obj

    def _scale_update(self, rt: ResourceType, target: Target, body: Any, dry_run: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized")
        replicas = (body.get("spec") or {}).get("replicas", 0)
        rv = (body.get("metadata") or {}).get("resourceVersion")

        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            if rv:
                obj["metadata"]["resourceVersion"] = rv
            return self._set_replicas(rt, obj, replicas)

        out = self.cluster.patch_with(rt, target.namespace, target.name, edit, dry_run=dry_run)
        return self._scale(rt, out)

    def _scale_patch(
        self,
        rt: ResourceType,
        target: Target,
        apply: Callable[[dict[str, Any]], dict[str, Any]],
        dry_run: bool,
    ) -> dict[str, Any]:
        current = self._scale(rt, self.cluster.get(rt, target.namespace, target.name).obj)
        patched = apply(current)
        return self._scale_update(rt, target, patched, dry_run)

    # ---- deletecollection ----

    def delete_collection(self, request: web.Request, target: Target, body: Any) -> web.Response:
        rt = target.rt
        query = request.query
        matches = self._matcher(rt, query)
        namespace = target.namespace if rt.namespaced and target.namespace else None
        options = DeleteOptions(body if isinstance(body, dict) else None, dict(query))
        deleted: list[dict[str, Any]] = []
        for stored in list(self.cluster.storage.snapshot(rt.storage_key, namespace)):
            if matches is not None and not matches(stored.obj):
                continue
            try:
                out, _ = self.cluster.delete(rt, stored.namespace, stored.name, options)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(out if out.get("kind") != "Status" else self.cluster.view(rt, stored.obj))
        return self._json(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.cluster.storage.rv)},
                "items": deleted,
            }
        )
