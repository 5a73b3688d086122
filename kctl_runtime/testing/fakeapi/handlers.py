"""HTTP handlers for resource paths: ``/api/v1/...`` and ``/apis/GROUP/VERSION/...``.

Contract
--------
:func:`resolve` maps a request path to ``(resource type, namespace, name, subresource)`` exactly as
kube-apiserver's request-info resolver does (``namespaces/NS/RESOURCE/NAME/SUB``; ``namespaces/NAME``
is the namespace itself). :class:`ResourceHandler` turns the HTTP verb and query into a Kubernetes
verb, parses the body and query, calls :class:`~.cluster.Cluster` and encodes the answer:

* Reads (GET, LIST, WATCH) are in :mod:`.reads`.
* Writes take ``fieldValidation`` (``Strict`` / ``Warn`` / ``Ignore``) and ``fieldManager`` (default:
  the User-Agent up to its first ``/``, as the real server does); dropped unknown fields of custom
  resources come back as ``Warning`` headers.
* PATCH accepts JSON merge, JSON patch and (built-ins only; 415 for custom resources) strategic merge;
  ``application/apply-patch+yaml`` is server-side apply (:mod:`.apply`, conflicts are 409; a body
  without ``apiVersion`` or ``kind`` is a 400).
* Bodies: JSON (invalid UTF-8 replaced as Go's decoder does), YAML read as go-yaml v2 reads it
  (``y``/``n`` are booleans) with alias bombs refused before expansion (400), protobuf for a few core
  kinds; any other create/update content type is a 415.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import orjson
import yaml
from aiohttp import web

from . import protobuf, tables
from .admission import Admission, Attributes
from .cluster import DeleteOptions
from .discovery import ResourceType
from .errors import (
    OPTIONS_KIND,
    ApiError,
    bad_request,
    method_not_allowed,
    options_invalid,
    query_bool,
    status_body,
    unsupported_media_type,
)
from .reads import ReadHandlers, Target, not_found_path, resolve
from .validation import json_type

__all__ = ["ResourceHandler", "Target", "not_found_path", "resolve"]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def _json_body(raw: bytes, content_type: str, kind: str, verb: str) -> Any:
    """The request body: JSON, or YAML when the Content-Type says so; errors worded like the real decoder."""
    if "yaml" in content_type:
        try:
            return _safe_yaml(raw) if raw else None
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
    if not raw:
        if verb in ("create", "update"):
            raise bad_request(
                f"the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; "
                "json parse error: unexpected end of JSON input (<empty>)"
            )
        return None
    try:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            # Go's decoder replaces invalid UTF-8 with U+FFFD instead of failing
            return orjson.loads(raw.decode("utf-8", "replace"))
    except orjson.JSONDecodeError as exc:
        if verb in ("create", "update"):
            preview = raw[:50].decode("utf-8", "replace")
            raise bad_request(
                f"the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; "
                f"json parse error: {exc} ({preview})"
            ) from None
        raise bad_request(f"error decoding patch: {exc}") from None


#: expanded YAML nodes allowed before aliases count as abuse (go-yaml refuses "excessive aliasing")
_YAML_EXPANSION_LIMIT = 400_000


class _GoYamlLoader(yaml.SafeLoader):
    """YAML 1.1 as go-yaml v2 reads it: ``y``/``n`` (any case) are booleans too."""

    bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


_GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:y|Y|n|N|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"),
)


def _safe_yaml(raw: bytes) -> Any:
    """``yaml.safe_load`` that refuses alias bombs before expanding them (a 700-byte one is 200 MB)."""
    node = yaml.compose(raw, Loader=_GoYamlLoader)
    if node is None:
        return None
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        sizes[id(n)] = 1  # a recursive alias counts once (the constructor refuses it)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(child) for child in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        sizes[id(n)] = min(total, _YAML_EXPANSION_LIMIT + 1)
        return sizes[id(n)]

    if size(node) > _YAML_EXPANSION_LIMIT:
        raise bad_request("error decoding YAML: yaml: document contains excessive aliasing")
    return yaml.load(raw, Loader=_GoYamlLoader)


def _check_options(query: Any, verb: str) -> None:
    """422s for bad ``dryRun`` / ``fieldValidation`` values, as the real option validation gives."""
    options = OPTIONS_KIND[verb]
    dry = query.getall("dryRun", [])
    if any(d != "All" for d in dry):
        values = "[" + ", ".join(f'"{d}"' for d in dry) + "]"
        raise options_invalid(
            options,
            "dryRun",
            "FieldValueNotSupported",
            f'Unsupported value: {values}: supported values: "All"',
        )
    validation = query.get("fieldValidation", "")
    if verb in ("create", "update", "patch") and validation not in ("", "Ignore", "Strict", "Warn"):
        raise options_invalid(
            options,
            "fieldValidation",
            "FieldValueNotSupported",
            f'Unsupported value: "{validation}": supported values: "", "Ignore", "Strict", "Warn"',
        )


def _protobuf_body(raw: bytes) -> Any:
    try:
        return protobuf.decode(raw)
    except protobuf.ProtobufError as exc:
        raise ApiError(
            status_body(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json, application/yaml ({exc})",
            )
        ) from None


def _manager_from_agent(agent: str) -> str:
    """The default field manager: the User-Agent up to its first ``/`` (as kube-apiserver does)."""
    return agent.split("/", 1)[0][:128] or "unknown"


class ResourceHandler(ReadHandlers):
    """Serves one resource request against a :class:`~.cluster.Cluster`."""

    _admission: Admission | None = None

    @property
    def admission(self) -> Admission:
        """The webhook admission chain (:mod:`.admission`) every write goes through."""
        if self._admission is None:
            self._admission = Admission(self.cluster.storage)
        return self._admission

    async def _admitted(
        self,
        operation: str,
        target: Target,
        dry_run: bool,
        compute: Callable[[bool], dict[str, Any]],
        commit: Callable[[dict[str, Any], bool], dict[str, Any]],
        *,
        name: str = "",
    ) -> dict[str, Any]:
        """``compute`` / ``commit`` through webhook admission (:meth:`.admission.Admission.admit`).

        The webhooks are awaited, so other requests run meanwhile: this request's ``fieldValidation``
        and warnings are put back on the cluster before each synchronous write and at the end.
        """
        cluster = self.cluster
        validation, warnings = cluster.field_validation, cluster.warnings
        rt = target.rt

        def scoped(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
            def run(*args: Any) -> dict[str, Any]:
                cluster.field_validation, cluster.warnings = validation, warnings
                return fn(*args)

            return run

        def old() -> dict[str, Any] | None:
            key = name or target.name
            stored = cluster.storage.get(rt.storage_key, target.namespace if rt.namespaced else "", key)
            return None if stored is None else cluster.view(rt, stored.obj)

        attrs = Attributes(
            operation, rt, target.namespace, name or target.name, target.subresource or "", dry_run
        )
        try:
            return await self.admission.admit(attrs, scoped(compute), scoped(commit), old, warnings)
        finally:
            cluster.field_validation, cluster.warnings = validation, warnings

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        if target.verb not in ("create", "update", "patch"):
            return await self._handle(request, target)
        _check_options(request.query, target.verb)
        validation = request.query.get("fieldValidation") or "Warn"
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
            return await self.list(request, target)
        if target.verb == "watch":
            return await self.watch(request, target)
        if target.verb == "get":
            stored = self.cluster.get(rt, target.namespace, target.name)
            if target.subresource == "scale":
                return self._json(self._scale(rt, stored.obj))
            return self._object(request, rt, stored.obj, stored)
        _check_options(query, target.verb)
        dry_run = "All" in query.getall("dryRun", [])
        content_type = request.headers.get("Content-Type", "")
        if "cbor" in content_type or ("protobuf" in content_type and target.verb == "patch"):
            raise unsupported_media_type(content_type, ["application/json", "application/yaml"])
        raw = await request.read() if target.verb != "delete" or request.can_read_body else b""
        if (
            target.verb in ("create", "update")
            and content_type
            and not any(t in content_type for t in ("json", "yaml", "protobuf"))
        ):
            raise unsupported_media_type(content_type, ["application/json", "application/yaml"])
        if "protobuf" in content_type:
            body = _protobuf_body(raw)
        else:
            body = _json_body(raw, content_type, rt.kind, "" if target.subresource else target.verb)
        manager = query.get("fieldManager") or _manager_from_agent(request.headers.get("User-Agent", ""))
        if target.verb == "create":
            if target.name or target.subresource:
                raise method_not_allowed(rt.plural, rt.group, "create")
            out = await self._admitted(
                "CREATE",
                target,
                dry_run,
                lambda dry: self.cluster.create(rt, target.namespace, body, dry_run=dry, manager=manager),
                lambda obj, dry: self.cluster.create(rt, target.namespace, obj, dry_run=dry, manager=None),
                name=str(((body if isinstance(body, dict) else {}).get("metadata") or {}).get("name") or ""),
            )
            return self._object(request, rt, out, status=201)
        if target.verb == "update":
            if target.subresource == "finalize":
                finalizers = ((body or {}).get("spec") or {}).get("finalizers") or []
                return self._object(request, rt, self.cluster.finalize_namespace(target.name, finalizers))
            if target.subresource == "scale":
                return self._json(self._scale_update(rt, target, body, dry_run, manager))
            sub = target.subresource or None
            out = await self._admitted(
                "UPDATE",
                target,
                dry_run,
                lambda dry: self.cluster.update(
                    rt, target.namespace, target.name, body, subresource=sub, dry_run=dry, manager=manager
                ),
                self._commit_update(target),
            )
            return self._object(request, rt, out)
        if target.verb == "patch":
            return await self.patch(request, target, body, dry_run, manager)
        if target.verb == "delete":
            options = DeleteOptions(body if isinstance(body, dict) else None, dict(query))

            def delete(*_: Any) -> dict[str, Any]:
                return self.cluster.delete(rt, target.namespace, target.name, options)[0]

            return self._json(await self._admitted("DELETE", target, options.dry_run, delete, delete))
        if target.verb == "deletecollection":
            return self.delete_collection(request, target, body)
        raise method_not_allowed(rt.plural, rt.group, target.verb)

    async def patch(
        self, request: web.Request, target: Target, body: Any, dry_run: bool, manager: str
    ) -> web.Response:
        from . import patch as patchlib

        rt = target.rt
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        accepted = [JSON_PATCH, MERGE, APPLY] if rt.custom else [JSON_PATCH, MERGE, STRATEGIC, APPLY]
        if content_type == APPLY:
            return await self._apply(request, target, body, dry_run)
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
            return self._json(self._scale_patch(rt, target, apply, dry_run, manager))
        out = await self._patch_admitted(rt, target, dry_run, apply, manager)
        return self._object(request, rt, out)

    async def _patch_admitted(
        self,
        rt: ResourceType,
        target: Target,
        dry_run: bool,
        transform: Callable[[dict[str, Any]], dict[str, Any]],
        manager: str | None,
    ) -> dict[str, Any]:
        """An UPDATE through admission whose new object is ``transform(stored)`` (patch and apply)."""
        return await self._admitted(
            "UPDATE",
            target,
            dry_run,
            lambda dry: self.cluster.patch_with(
                rt,
                target.namespace,
                target.name,
                transform,
                subresource=target.subresource or None,
                dry_run=dry,
                manager=manager,
            ),
            self._commit_update(target),
        )

    def _commit_update(self, target: Target) -> Callable[[dict[str, Any], bool], dict[str, Any]]:
        """Write an admitted object over the stored one (its resourceVersion is the precondition)."""

        def commit(obj: dict[str, Any], dry: bool) -> dict[str, Any]:
            return self.cluster.update(
                target.rt,
                target.namespace,
                target.name,
                obj,
                subresource=target.subresource or None,
                dry_run=dry,
                manager=None,
            )

        return commit

    async def _apply(self, request: web.Request, target: Target, body: Any, dry_run: bool) -> web.Response:
        rt = target.rt
        query = request.query
        manager = query.get("fieldManager")
        if not manager:
            raise options_invalid(
                "PatchOptions",
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            )
        if not isinstance(body, dict):
            raise bad_request("error decoding YAML: the apply patch must be an object")
        for key in ("apiVersion", "kind"):
            if not body.get(key):
                raise bad_request(f"invalid object type: {key} must be set in an apply patch")
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

            def create(obj: dict[str, Any], dry: bool) -> dict[str, Any]:
                return self.cluster.create(rt, target.namespace, obj, dry_run=dry, manager=None)

            out = await self._admitted(
                "CREATE", target, dry_run, lambda dry: create(merged, dry), create, name=target.name
            )
            return self._object(request, rt, out, status=201)
        out = await self._patch_admitted(rt, target, dry_run, lambda _: merged, None)
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
        if not rt.custom:  # the apps registry renders spec.selector
            from .selectors import SelectorError, label_selector_from_dict

            with contextlib.suppress(SelectorError):
                status["selector"] = str(label_selector_from_dict((obj.get("spec") or {}).get("selector")))
        elif selector_path:
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

    def _scale_update(
        self, rt: ResourceType, target: Target, body: Any, dry_run: bool, manager: str
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized")
        spec, meta = body.get("spec") or {}, body.get("metadata") or {}
        replicas = spec.get("replicas") if isinstance(spec, dict) else None
        replicas = 0 if replicas is None and isinstance(spec, dict) else replicas
        if not isinstance(spec, dict) or not isinstance(meta, dict) or type(replicas) is not int:
            field, go_type, value = (
                ("Scale.spec", "v1.ScaleSpec", spec)
                if not isinstance(spec, dict)
                else ("Scale.metadata", "v1.ObjectMeta", meta)
                if not isinstance(meta, dict)
                else ("ScaleSpec.spec.replicas", "int32", replicas)
            )
            raise bad_request(
                'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
                f"{json_type(value)} into Go struct field {field} of type {go_type}"
            )
        rv = meta.get("resourceVersion")

        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            if rv:
                obj["metadata"]["resourceVersion"] = rv
            return self._set_replicas(rt, obj, replicas)

        out = self.cluster.patch_with(
            rt, target.namespace, target.name, edit, dry_run=dry_run, manager=manager, subresource="scale"
        )
        return self._scale(rt, out)

    def _scale_patch(
        self,
        rt: ResourceType,
        target: Target,
        apply: Callable[[dict[str, Any]], dict[str, Any]],
        dry_run: bool,
        manager: str,
    ) -> dict[str, Any]:
        current = self._scale(rt, self.cluster.get(rt, target.namespace, target.name).obj)
        patched = apply(current)
        return self._scale_update(rt, target, patched, dry_run, manager)

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
            item = out if out.get("kind") != "Status" else self.cluster.view(rt, stored.obj)
            if not rt.custom:  # typed list items carry no apiVersion / kind
                item = {k: v for k, v in item.items() if k not in ("apiVersion", "kind")}
            deleted.append(item)
        return self._json(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.cluster.storage.rv)},
                "items": deleted,
            }
        )
