"""A fake Kubernetes API server for tests: real HTTP, real REST semantics, in process.

Contract
--------
:class:`FakeApiServer` serves the Kubernetes REST API on 127.0.0.1 for the built-in resources a
controller typically touches and for any CRD created in it, with the behaviour a controller can
observe on a real kube-apiserver (resourceVersion, generation, conflicts, watches with history and
bookmarks, finalizers, garbage collection, namespace lifecycle, server-side tables). Use it through
any Kubernetes client: :meth:`FakeApiServer.api_client` and the kubeconfig it writes.
:class:`FaultInjector` (``server.faults``) makes it misbehave on purpose. Differences from the real
server are listed in ``docs/testing/fake-api-server.md``.
"""

from .faults import FaultInjector
from .server import FakeApiServer

__all__ = ["FakeApiServer", "FaultInjector"]
