"""A recording HTTP proxy in front of an API server: which API calls does a controller really make?

Used by the RBAC tests of both examples: run the controller through the proxy, then compare the
``(api group, resource, verb)`` triples it used with the rules in its ``rbac.yaml``. The proxy only
speaks plain HTTP upstream (the fake API server); it streams responses, so watches work through it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

Call = tuple[str, str, str]
"""``(api group, resource[/subresource], verb)`` as RBAC names them (core group is ``""``)."""

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


def rbac_call(method: str, path: str, query: Mapping[str, str]) -> Call | None:
    """The RBAC view of one request; ``None`` for non-resource paths (discovery, /version, ...)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    name: str | None = None
    sub: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]  # a namespaced resource: skip namespaces/NS
    resource = rest[0]
    if len(rest) >= 2:
        name = rest[1]
    if len(rest) >= 3:
        sub = rest[2]
    watching = query.get("watch") in ("1", "true")
    verb = {
        "GET": "watch" if watching else ("get" if name else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return group, f"{resource}/{sub}" if sub else resource, verb


def granted(documents: Iterable[Mapping[str, Any]]) -> set[Call]:
    """Every ``(group, resource, verb)`` the ClusterRoles and Roles in ``documents`` allow."""
    out: set[Call] = set()
    for doc in documents:
        if doc.get("kind") not in ("ClusterRole", "Role"):
            continue
        for rule in doc.get("rules") or ():
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule.get("verbs") or ():
                        out.add((group, resource, verb))
    return out


def load_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every YAML document in ``folder`` (kustomization files excluded)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


@dataclass
class Recorder:
    """The proxy's state: where it listens, and the calls it has seen."""

    url: str = ""
    calls: set[Call] = field(default_factory=set)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
                    "users": [{"name": "proxy", "user": {}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
                    "current-context": "proxy",
                }
            )
        )
        return path


@contextlib.asynccontextmanager
async def recording_proxy(upstream: str) -> AsyncIterator[Recorder]:
    """Serve a proxy to ``upstream`` (``http://host:port``) on a free loopback port."""
    recorder = Recorder()
    session = aiohttp.ClientSession(auto_decompress=False)

    async def handle(request: web.Request) -> web.StreamResponse:
        call = rbac_call(request.method, request.path, request.query)
        if call is not None:
            recorder.calls.add(call)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with session.request(
            request.method,
            upstream + request.path_qs,
            headers=headers,
            data=body or None,
            timeout=aiohttp.ClientTimeout(total=None),
        ) as upstream_response:
            response = web.StreamResponse(
                status=upstream_response.status,
                headers={k: v for k, v in upstream_response.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    recorder.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield recorder
    finally:
        await runner.cleanup()
        await session.close()
