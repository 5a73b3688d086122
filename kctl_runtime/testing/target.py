"""What a controller test talks to: :class:`KubeTarget`, one API server (fake or real) and a namespace.

Contract
--------
The ``kube`` / ``fake_kube`` fixtures of :mod:`kctl_runtime.testing.pytest_plugin` give a test one
:class:`KubeTarget`: the kubeconfig of its API server, a kubernetes-asyncio ``ApiClient`` for it, a
namespace created for that test alone and, on the fake backend, the
:class:`~kctl_runtime.testing.fakeapi.FakeApiServer` itself (for fault injection). Clients made with
:meth:`KubeTarget.new_api_client` are closed with the fixture. Nothing here needs pytest: the type
is importable from :mod:`kctl_runtime.testing` for annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from kctl_runtime.testing.fakeapi import FakeApiServer

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
    _clients: list[ApiClient] = field(default_factory=list, repr=False)

    @property
    def is_fake(self) -> bool:
        """True on the fake backend (``fake`` holds the server then)."""
        return self.backend == "fake"

    async def new_api_client(self) -> ApiClient:
        """Another independent ``ApiClient`` for the same server (closed after the test)."""
        client = await api_client_for(self.kubeconfig)
        self._clients.append(client)
        return client
