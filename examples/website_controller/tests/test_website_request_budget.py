"""Regression guard (issue 15): how many API requests the Website controller sends per reconcile.

The controller runs against the fake API server through a counting HTTP proxy (real HTTP, the real
client; nothing is patched), so every request it sends -- reads that missed the cache, writes,
events -- is seen. In steady state a reconcile must send nothing: reads come from the cache, and a
child that already matches is not applied again. A spec change costs one Deployment apply, at most
two status writes and one event. Not timed.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import yaml
from aiohttp import web

from examples.website_controller.controller import WEBSITES, child_name
from examples.website_controller.tests.harness import install_crd, running_controller, website
from kctl_runtime.client import Client
from kctl_runtime.resource import DEPLOYMENTS, SERVICES
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


class CountingProxy:
    """A plain HTTP reverse proxy on 127.0.0.1 that records ``(method, path, query)`` of each request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str, str]] = []
        self.url = ""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.query_string))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None
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
                pass  # the controller closed a watch (shutdown): nothing left to relay
            return response

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CountingProxy]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, handle_signals=False)
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
        """Requests other than watches (a watch stays open; it is not a per-reconcile cost)."""
        return [(m, p) for m, p, q in self.requests if "watch=true" not in q]


def _resource_of(path: str) -> str:
    """``status`` for a status subresource, else the resource's plural (``deployments``, ...)."""
    if path.endswith("/status"):
        return "status"
    parts = path.strip("/").split("/")
    namespaced = "namespaces" in parts and parts.index("namespaces") + 2 < len(parts)
    return parts[parts.index("namespaces") + 2] if namespaced else parts[-1]


def _proxied_kubeconfig(kubeconfig: Path, url: str, folder: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = url
    path = folder / "proxied-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_steady_state_reconciles_send_no_requests_and_a_spec_change_costs_one_apply(
    fake_kube: KubeTarget, tmp_path: Path
) -> None:
    kube = fake_kube
    api = Client(kube.api_client)
    await install_crd(api)
    names = [f"budget-{i}" for i in range(3)]
    for name in names:
        await api.create(WEBSITES, website(name, kube.namespace), namespace=kube.namespace)
    upstream = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    async with CountingProxy(upstream).running() as proxy:
        kubeconfig = _proxied_kubeconfig(kube.kubeconfig, proxy.url, tmp_path)
        async with running_controller(kube, kubeconfig=kubeconfig) as running:

            async def converged() -> bool:
                for name in names:
                    current = await api.get(WEBSITES, name, kube.namespace)
                    if (current.get("status") or {}).get("observedGeneration") != 1:
                        return False
                return True

            await eventually(converged, message="Websites converged")

            async def quiet() -> bool:
                before = (len(running.reconciler.calls), len(proxy.requests))
                await anyio.sleep(1.0)
                return before == (len(running.reconciler.calls), len(proxy.requests))

            await eventually(quiet, timeout=30, message="controller quiet")

            # steady state: someone else edits a field we do not manage on each child; each edit
            # reconciles the Website, which must find everything in place and send nothing
            proxy.requests.clear()
            calls = len(running.reconciler.calls)
            for name in names:
                for resource in (DEPLOYMENTS, SERVICES):
                    await api.patch(
                        resource,
                        child_name(name),
                        {"metadata": {"labels": {"touched-by": "someone-else"}}},
                        namespace=kube.namespace,
                    )

            async def reconciled_all() -> bool:
                return len(running.reconciler.calls) - calls >= 2 * len(names)

            await eventually(reconciled_all, message="a reconcile per edited child")
            await eventually(quiet, timeout=30, message="controller quiet")
            assert proxy.sent() == [], "steady-state reconciles sent requests"

            # a spec change: one Deployment apply, at most two status writes, at most one event
            proxy.requests.clear()
            await api.patch(
                WEBSITES,
                names[0],
                {"spec": {"gitRepo": "https://example.com/other/site.git"}},
                namespace=kube.namespace,
            )

            async def rolled() -> bool:
                deployment = await api.get(DEPLOYMENTS, child_name(names[0]), kube.namespace)
                return "other/site.git" in str(deployment["spec"]["template"])

            await eventually(rolled, message="spec change rolled out")
            await eventually(quiet, timeout=30, message="controller quiet")
            sent = proxy.sent()
            kinds = collections.Counter((method, _resource_of(path)) for method, path in sent)
            assert kinds[("PATCH", "deployments")] == 1, sent
            assert kinds[("PATCH", "status")] <= 2, sent
            assert kinds[("POST", "events")] + kinds[("PATCH", "events")] <= 1, sent
            assert (
                sum(kinds.values())
                - kinds[("PATCH", "deployments")]
                - kinds[("PATCH", "status")]
                - (kinds[("POST", "events")] + kinds[("PATCH", "events")])
                == 0
            ), f"unexpected requests: {sent}"
