"""The fake Kubernetes API server: an aiohttp app on 127.0.0.1 speaking the real REST API.

Contract
--------
``async with FakeApiServer() as server:`` starts the server on ``server.url`` (an ephemeral port by
default), writes a kubeconfig to ``server.kubeconfig_path`` (a temporary file unless one is given;
the temporary one is removed on exit) and starts the background controllers (:mod:`.gc`). On exit
open watches end, the controllers stop and the port is released.

* :meth:`FakeApiServer.api_client` returns a kubernetes-asyncio ``ApiClient`` configured for the
  server (the caller closes it).
* :attr:`FakeApiServer.faults` is the :class:`~.faults.FaultInjector` consulted by a middleware
  before every request.
* :meth:`FakeApiServer.seed` bulk-loads objects without HTTP (fixtures and benchmarks).
* ``clock`` supplies wall time for timestamps (``creationTimestamp``, ``deletionTimestamp``, table
  ages); network timeouts (watch ``timeoutSeconds``, bookmarks, injected delays) use real time.
* ``bookmark_interval`` (default 60 s, like kube-apiserver) spaces periodic watch bookmarks.
* Restart: :meth:`FakeApiServer.stop` ends every watch, stops the controllers and releases the port
  (a second ``stop()`` does nothing); :meth:`FakeApiServer.start` serves again on the same port with
  the same objects. Like a restarted kube-apiserver, whose watch cache starts at the current
  revision, the restarted server forgets its event history: a watch resuming from an older
  resourceVersion gets 410 Expired and relists.
* ``state_file``: :meth:`stop` writes every object there (JSON) and the first :meth:`start` of a
  server given an existing file loads it, so a fake restarted in a new process keeps its objects.
  The load is an etcd restore with ``--bump-revision --mark-compacted``: objects get new
  resourceVersions and every resourceVersion the previous incarnation issued is compacted (410).
  A server started for the first time on an explicit ``port`` (a new incarnation at an address
  clients may already know) without a state file starts its revisions at a clock-derived value,
  above anything an earlier incarnation issued, with nothing older served: clients resuming from a
  resourceVersion this server never issued get 410 instead of a silently different history.
* ``managed_fields`` (default ``True``, like kube-apiserver) records ``metadata.managedFields`` on every
  create / update / patch; ``False`` skips that bookkeeping (about 1.5 ms per write for a 1.4 KB
  ConfigMap) for load tests that do not look at it. Server-side apply always records its fields.
* :attr:`FakeApiServer.ca_pem` is the fake cluster's CA: the built-in CertificateSigningRequest
  signers issue from it and ``kube-root-ca.crt`` publishes it. It is made per server object (not
  kept in a state file) and its certificates' validity is real time, whatever ``clock`` says.
* ``service_node_port_range`` (default ``"30000-32767"``, kube-apiserver's default) is
  kube-apiserver's ``--service-node-port-range``: ``LOW-HIGH``, ``LOW+OFFSET`` or ``PORT``, checked
  at construction (:class:`ValueError` naming the value) by
  :func:`~kctl_runtime.testing.portrange.parse_port_range`. NodePort and LoadBalancer Services get
  their ports from it; a requested port outside it is a 422, a full range a 500, both worded as
  kube-apiserver words them. The ``kube`` fixtures pass ``$KCTL_ENVTEST_NODE_PORT_RANGE``, the
  variable that sets the real tier's range too.
* ``controllers`` (default ``True``) runs the fake's own background controllers (garbage collector,
  namespace lifecycle, default ServiceAccount and root CA publishing, CSR signing, CRD establishment);
  ``False`` steps them aside for a real kube-controller-manager pointed at the fake.

Served paths: ``/version``, ``/healthz``, ``/readyz``, ``/livez``, discovery (legacy and aggregated),
``/openapi/v2`` and ``/openapi/v3`` (see :mod:`.openapi`), and the resource paths (:mod:`.handlers`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from kctl_runtime.clock import Clock, SystemClock, format_time
from kctl_runtime.testing.portrange import DEFAULT_SERVICE_NODE_PORT_RANGE, parse_port_range

from . import openapi
from .cluster import Cluster
from .errors import ApiError, query_bool, status_body
from .faults import FaultInjector
from .gc import Controllers
from .handlers import ResourceHandler, not_found_path, resolve
from .kubeconfig import write_kubeconfig

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

__all__ = ["FakeApiServer"]

_log = structlog.get_logger("kctl_runtime.testing.fakeapi")

_AGGREGATED = "apidiscovery.k8s.io"
#: Revisions skipped when a state file is loaded (etcdutl's documented example uses 1e9).
_RESTORE_BUMP = 1_000_000_000
_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kctl-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _wants_aggregated(accept: str) -> bool:
    for entry in accept.split(","):
        params = {
            p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in entry.split(";")[1:] if "=" in p
        }
        if (
            params.get("g") == _AGGREGATED
            and params.get("v") in ("v2", "v2beta1")
            and params.get("as") == "APIGroupDiscoveryList"
        ):
            return True
        if entry.strip().startswith("application/json") and "as" not in params:
            return False
    return False


class FakeApiServer:
    """An in-process Kubernetes API server for tests; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history_size: int = 10_000,
        clock: Clock | None = None,
        kubeconfig_path: Path | None = None,
        bookmark_interval: float = 60.0,
        managed_fields: bool = True,
        controllers: bool = True,
        state_file: Path | None = None,
        service_node_port_range: str = DEFAULT_SERVICE_NODE_PORT_RANGE,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake API server binds to loopback only (127.0.0.1, localhost or ::1)")
        if bookmark_interval <= 0:
            raise ValueError("bookmark_interval must be positive")
        self.host = host
        self.port = port
        self.clock: Clock = clock or SystemClock()
        self.bookmark_interval = bookmark_interval
        #: The node-port range (``str()`` gives ``LOW-HIGH``).
        self.service_node_port_range = parse_port_range(service_node_port_range)
        self.cluster = Cluster(
            history_size=history_size, now=self._timestamp, node_ports=self.service_node_port_range
        )
        self.cluster.track_managed_fields = managed_fields
        self.faults = FaultInjector(self.cluster.hub.close_all, self._expire)
        self._run_controllers = controllers
        self._controllers: Controllers | None = None
        self.state_file = state_file
        self._started_once = False
        self._resources = ResourceHandler(self.cluster, self.clock.now, lambda: self.bookmark_interval)
        self._given_kubeconfig = kubeconfig_path
        self._own_dir: Path | None = None  # the temporary kubeconfig's folder (same across restarts)
        self.kubeconfig_path: Path = kubeconfig_path or Path()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _timestamp(self) -> str:
        return format_time(self.clock.now())

    def _expire(self) -> None:
        self.cluster.storage.expire()

    # ---- lifecycle ----

    async def __aenter__(self) -> FakeApiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Serve (again): see the module docstring for what a restart keeps and forgets."""
        if self._runner is not None:
            raise RuntimeError("the fake API server is already running")
        storage = self.cluster.storage
        if not self._started_once:
            if self.state_file is not None and self.state_file.exists():
                saved = orjson.loads(self.state_file.read_bytes())
                storage.restore(int(saved["revision"]), saved["objects"])
                storage.bump(_RESTORE_BUMP)
            elif self.port != 0:
                storage.bump(max(0, time.time_ns() // 1000 - storage.rv))
        else:
            storage.expire()  # a restarted kube-apiserver's watch cache starts at the current revision
        self._started_once = True
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        if self._given_kubeconfig is None:
            if self._own_dir is None:
                self._own_dir = Path(tempfile.mkdtemp(prefix="kctl-fakeapi-"))
            self._own_dir.mkdir(mode=0o700, exist_ok=True)
            self.kubeconfig_path = self._own_dir / "kubeconfig"
        write_kubeconfig(self.kubeconfig_path, self.url)
        if self._run_controllers:
            self._controllers = Controllers(self.cluster)
            self._controllers.start()
        await self.settled(timeout=30.0)  # restored CRDs are served before start returns

    async def stop(self) -> None:
        """End every watch, stop the controllers, release the port; save the state file if any.

        Idempotent: stopping a stopped server does nothing.
        """
        self.cluster.hub.close_all()
        if self._controllers is not None:
            await self._controllers.stop()
            self._controllers = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            if self.state_file is not None:
                revision, objects = self.cluster.storage.dump()
                tmp = self.state_file.with_name(self.state_file.name + ".tmp")
                tmp.write_bytes(orjson.dumps({"revision": revision, "objects": objects}))
                tmp.replace(self.state_file)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    @property
    def ca_pem(self) -> bytes:
        """The fake cluster's CA certificate (PEM): it signs CertificateSigningRequests for the built-in
        signer names (:mod:`.certificates`) and is the ``ca.crt`` of every ``kube-root-ca.crt``."""
        return self.cluster.certificate_authority.cert_pem

    async def api_client(self) -> ApiClient:
        """A kubernetes-asyncio ``ApiClient`` for this server; close it when done."""
        from kctl_runtime.config import load_config

        api: ApiClient = await load_config(self.kubeconfig_path)
        return api

    def seed(self, api_version: str, kind: str, objects: list[dict[str, Any]]) -> None:
        """Bulk-load ``objects`` of one kind straight into storage (no events, no admission).

        Each object needs ``metadata.name`` (and ``namespace`` if namespaced); uid and
        creationTimestamp are filled in. History is compacted afterwards (watches from an older
        resourceVersion get 410), as after an etcd restore.
        """
        rt = self.cluster.registry.find_kind(api_version, kind)
        if rt is None:
            raise LookupError(f"{kind} in {api_version} is not served")
        import uuid

        now = self._timestamp()
        for obj in objects:
            obj["apiVersion"] = api_version
            obj["kind"] = kind
            meta = obj["metadata"]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now)
            if not rt.namespaced:
                meta.pop("namespace", None)
        self.cluster.storage.seed(rt.storage_key, objects)

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until the background controllers have no pending work (GC, namespaces, CRDs)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._controllers is not None and not self._controllers.idle:
            if loop.time() > deadline:
                raise TimeoutError("fake API server controllers did not settle")
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

    # ---- HTTP ----

    def _classify(self, request: web.Request) -> tuple[str, str]:
        """The Kubernetes verb and resource (``plural[/subresource]``) a request addresses."""
        segments = [s for s in request.path.split("/") if s]
        watch = query_bool(request.query.get("watch"))
        try:
            if len(segments) >= 2 and segments[0] == "api":
                rest = segments[2:]
                group, version = "", segments[1]
            elif len(segments) >= 3 and segments[0] == "apis":
                rest = segments[3:]
                group, version = segments[1], segments[2]
            else:
                return "get", ""
            if not rest:
                return "get", ""
            target = resolve(self.cluster, group, version, rest, request.method, watch=watch)
        except ApiError:
            return _http_verb(request.method), ""
        resource = target.rt.plural + (f"/{target.subresource}" if target.subresource else "")
        return target.verb, resource

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        failure: ApiError | None = None
        if self.faults.armed:  # resolving the path is only needed to match fault rules
            verb, resource = self._classify(request)
            delay = self.faults.delay_for(verb, resource, request.path)
            if delay:
                await asyncio.sleep(delay)
            failure = self.faults.failure_for(verb, resource, request.path)
        try:
            if failure is not None:
                raise failure
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return web.Response(
                body=orjson.dumps(exc.body),
                status=exc.code,
                content_type="application/json",
                headers=exc.headers,
            )
        except web.HTTPException:
            raise
        except Exception as exc:
            _log.exception("fake API server request failed", method=request.method, path=request.path)
            body = status_body(
                500,
                "InternalError",
                f"Internal error occurred: {exc!r}",
                details={"causes": [{"message": repr(exc)}]},
            )
            return web.Response(body=orjson.dumps(body), status=500, content_type="application/json")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segments = [s for s in request.path.split("/") if s]
        accept = request.headers.get("Accept", "")
        registry = self.cluster.registry
        if not segments:
            return _json(
                {
                    "paths": [
                        "/api",
                        "/api/v1",
                        "/apis",
                        "/healthz",
                        "/livez",
                        "/openapi/v2",
                        "/openapi/v3",
                        "/readyz",
                        "/version",
                    ]
                }
            )
        head = segments[0]
        if head == "version" and len(segments) == 1:
            return _json(_VERSION)
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "openapi":
            return openapi.serve(request, registry, segments[1:])
        if head == "api":
            if len(segments) == 1:
                if _wants_aggregated(accept):
                    return _aggregated(registry.aggregated(legacy=True))
                return _json(registry.api_versions())
            if len(segments) == 2:
                if segments[1] != "v1":
                    raise not_found_path()
                return _json(registry.resource_list("", "v1"))
            target_info = ("", segments[1], segments[2:])
        elif head == "apis":
            if len(segments) == 1:
                if _wants_aggregated(accept):
                    return _aggregated(registry.aggregated(legacy=False))
                return _json(registry.api_group_list())
            if len(segments) == 2:
                if segments[1] not in registry.groups():
                    return _page_not_found()
                return _json(registry.api_group(segments[1]))
            if len(segments) == 3:
                if not registry.has_group_version(segments[1], segments[2]):
                    return _page_not_found()
                return _json(registry.resource_list(segments[1], segments[2]))
            target_info = (segments[1], segments[2], segments[3:])
        else:
            raise not_found_path()
        group, version, rest = target_info
        if not registry.has_group_version(group, version):
            return _page_not_found() if group else _json_error(not_found_path())
        watch = query_bool(request.query.get("watch"))
        try:
            target = resolve(self.cluster, group, version, rest, request.method, watch=watch)
        except ApiError as exc:
            # Groups served only by CRDs fall through to the plain-text 404 of the HTTP mux.
            generic = exc.body.get("message") == "the server could not find the requested resource"
            if generic and group and all(rt.custom for rt in registry.all() if rt.group == group):
                return _page_not_found()
            raise
        return await self._resources.handle(request, target)


def _http_verb(method: str) -> str:
    return {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, "get"
    )


def _page_not_found() -> web.Response:
    """What kube-apiserver's HTTP mux answers for paths no API group serves."""
    return web.Response(text="404 page not found\n", status=404, content_type="text/plain", charset="utf-8")


def _json_error(exc: ApiError) -> web.Response:
    return web.Response(body=orjson.dumps(exc.body), status=exc.code, content_type="application/json")


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _aggregated(doc: dict[str, Any]) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc),
        headers={"Content-Type": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
    )
