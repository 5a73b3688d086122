"""Helpers for the conformance scenarios: raw requests, watch streams, CRDs, Status bodies.

Every helper goes through the real kubernetes-asyncio ``ApiClient`` over HTTP, so the scenarios run
unchanged against the fake and against a real kube-apiserver.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import anyio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name


def status_of(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` body of a failed call."""
    body: dict[str, Any] = json.loads(exc.body or b"{}")
    return body


async def _auth_headers(api: client.ApiClient) -> dict[str, str]:
    """The bearer-token header the client is configured with (none for certificate auth)."""
    settings: dict[str, Any] = await api.configuration.auth_settings()
    setting = settings.get("BearerToken") or {}
    value = setting.get("value")
    return {str(setting["key"]): str(value)} if value else {}


async def raw(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request through the client's transport; returns status, headers and decoded JSON body."""
    header_params = {"Accept": "application/json"}
    if body is not None:
        header_params["Content-Type"] = "application/json"
    header_params.update(headers or {})
    if isinstance(body, bytes):
        # bytes go out verbatim (call_api would JSON-encode them): same session, TLS and certificates
        url = str(api.configuration.host) + path + ("?" + urlencode(query) if query else "")
        header_params.update(await _auth_headers(api))
        # large bodies go as a stream (aiohttp warns that raw bytes might block the loop)
        data_out: Any = io.BytesIO(body) if len(body) > 65536 else body
        response = await api.rest_client.pool_manager.request(
            method, url, data=data_out, headers=header_params
        )
        try:
            data = await response.read()
        finally:
            response.release()
        headers_out = dict(response.headers)
        if "json" in headers_out.get("Content-Type", ""):
            return response.status, headers_out, json.loads(data) if data else None
        return response.status, headers_out, data.decode()
    response = await api.call_api(
        path,
        method,
        query_params=query or [],
        header_params=header_params,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    try:
        data = await response.read()
    finally:
        response.release()
    headers = dict(response.headers)
    if "json" in headers.get("Content-Type", ""):
        return response.status, headers, json.loads(data) if data else None
    return response.status, headers, data.decode()


@asynccontextmanager
async def open_watch(
    api: client.ApiClient, path: str, query: list[tuple[str, str]], *, accept: str = "application/json"
) -> AsyncIterator[WatchStream]:
    response = await api.call_api(
        path,
        "GET",
        query_params=[("watch", "true"), *query],
        header_params={"Accept": accept},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    try:
        yield WatchStream(response)
    finally:
        response.close()


class WatchStream:
    """Decoded watch events from an open HTTP watch response."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status: int = response.status

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next event, or ``None`` when the server ended the stream."""
        with anyio.fail_after(timeout):
            line = await self.response.content.readline()
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        return event

    async def take(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for _ in range(n):
            event = await self.next(timeout)
            assert event is not None, f"stream ended after {len(events)} events: {events}"
            events.append(event)
        return events

    async def until(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Skip events until one satisfies ``predicate``."""
        with anyio.fail_after(timeout):
            while True:
                event = await self.next(timeout)
                assert event is not None, "stream ended before the expected event"
                if predicate(event):
                    return event


def configmap(
    name: str, *, labels: dict[str, str] | None = None, data: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name: str, *, replicas: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    match = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": match},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


@dataclass
class Crd:
    """A CRD created for one test (unique group) and how to address its objects."""

    name: str
    group: str
    plural: str
    kind: str
    versions: list[str]
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.versions[0]}"

    def path(self, namespace: str | None = None, version: str | None = None) -> str:
        version = version or self.versions[0]
        if namespace:
            return f"/apis/{self.group}/{version}/namespaces/{namespace}/{self.plural}"
        return f"/apis/{self.group}/{version}/{self.plural}"


WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 100},
                "color": {"type": "string", "enum": ["red", "green", "blue"], "default": "red"},
                "gitRepo": {"type": "string"},
                "replicas": {"type": "integer"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {"type": "string"},
                "replicas": {"type": "integer"},
                "selector": {"type": "string"},
            },
        },
    },
}


async def create_crd(
    kube: KubeTarget,
    *,
    scope: str = "Namespaced",
    versions: list[str] | None = None,
    served: dict[str, bool] | None = None,
    schema: dict[str, Any] | None = None,
    status: bool = True,
    scale: bool = False,
    printer_columns: list[dict[str, Any]] | None = None,
    short_names: list[str] | None = None,
    categories: list[str] | None = None,
) -> Crd:
    """Create a CRD in a group no other test uses and wait until its resource is served."""
    versions = versions or ["v1"]
    group = f"{unique_name('g')}.kctl.example.com"
    suffix = group.split(".", maxsplit=1)[0].replace("-", "")
    kind = "Widget"
    plural = "widgets"
    subresources: dict[str, Any] = {}
    if status:
        subresources["status"] = {}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    version_specs = []
    for index, version in enumerate(versions):
        spec: dict[str, Any] = {
            "name": version,
            "served": (served or {}).get(version, True),
            "storage": index == 0,
            "schema": {"openAPIV3Schema": schema or WIDGET_SCHEMA},
        }
        if subresources:
            spec["subresources"] = subresources
        if printer_columns is not None:
            spec["additionalPrinterColumns"] = printer_columns
        version_specs.append(spec)
    names: dict[str, Any] = {"plural": plural, "singular": "widget", "kind": kind, "listKind": "WidgetList"}
    if short_names:
        names["shortNames"] = [f"{s}{suffix}"[:20] for s in short_names]
    if categories:
        names["categories"] = categories
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope, "names": names, "versions": version_specs},
    }
    ext = ext_api(kube.api_client)
    await ext.create_custom_resource_definition(body)
    crd = Crd(f"{plural}.{group}", group, plural, kind, versions, scope == "Namespaced")
    served_version = next(v for v in versions if (served or {}).get(v, True))

    async def is_served() -> bool:
        got = await ext.read_custom_resource_definition(crd.name)
        conditions = {c.type: c.status for c in (got.status.conditions or [])}
        assert conditions.get("Established") == "True", conditions
        status_code, _, _ = await raw(kube.api_client, "GET", f"/apis/{group}/{served_version}")
        assert status_code == 200
        # a real server may answer discovery a moment before the resource path itself
        namespace = kube.namespace if scope == "Namespaced" else None
        status_code, _, _ = await raw(kube.api_client, "GET", crd.path(namespace, served_version))
        assert status_code == 200
        return True

    await eventually(is_served, message=f"CRD {crd.name} established and served")
    return crd


async def delete_crd(kube: KubeTarget, crd: Crd) -> None:
    ext = ext_api(kube.api_client)
    try:
        await ext.delete_custom_resource_definition(crd.name)
    except ApiException as exc:
        if exc.status != 404:
            raise


# The generated API classes are typed with their model classes; the scenarios pass plain dicts
# (which the client accepts at run time), so they use these untyped handles.
def core_api(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def apps_api(api: client.ApiClient) -> Any:
    return client.AppsV1Api(api)


def custom_api(api: client.ApiClient) -> Any:
    return client.CustomObjectsApi(api)


def ext_api(api: client.ApiClient) -> Any:
    return client.ApiextensionsV1Api(api)


def version_api(api: client.ApiClient) -> Any:
    return client.VersionApi(api)


def apis_api(api: client.ApiClient) -> Any:
    return client.ApisApi(api)
