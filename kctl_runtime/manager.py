"""The manager: one process's informers, controllers, leader election, probes and metrics.

Contract
--------
:meth:`Manager.run` owns one anyio task group holding everything, and proceeds in phases:

1. **Serve** -- the health server (``/healthz``, ``/readyz``) and the metrics server
   (``/metrics``: Prometheus text of :data:`kctl_runtime.metrics.REGISTRY`, plus prometheus-client's
   default registry unless ``serve_default_metrics=False``) start on their binds
   (``127.0.0.1`` by default; port 0 picks a free port, see :attr:`Manager.health_port` /
   :attr:`Manager.metrics_port`; ``None`` disables a server). ``/healthz`` answers 200 while the
   manager runs (and, under leader election, while the elector is not stuck), and 500 while a
   controller's last reconcile or an informer's last list/watch was refused with 401: revoked
   credentials make the kubelet restart the pod (which reloads them) instead of leaving a
   "healthy" controller that enforces nothing. Webhook servers (:meth:`Manager.add_webhook_server`)
   start here too, on every replica, and join ``/readyz``.
   With ``metrics_secure``, ``/metrics`` is served over HTTPS (certificate from ``metrics_cert_dir``
   through :class:`kctl_runtime.servingcert.CertWatcher`, reloaded on rotation) behind
   :class:`kctl_runtime.authfilter.AuthFilter`: a bearer token checked with a TokenReview and a
   SubjectAccessReview, 401/403 otherwise.
2. **Cache** -- the shared informers start (those the added controllers need were requested by
   :meth:`Manager.add`, so they warm up even on a standby replica) and event recorders start. The
   manager waits up to ``cache_sync_timeout`` seconds for every informer to sync; on timeout
   :meth:`run` raises :class:`CacheSyncTimeout`, whose message names the unsynced informers.
   ``/readyz`` answers 200 from here on.
3. **Lead** -- runnables added with ``needs_leader=False`` start. With ``leader_election`` set,
   the manager campaigns for the Lease; controllers and ``needs_leader=True`` runnables run only
   while it leads. Losing the Lease ends :meth:`run` with :class:`LeaderElectionLost` (like
   controller-runtime, which exits the process: a restarted replica campaigns afresh with a clean
   state). Without leader election they start at once.
4. **Stop** -- on SIGTERM/SIGINT (when ``handle_signals`` and on the main thread) or
   :meth:`Manager.stop`: ``/readyz`` turns 503, controllers stop taking keys, in-flight reconciles
   run to completion for up to ``graceful_shutdown_timeout`` seconds (then they are cancelled),
   runnables are cancelled, event recorders flush, the Lease is released, and :meth:`run` returns.
   A second signal cancels everything at once and :meth:`run` raises :class:`ForcedShutdown`.

Errors: an exception in a controller, runnable, informer or server ends :meth:`run` with that
exception (the other tasks are cancelled). Reconcile errors are not such exceptions: the controller
retries them.

The :attr:`Manager.client` reads through the cache for every informer the manager registered
(controllers' ``for_``, ``owns`` and ``watches`` without selectors, and :meth:`Manager.informer`).

Not guaranteed: that in-flight reconciles finish if they take longer than
``graceful_shutdown_timeout``; that a forced shutdown releases the Lease (a standby then waits
``lease_duration``); fencing of a paused leader (see :mod:`kctl_runtime.leaderelection`).
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from kctl_runtime.authfilter import AuthFilter
from kctl_runtime.client import Cache, Client, RetryPolicy
from kctl_runtime.clock import Clock, SystemClock, move_on_after
from kctl_runtime.config import FatalError, connect
from kctl_runtime.controller import Controller
from kctl_runtime.informer import Informer, InformerFactory, Transform, strip_managed_fields
from kctl_runtime.leaderelection import LeaderElectionConfig, LeaderElector
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.resource import Resource
from kctl_runtime.servingcert import CertWatcher

if TYPE_CHECKING:
    from kctl_runtime.events import EventRecorder
    from kctl_runtime.webhook import WebhookServer

__all__ = ["CacheSyncTimeout", "ForcedShutdown", "LeaderElectionLost", "Manager", "freeze_gc"]

_log = structlog.get_logger("kctl_runtime.manager")

_FLUSH_TIMEOUT = 5.0
HealthCheck = Callable[[], bool | Awaitable[bool]]


class CacheSyncTimeout(TimeoutError, FatalError):
    """The informers did not sync within ``cache_sync_timeout``; the message names them."""


class LeaderElectionLost(RuntimeError, FatalError):
    """This replica lost its Lease while running; restart the process to campaign again."""


class ForcedShutdown(RuntimeError, FatalError):
    """A second signal arrived during graceful shutdown; everything was cancelled."""


@dataclass(frozen=True)
class _Runnable:
    fn: Callable[[], Awaitable[None]]
    needs_leader: bool
    name: str


def _parse_bind(bind: str, what: str) -> tuple[str, int]:
    host, sep, port_text = bind.rpartition(":")
    if not sep:
        raise ValueError(f"{what} {bind!r} must be host:port (e.g. 127.0.0.1:8080, :8080, [::1]:0)")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{what} {bind!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} {bind!r}: port out of range")
    return host, port


_GC = {"frozen": False}


def freeze_gc() -> bool:
    """Collect, then move every object alive now out of the garbage collector's generations.

    Long-lived start-up objects (modules, the initial cache) are then never rescanned, which
    removes most of the collector's pauses from the reconcile path. See ``Manager(freeze_gc=)``.
    Only the first call in a process does anything (later managers in the same process -- test
    suites -- skip the full collection); returns whether this call froze.
    """
    if _GC["frozen"]:
        return False
    _GC["frozen"] = True
    gc.collect()
    gc.freeze()
    return True


async def _call(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one interesting exception in a (nested) group, or the group itself."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        elif not isinstance(exc, anyio.get_cancelled_exc_class()):
            leaves.append(exc)

    walk(group)
    return leaves[0] if len(leaves) == 1 else group


class Manager:
    """Runs controllers with shared caches, leader election, probes and metrics (module doc).

    Args:
        api_client: the kubernetes-asyncio ``ApiClient`` for informers, the client and recorders.
        namespace: default namespace for controllers that do not set one (``None``: all).
        health_bind: ``host:port`` for ``/healthz`` and ``/readyz`` (``None``: no server).
        metrics_bind: ``host:port`` for ``/metrics`` (``None``: no server). May equal health_bind.
        leader_election: campaign for this Lease before running controllers (``None``: don't).
        leader_election_api_client: a dedicated ``ApiClient`` for Lease traffic (default: api_client).
        cache_sync_timeout: seconds to wait for informers to sync before failing (120).
        graceful_shutdown_timeout: seconds in-flight reconciles get to finish on stop (30).
        clock: time source for everything the manager starts (default: system clock).
        handle_signals: install SIGTERM/SIGINT handlers during :meth:`run` (main thread only).
        default_resync: resync period for the shared informers (``None``: no resync).
        retry: the client's retry policy for transient API errors.
        field_manager: default ``fieldManager`` for the client's writes.
        freeze_gc: once the caches have synced, collect and :func:`gc.freeze` everything allocated
            so far (imported modules -- kubernetes-asyncio alone is ~70 MB of objects -- and the
            initial cache), so later collections stop rescanning it. Measured: full collections
            fall from ~90 ms to a few ms, and the p99 event-to-reconcile latency from ~14 ms to
            ~3 ms (``benchmarks/bench_controller.py``). Process-wide. Caveat: frozen objects that
            later become garbage *in a reference cycle* are not reclaimed (plain garbage still is,
            by reference counting). Done once per process. Set False if the application manages
            the collector itself.
        serve_default_metrics: ``/metrics`` also serves prometheus-client's default registry
            (process and Python metrics, and whatever the application registered there).
        metrics_secure: serve ``/metrics`` over HTTPS, only to callers whose bearer token the API
            server authenticates and authorizes for ``get`` on the non-resource URL ``/metrics``
            (:mod:`kctl_runtime.authfilter`). Needs ``metrics_cert_dir`` and a ``metrics_bind``
            apart from ``health_bind`` (probes stay plain HTTP).
        metrics_cert_dir: directory holding ``tls.crt`` and ``tls.key`` (a mounted TLS Secret).
        informer_transform: what the shared informers apply to each object before caching it
            (default :func:`~kctl_runtime.informer.strip_managed_fields`;
            :func:`~kctl_runtime.informer.compact_object` also interns string values: less memory
            for large caches, more CPU per object decoded).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str | None = None,
        health_bind: str | None = "127.0.0.1:8081",
        metrics_bind: str | None = "127.0.0.1:8080",
        leader_election: LeaderElectionConfig | None = None,
        leader_election_api_client: Any = None,
        cache_sync_timeout: float = 120.0,
        graceful_shutdown_timeout: float = 30.0,
        clock: Clock | None = None,
        handle_signals: bool = True,
        default_resync: float | None = None,
        retry: RetryPolicy | None = None,
        field_manager: str | None = None,
        freeze_gc: bool = True,
        serve_default_metrics: bool = True,
        metrics_secure: bool = False,
        metrics_cert_dir: str | None = None,
        informer_transform: Transform | None = strip_managed_fields,
    ) -> None:
        if cache_sync_timeout <= 0:
            raise ValueError("cache_sync_timeout must be > 0")
        if graceful_shutdown_timeout < 0:
            raise ValueError("graceful_shutdown_timeout must be >= 0")
        self._health_addr = _parse_bind(health_bind, "health_bind") if health_bind is not None else None
        self._metrics_addr = _parse_bind(metrics_bind, "metrics_bind") if metrics_bind is not None else None
        self.api_client = api_client
        self.namespace = namespace
        self.clock: Clock = clock or SystemClock()
        self.leader_election = leader_election
        self._le_api_client = leader_election_api_client or api_client
        self.cache_sync_timeout = cache_sync_timeout
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.handle_signals = handle_signals
        self.freeze_gc = freeze_gc
        self.serve_default_metrics = serve_default_metrics
        self._metrics_filter: AuthFilter | None = None
        self._metrics_certs: CertWatcher | None = None
        if metrics_secure and self._metrics_addr is not None:
            if self._metrics_addr == self._health_addr:
                raise ValueError("metrics_secure needs a metrics_bind apart from health_bind")
            if not metrics_cert_dir:
                raise ValueError(
                    "metrics_secure needs metrics_cert_dir (a directory with tls.crt and tls.key)"
                )
            self._metrics_certs = CertWatcher(metrics_cert_dir, what="metrics", clock=self.clock)
            self._metrics_filter = AuthFilter(api_client, clock=self.clock)
        self.informers = InformerFactory(
            api_client, clock=self.clock, default_resync=default_resync, transform=informer_transform
        )
        self.cache = Cache()
        self.client = Client(
            api_client, cache=self.cache, retry=retry, clock=self.clock, field_manager=field_manager
        )
        self.elector: LeaderElector | None = None
        self.health_port: int | None = None
        self.metrics_port: int | None = None
        self._controllers: list[Controller] = []
        self._runnables: list[_Runnable] = []
        self._recorders: dict[str, EventRecorder] = {}
        self._health_checks: dict[str, HealthCheck] = {}
        self._ready_checks: dict[str, HealthCheck] = {}
        self._owned_clients: list[Any] = []
        self._started = False
        self._running = False
        self._ready = False
        self._stopping = False
        self._forced = False
        self._leading = False
        self._stop_event: anyio.Event | None = None
        self._sync_scope: anyio.CancelScope | None = None
        self._root: anyio.abc.TaskGroup | None = None
        self._runners: list[web.AppRunner] = []
        self._webhook_servers: list[WebhookServer] = []

    @classmethod
    async def from_config(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        preflight: Callable[[Any], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> Manager:
        """A manager over :func:`kctl_runtime.config.connect`'s connection (closed when run ends).

        ``preflight(api_client)``, if given, runs first on that client (e.g.
        :func:`kctl_runtime.cli.preflight`); if it raises, the client is closed and the error
        propagates. With ``leader_election`` and no ``leader_election_api_client``, a second client
        is loaded for Lease traffic so renewals never queue behind controller requests.
        """
        api_client = await connect(kubeconfig, context)
        owned = [api_client]
        try:
            if preflight is not None:
                await preflight(api_client)
            if kwargs.get("leader_election") is not None and kwargs.get("leader_election_api_client") is None:
                kwargs["leader_election_api_client"] = await connect(kubeconfig, context)
                owned.append(kwargs["leader_election_api_client"])
            manager = cls(api_client, **kwargs)
        except BaseException:
            for client in owned:
                await client.close()
            raise
        manager._owned_clients = owned
        return manager

    # ------------------------------------------------------------------ assembly

    def add(self, controller: Controller) -> None:
        """Add a controller (before :meth:`run`); its informers are requested and cached now."""
        if self._started:
            raise RuntimeError("add controllers before Manager.run()")
        if any(c.name == controller.name for c in self._controllers):
            raise ValueError(
                f"a controller named {controller.name!r} was already added; names must be unique"
            )
        if controller.namespace is None and self.namespace is not None:
            controller.namespace = self.namespace
        self._controllers.append(controller)
        for resource, namespace, label_selector in controller.sources():
            informer = self.informers.informer(resource, namespace=namespace, label_selector=label_selector)
            if label_selector is None:
                self.cache.register(resource, informer, namespace)

    def informer(self, resource: Resource, *, namespace: str | None = None) -> Informer:
        """The shared informer for ``resource`` (in ``namespace``), registered to serve client reads."""
        scope = namespace if resource.namespaced else None
        informer = self.informers.informer(resource, namespace=scope)
        self.cache.register(resource, informer, scope)
        return informer

    def add_runnable(
        self, fn: Callable[[], Awaitable[None]], *, needs_leader: bool = True, name: str | None = None
    ) -> None:
        """Run ``fn()`` with the manager: only while leading (default), or from cache sync on.

        It is cancelled when the manager stops; an exception from it ends :meth:`run`.
        """
        if self._started:
            raise RuntimeError("add runnables before Manager.run()")
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        self._runnables.append(_Runnable(fn, needs_leader, label))

    def event_recorder(self, component: str) -> EventRecorder:
        """The event recorder for ``component`` (one per component, run and flushed by the manager)."""
        from kctl_runtime.events import EventRecorder

        recorder = self._recorders.get(component)
        if recorder is None:
            recorder = EventRecorder(self.api_client, component=component, clock=self.clock)
            self._recorders[component] = recorder
            if self._root is not None and not self._stopping:
                self._root.start_soon(recorder.run, name=f"event recorder {component}")
        return recorder

    def add_webhook_server(self, server: WebhookServer) -> None:
        """Serve ``server`` on every replica, from before the caches sync; ``/readyz`` includes it."""
        if self._started:
            raise RuntimeError("add webhook servers before Manager.run()")
        self._webhook_servers.append(server)
        self.add_readyz_check(f"webhook-{len(self._webhook_servers)}", server.ready)

    def add_healthz_check(self, name: str, check: HealthCheck) -> None:
        """Extra liveness check for ``/healthz`` (sync or async, returning ``True`` when healthy)."""
        self._health_checks[name] = check

    def add_readyz_check(self, name: str, check: HealthCheck) -> None:
        """Extra readiness check for ``/readyz``."""
        self._ready_checks[name] = check

    @property
    def controllers(self) -> list[Controller]:
        """The controllers added so far."""
        return list(self._controllers)

    # ------------------------------------------------------------------ state

    @property
    def ready(self) -> bool:
        """Caches synced and not stopping (what ``/readyz`` reports before extra checks)."""
        return self._ready and not self._stopping

    @property
    def healthy(self) -> bool:
        """Running, the leader elector (if any) is not stuck, and no controller's last reconcile was
        refused with 401 (``/healthz`` before extra checks)."""
        if not self._running:
            return False
        if any(c.unauthorized for c in self._controllers) or self.informers.unauthorized():
            return False  # credentials revoked: restart (and reload them) rather than enforce nothing
        return self.elector is None or self.elector.healthy()

    @property
    def is_leader(self) -> bool:
        """Whether controllers may run now: leading, or no leader election configured."""
        if self.leader_election is None:
            return self._leading
        return self.elector is not None and self.elector.is_leader

    def stop(self) -> None:
        """Begin a graceful stop (idempotent); :meth:`run` returns when it is done."""
        if self._stopping:
            return
        self._stopping = True
        _log.info("graceful shutdown requested")
        if self._stop_event is not None:
            self._stop_event.set()
        if self._sync_scope is not None:
            self._sync_scope.cancel()

    def _force(self) -> None:
        self._forced = True
        _log.warning("forced shutdown: cancelling everything now")
        if self._root is not None:
            self._root.cancel_scope.cancel()

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until stopped (module doc). A manager runs once."""
        if self._started:
            raise RuntimeError("a Manager runs once; create a new one")
        self._started = True
        self._stop_event = anyio.Event()
        if self._stopping:
            self._stop_event.set()
        try:
            async with anyio.create_task_group() as root:
                self._root = root
                if self.handle_signals and threading.current_thread() is threading.main_thread():
                    root.start_soon(self._watch_signals, name="manager signals")
                await self._start_servers()
                if self._metrics_certs is not None:
                    root.start_soon(self._metrics_certs.run, name="metrics certificate reload")
                for server in self._webhook_servers:  # before cache sync: conversion may need them
                    await root.start(server.serve, name="webhook server")
                self._running = True
                root.start_soon(self.informers.run, name="informers")
                for component, recorder in self._recorders.items():
                    root.start_soon(recorder.run, name=f"event recorder {component}")
                if await self._wait_for_caches():
                    _log.info("caches synced", informers=len(self.informers.informers))
                    if self.freeze_gc:
                        freeze_gc()
                    self._ready = True
                    async with anyio.create_task_group() as others:
                        for runnable in self._runnables:
                            if not runnable.needs_leader:
                                others.start_soon(_call, runnable.fn, name=f"runnable {runnable.name}")
                        await self._lead_phase()
                        others.cancel_scope.cancel()
                await self._flush_recorders()
                root.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            self._running = False
            self._ready = False
            self._root = None
            with anyio.CancelScope(shield=True):
                await self._stop_servers()
                for client in self._owned_clients:
                    await client.close()
        if self._forced:
            raise ForcedShutdown("second signal during graceful shutdown: in-flight work was cancelled")
        _log.info("manager stopped")

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self._stopping:
                    _log.info("signal received; shutting down gracefully (send again to force)", signal=name)
                    self.stop()
                else:
                    _log.warning("second signal received; forcing shutdown", signal=name)
                    self._force()
                    return

    async def _wait_for_caches(self) -> bool:
        """True once synced; False when stopped first; raises CacheSyncTimeout."""
        with anyio.CancelScope() as scope:
            self._sync_scope = scope
            if self._stopping:
                scope.cancel()
            try:
                await self.informers.wait_for_sync(timeout=self.cache_sync_timeout)
            except TimeoutError as exc:
                raise CacheSyncTimeout(
                    f"caches did not sync within cache_sync_timeout={self.cache_sync_timeout}s: {exc}. "
                    "Check that the resources exist (CRDs installed) and RBAC allows list and watch."
                ) from None
            finally:
                self._sync_scope = None
        return not self._stopping

    async def _lead_phase(self) -> None:
        if self.leader_election is None:
            await self._lead()
            return
        config = self.leader_election
        elector = LeaderElector(
            self._le_api_client,
            config,
            clock=self.clock,
            on_new_leader=lambda identity: _log.info("new leader observed", leader=identity),
        )
        self.elector = elector
        async with anyio.create_task_group() as tg:

            async def campaign() -> None:
                finished = await elector.run_while_leading(self._lead)
                if not finished and not self._stopping:
                    raise LeaderElectionLost(
                        f"leader election lost: lease {config.lease_namespace}/{config.lease_name} "
                        "was not renewed within renew_deadline"
                    )
                tg.cancel_scope.cancel()

            tg.start_soon(campaign, name="leader election")
            assert self._stop_event is not None
            await self._stop_event.wait()
            if not self._leading:
                tg.cancel_scope.cancel()  # still campaigning: nothing to drain

    async def _lead(self) -> None:
        assert self._stop_event is not None
        self._leading = True
        try:
            if self._stopping:
                return
            _log.info("starting controllers", controllers=[c.name for c in self._controllers])
            async with anyio.create_task_group() as lg:
                for runnable in self._runnables:
                    if runnable.needs_leader:
                        lg.start_soon(_call, runnable.fn, name=f"runnable {runnable.name}")
                await self._run_controllers()
                lg.cancel_scope.cancel()
        finally:
            self._leading = False

    async def _run_controllers(self) -> None:
        assert self._stop_event is not None
        stop_event = self._stop_event
        finished = anyio.Event()
        async with anyio.create_task_group() as outer:

            async def controllers() -> None:
                async with anyio.create_task_group() as cg:
                    for controller in self._controllers:
                        cg.start_soon(controller.run, self.informers, name=f"controller {controller.name}")
                await stop_event.wait()
                finished.set()

            outer.start_soon(controllers, name="controllers")
            await stop_event.wait()
            in_flight = sum(c.queue.processing() for c in self._controllers)
            _log.info("stopping controllers; waiting for in-flight reconciles", in_flight=in_flight)
            for controller in self._controllers:
                controller.stop()
            async with move_on_after(self.clock, self.graceful_shutdown_timeout) as grace:
                await finished.wait()
            # counted before cancelling: once cancelled, their queues no longer hold them
            left = sum(c.queue.processing() for c in self._controllers)
            outer.cancel_scope.cancel()
        if grace.expired:
            _log.warning(
                "graceful_shutdown_timeout passed; cancelled in-flight reconciles",
                timeout=self.graceful_shutdown_timeout,
                cancelled=left,
            )

    async def _flush_recorders(self) -> None:
        if not self._recorders:
            return

        with anyio.CancelScope(shield=True):
            async with move_on_after(self.clock, _FLUSH_TIMEOUT) as timeout:
                for recorder in self._recorders.values():
                    try:
                        await recorder.flush()
                    except Exception as exc:  # pragma: no cover - best effort on the way out
                        _log.warning("flushing events failed", error=str(exc))
            if timeout.expired:
                _log.warning("event flush did not finish in time; dropping the rest", timeout=_FLUSH_TIMEOUT)

    # ------------------------------------------------------------------ HTTP

    async def _check(self, checks: dict[str, HealthCheck]) -> list[tuple[str, bool]]:
        results: list[tuple[str, bool]] = []
        for name, check in checks.items():
            try:
                value = check()
                ok = bool(await value) if isinstance(value, Awaitable) else bool(value)
            except Exception:
                ok = False
            results.append((name, ok))
        return results

    async def _probe(
        self, request: web.Request, base: tuple[str, bool], extra: dict[str, HealthCheck]
    ) -> web.Response:
        results = [base, *await self._check(extra)]
        ok = all(passed for _, passed in results)
        if "verbose" in request.query or not ok:
            lines = [
                f"[{'+' if passed else '-'}]{name} {'ok' if passed else 'failed'}" for name, passed in results
            ]
            lines.append(f"{request.path.strip('/')} {'check passed' if ok else 'check failed'}")
            text = "\n".join(lines) + "\n"
        else:
            text = "ok"
        return web.Response(text=text, status=200 if ok else 500, content_type="text/plain")

    async def _healthz(self, request: web.Request) -> web.Response:
        return await self._probe(request, ("ping", self.healthy), self._health_checks)

    async def _readyz(self, request: web.Request) -> web.Response:
        return await self._probe(request, ("informer-sync", self.ready), self._ready_checks)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        if self.serve_default_metrics:
            body += generate_latest(DEFAULT_REGISTRY)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _start_servers(self) -> None:
        sites: list[tuple[tuple[str, int], list[tuple[str, Any]], str]] = []
        health_routes = [("/healthz", self._healthz), ("/readyz", self._readyz)]
        metrics = self._metrics if self._metrics_filter is None else self._metrics_filter.wrap(self._metrics)
        metrics_routes = [("/metrics", metrics)]
        if self._health_addr is not None and self._health_addr == self._metrics_addr:
            sites.append((self._health_addr, health_routes + metrics_routes, "both"))
        else:
            if self._health_addr is not None:
                sites.append((self._health_addr, health_routes, "health"))
            if self._metrics_addr is not None:
                sites.append((self._metrics_addr, metrics_routes, "metrics"))
        for (host, port), routes, role in sites:
            app = web.Application()
            for path, handler in routes:
                app.router.add_get(path, handler)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            self._runners.append(runner)
            certs = self._metrics_certs if role == "metrics" else None
            site = web.TCPSite(runner, host, port, ssl_context=certs.context if certs else None)
            try:
                await site.start()
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot serve {role} endpoints on {host}:{port}: {exc.strerror}"
                ) from exc
            bound = runner.addresses[-1][1]
            if role in ("health", "both"):
                self.health_port = bound
            if role in ("metrics", "both"):
                self.metrics_port = bound
            _log.info("serving", endpoints=[p for p, _ in routes], address=f"{host}:{bound}")

    async def _stop_servers(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
