"""OpenAPI v3 documents, enough for kubectl's server-side field validation and apply.

Contract
--------
* ``GET /openapi/v3`` is the discovery root: ``{"paths": {"api/v1": {"serverRelativeURL": ...}}}``
  with one entry per served group-version and a content hash in each URL, as kube-apiserver serves it
  (including its ``text/plain`` content type).
* ``GET /openapi/v3/api/v1`` and ``/openapi/v3/apis/G/V`` return an OpenAPI 3.0 document with the
  resource paths of that group-version. Every ``patch`` operation carries
  ``x-kubernetes-group-version-kind`` and the ``fieldValidation``, ``dryRun``, ``fieldManager`` and
  ``force`` query parameters, which is how kubectl learns that the server validates fields itself.
* Custom resources get a component schema built from their CRD's ``openAPIV3Schema`` (plus
  ``apiVersion`` / ``kind`` / ``metadata``) with ``x-kubernetes-group-version-kind``. Built-in kinds
  get no component schema: kubectl then computes strategic-merge patches from its compiled-in types,
  which carry the same merge keys the real schema publishes.
* ``GET /openapi/v2`` answers 404 (kube-apiserver serves protobuf/JSON there; kubectl 1.27+ uses v3).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from .discovery import Registry, ResourceType
from .errors import ApiError, status_body

__all__ = ["document", "root", "serve"]


def _not_found() -> ApiError:
    return ApiError(
        status_body(404, "NotFound", "the server could not find the requested resource", details={})
    )


def _schema_name(rt: ResourceType) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _op(rt: ResourceType, action: str, schema_ref: dict[str, Any] | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema_ref or {}}}}
        },
    }
    params = [_query("pretty")]
    if action in ("put", "post", "patch", "delete"):
        params.append(_query("dryRun"))
    if action in ("put", "post", "patch"):
        params += [_query("fieldManager"), _query("fieldValidation")]
    if action == "patch":
        params.append({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}})
    op["parameters"] = params
    if action in ("put", "post", "patch"):
        op["requestBody"] = {"content": {"application/json": {"schema": schema_ref or {}}}, "required": True}
    return op


def _custom_schema(rt: ResourceType) -> dict[str, Any]:
    schema = dict(rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    properties = dict(schema.get("properties") or {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {"type": "object"}
    schema["properties"] = properties
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    return schema


def document(registry: Registry, group: str, version: str) -> dict[str, Any]:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in sorted(
        (r for r in registry.all() if r.group == group and r.version == version), key=lambda r: r.plural
    ):
        ref: dict[str, Any] | None = None
        if rt.custom:
            schemas[_schema_name(rt)] = _custom_schema(rt)
            ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        paths[base] = {
            "get": _op(rt, "list", None),
            "post": _op(rt, "post", ref),
            "delete": _op(rt, "deletecollection", None),
        }
        item = {
            "get": _op(rt, "get", ref),
            "put": _op(rt, "put", ref),
            "patch": _op(rt, "patch", ref),
            "delete": _op(rt, "delete", None),
        }
        paths[f"{base}/{{name}}"] = item
        if rt.status_subresource:
            paths[f"{base}/{{name}}/status"] = {
                "get": _op(rt, "get", ref),
                "put": _op(rt, "put", ref),
                "patch": _op(rt, "patch", ref),
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest().upper()


def root(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    group_versions = [("", "v1")] + [(g, v) for g in registry.groups() for v in registry.group_versions(g)]
    for group, version in group_versions:
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        digest = _hash(document(registry, group, version))
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def serve(request: web.Request, registry: Registry, rest: list[str]) -> web.StreamResponse:
    del request
    if rest == ["v3"]:
        # kube-apiserver labels this JSON document text/plain
        return web.Response(body=orjson.dumps(root(registry)), content_type="text/plain", charset="utf-8")
    if len(rest) == 3 and rest[:2] == ["v3", "api"]:
        group, version = "", rest[2]
    elif len(rest) == 4 and rest[:2] == ["v3", "apis"]:
        group, version = rest[2], rest[3]
    else:
        raise _not_found()
    if not registry.has_group_version(group, version):
        raise _not_found()
    return web.Response(
        body=orjson.dumps(document(registry, group, version)), content_type="application/json"
    )
