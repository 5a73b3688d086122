"""A counting HTTP proxy for request-budget tests: how many API requests does a controller send?

Contract
--------
* :class:`CountingProxy` is a plain HTTP reverse proxy on ``127.0.0.1`` (a free port) in front of
  an upstream API server URL (the fake API server's ``http://`` address). Every request is
  forwarded unchanged (method, path, query, headers but hop-by-hop ones, body) and the answer is
  streamed back, so watches work through it; each request is recorded as
  ``(method, path, query string)`` in :attr:`CountingProxy.requests`, in arrival order.
* :meth:`CountingProxy.sent` is the recorded requests without watches (a watch stays open: it is
  not a per-reconcile cost). :func:`request_kind` names a request ``(method, resource)`` --
  ``("PATCH", "status")`` for any status subresource.
* :func:`proxied_kubeconfig` writes a copy of a kubeconfig whose clusters point at the proxy, so a
  controller under test -- or a whole ``python -m`` process -- connects through it. Nothing in the
  controller or its client is patched: the requests counted are the ones it really sends.

Not supported: an upstream over TLS (the real tier's kube-apiserver); count those with the API
server's own ``apiserver_request_total`` metric instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

__all__ = ["CountingProxy", "proxied_kubeconfig", "request_kind"]

_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


class CountingProxy:
    """A reverse proxy that records ``(method, path, query)`` of each request (module doc)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str, str]] = []
        self.url = ""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.query_string))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            timeout=aiohttp.ClientTimeout(total=None),  # a watch lasts as long as the client keeps it
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP},
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():  # watches stream through
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # the client closed a watch (shutdown): nothing left to relay
            return response

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CountingProxy]:
        """Serve for the duration of the block; :attr:`url` is set inside it."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # open watches are cut at once on exit (the default waits 60 s for them to end)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(auto_decompress=False) as self._session:
            try:
                yield self
            finally:
                await runner.cleanup()

    def sent(self) -> list[tuple[str, str]]:
        """``(method, path)`` of the requests other than watches."""
        return [(m, p) for m, p, q in self.requests if "watch=true" not in q]


def request_kind(method: str, path: str) -> tuple[str, str]:
    """``(method, resource plural)``, or ``(method, "status")`` for a status subresource."""
    if path.endswith("/status"):
        return method, "status"
    parts = path.strip("/").split("/")
    namespaced = "namespaces" in parts and parts.index("namespaces") + 2 < len(parts)
    return method, parts[parts.index("namespaces") + 2] if namespaced else parts[-1]


def proxied_kubeconfig(kubeconfig: Path, url: str, folder: Path) -> Path:
    """A copy of ``kubeconfig`` in ``folder`` whose clusters' server is ``url``."""
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = url
    path = folder / "proxied-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path
