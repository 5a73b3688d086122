"""What a controller test talks to: :class:`KubeTarget`, one API server (fake or real) and a namespace.

Contract
--------
The ``kube`` / ``fake_kube`` fixtures of :mod:`kctl_runtime.testing.pytest_plugin` give a test one
:class:`KubeTarget`: the kubeconfig of its API server, a kubernetes-asyncio ``ApiClient`` for it, a
namespace created for that test alone and, on the fake backend, the
:class:`~kctl_runtime.testing.fakeapi.FakeApiServer` itself (for fault injection); on the real
backend, the :class:`~kctl_runtime.testing.envtest.ControlPlane`;
:attr:`KubeTarget.service_node_port_range` is either server's Service node-port range.
:meth:`KubeTarget.restart_api_server` restarts the API server under a test: the fake's ``stop()`` /
``start()`` (same port, same objects) or the real kube-apiserver (same port, same etcd; the whole
session shares it, so other tests see the restart only as a past event). Clients made with
:meth:`KubeTarget.new_api_client` are closed with the fixture. Nothing here needs pytest: the type
is importable from :mod:`kctl_runtime.testing` for annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from kctl_runtime.testing.envtest import ControlPlane
    from kctl_runtime.testing.fakeapi import FakeApiServer
    from kctl_runtime.testing.portrange import PortRange

__all__ = ["KubeTarget", "api_client_for"]


async def api_client_for(kubeconfig: Path) -> ApiClient:
    """A new kubernetes-asyncio ``ApiClient`` for ``kubeconfig`` (the caller closes it)."""
    from kctl_runtime.config import load_config

    client: ApiClient = await load_config(kubeconfig)
    return client


@dataclass
class KubeTarget:
    """What a test gets: one API server to talk to, and a namespace of its own."""

    backend: str
    kubeconfig: Path
    api_client: ApiClient
    namespace: str
    fake: FakeApiServer | None = None
    plane: ControlPlane | None = None
    _clients: list[ApiClient] = field(default_factory=list, repr=False)

    @property
    def is_fake(self) -> bool:
        """True on the fake backend (``fake`` holds the server then)."""
        return self.backend == "fake"

    @property
    def service_node_port_range(self) -> PortRange:
        """The node-port range of this API server (``$KCTL_ENVTEST_NODE_PORT_RANGE`` on both tiers)."""
        server = self.fake or self.plane
        if server is None:
            raise RuntimeError("this target has neither a fake API server nor a control plane")
        return server.service_node_port_range

    async def restart_api_server(self, *, down_seconds: float = 0.0) -> float:
        """Stop the API server, keep it down ``down_seconds``, start it again; seconds until ready."""
        started = anyio.current_time()
        if self.fake is not None:
            await self.fake.stop()
            await anyio.sleep(down_seconds)
            await self.fake.start()
            return anyio.current_time() - started
        if self.plane is None:
            raise RuntimeError("this target has neither a fake API server nor a control plane to restart")
        plane = self.plane
        return await anyio.to_thread.run_sync(lambda: plane.restart_apiserver(down_seconds=down_seconds))

    async def new_api_client(self) -> ApiClient:
        """Another independent ``ApiClient`` for the same server (closed after the test)."""
        client = await api_client_for(self.kubeconfig)
        self._clients.append(client)
        return client
