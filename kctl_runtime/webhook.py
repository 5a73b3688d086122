"""The webhook server: admission (validating, mutating) and CRD conversion over HTTPS.

Contract
--------
* :class:`WebhookServer` is one aiohttp HTTPS server. Register handlers by path before it starts:
  :meth:`~WebhookServer.validating`, :meth:`~WebhookServer.mutating` (see
  :mod:`kctl_runtime.webhook_admission` for the handler shapes and typed request/response) and
  :meth:`~WebhookServer.conversion` (:mod:`kctl_runtime.webhook_conversion`). Each path answers
  ``POST`` with a review; ``GET /readyz`` on the same port answers 200 once serving.
* Certificates: ``cert_dir`` (``tls.crt`` / ``tls.key``, reloaded on rotation by
  :class:`~kctl_runtime.servingcert.CertWatcher`), or ``ssl_context`` given directly. No
  certificate at all is a construction error: kube-apiserver only calls webhooks over HTTPS.
* :meth:`WebhookServer.serve` binds (``127.0.0.1:9443`` by default; port 0 picks a free port, see
  :attr:`WebhookServer.port`) and serves until cancelled; ``anyio``'s ``task_status`` is reported
  once the socket listens. In a :class:`~kctl_runtime.manager.Manager`
  (:meth:`~kctl_runtime.manager.Manager.add_webhook_server`) it starts before the caches sync
  (conversion webhooks may be needed for that), on every replica (never gated by leader
  election), and ``/readyz`` includes it.
* Bad input: a body that is not a well-formed review answers **400** with the reason; a body over
  ``max_request_bytes`` (default 7 MiB; kube-apiserver's own limit is 3 MiB per object) answers
  **413**. A handler that raises is **denied** (code 500) with ``"<webhook> failed: <error>"`` and
  one log line with the traceback; a handler slower than its ``timeout`` answers per its
  ``failure_policy`` (``"Fail"``: denied with code 504, ``"Ignore"``: allowed with a warning) and
  one log line. Set ``timeout`` below the configuration's ``timeoutSeconds`` so our answer, not
  the API server's, decides.
* Metrics in :data:`kctl_runtime.metrics.REGISTRY`, named as controller-runtime names them:
  ``controller_runtime_webhook_requests_total{webhook,code}`` (HTTP status code of our answer),
  ``controller_runtime_webhook_latency_seconds{webhook}`` and
  ``controller_runtime_webhook_requests_in_flight{webhook}``; ``webhook`` is the path.

Not guaranteed: that a mutating handler's edits of ``metadata`` fields the API server owns
(``uid``, ``resourceVersion``, ...) are kept -- the API server decides; that the answer arrives
within kube-apiserver's ``timeoutSeconds`` when the handler ignores cancellation.
"""

from __future__ import annotations

import copy
import os
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.abc
import orjson
import structlog
from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from kctl_runtime.clock import Clock
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.servingcert import CertWatcher
from kctl_runtime.webhook_admission import (
    AdmissionRequest,
    AdmissionResponse,
    MutatingHandler,
    ReviewError,
    ValidatingHandler,
    json_patch_diff,
)
from kctl_runtime.webhook_conversion import Converter, convert_review

__all__ = ["FailurePolicy", "WebhookServer"]

_log = structlog.get_logger("kctl_runtime.webhook")

FailurePolicy = Literal["Fail", "Ignore"]
DEFAULT_MAX_REQUEST_BYTES = 7 * 1024 * 1024

REQUESTS = Counter(
    "controller_runtime_webhook_requests_total",
    "Total number of admission requests by HTTP status code.",
    ["webhook", "code"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "controller_runtime_webhook_latency_seconds",
    "Histogram of the latency of processing admission requests",
    ["webhook"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "controller_runtime_webhook_requests_in_flight",
    "Current number of admission requests being served.",
    ["webhook"],
    registry=REGISTRY,
)


@dataclass(frozen=True)
class _Route:
    kind: Literal["validating", "mutating", "conversion"]
    handler: Any
    timeout: float
    failure_policy: FailurePolicy


def _bind(bind: str) -> tuple[str, int]:
    host, sep, port_text = bind.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bind {bind!r} must be host:port (e.g. 127.0.0.1:9443, :9443)")
    return host.strip("[]") or "0.0.0.0", int(port_text)


class WebhookServer:
    """Serves admission and conversion reviews over HTTPS (module doc).

    Args:
        bind: ``host:port`` to listen on (``127.0.0.1:9443``; in a Pod use ``:9443``).
        cert_dir: directory with ``cert_name`` / ``key_name``, reloaded on rotation.
        ssl_context: a ready server context instead of ``cert_dir``.
        max_request_bytes: larger bodies answer 413.
        cert_reload_interval: seconds between rotation checks of ``cert_dir`` (10).
        clock: time source for the rotation checks.
    """

    def __init__(
        self,
        *,
        bind: str = "127.0.0.1:9443",
        cert_dir: str | os.PathLike[str] | None = None,
        cert_name: str = "tls.crt",
        key_name: str = "tls.key",
        ssl_context: ssl.SSLContext | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        cert_reload_interval: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if (cert_dir is None) == (ssl_context is None):
            raise ValueError("give exactly one of cert_dir and ssl_context: webhooks are served over HTTPS")
        if max_request_bytes < 1024:
            raise ValueError("max_request_bytes must be at least 1024")
        self.host, self._port = _bind(bind)
        self.certs: CertWatcher | None = None
        if cert_dir is not None:
            self.certs = CertWatcher(
                cert_dir,
                cert_name=cert_name,
                key_name=key_name,
                interval=cert_reload_interval,
                clock=clock,
                what="webhook",
            )
            ssl_context = self.certs.context
        assert ssl_context is not None
        self.ssl_context = ssl_context
        self.max_request_bytes = max_request_bytes
        self._routes: dict[str, _Route] = {}
        self._serving = False
        self._started = False
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ registration

    def _add(self, path: str, route: _Route) -> None:
        if self._started:
            raise RuntimeError("register webhooks before the server starts")
        if not path.startswith("/") or path == "/readyz":
            raise ValueError(f"webhook path {path!r} must start with '/' and not be /readyz")
        if path in self._routes:
            raise ValueError(f"a webhook is already registered at {path!r}")
        if route.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if route.failure_policy not in ("Fail", "Ignore"):
            raise ValueError(f"failure_policy must be 'Fail' or 'Ignore', not {route.failure_policy!r}")
        self._routes[path] = route

    def validating(
        self,
        path: str,
        handler: ValidatingHandler,
        *,
        timeout: float = 9.0,
        failure_policy: FailurePolicy = "Fail",
    ) -> None:
        """Serve a validating webhook at ``path``."""
        self._add(path, _Route("validating", handler, timeout, failure_policy))

    def mutating(
        self,
        path: str,
        handler: MutatingHandler,
        *,
        timeout: float = 9.0,
        failure_policy: FailurePolicy = "Fail",
    ) -> None:
        """Serve a mutating webhook at ``path``: the answer patches the handler's edits."""
        self._add(path, _Route("mutating", handler, timeout, failure_policy))

    def conversion(self, path: str, converter: Converter, *, timeout: float = 9.0) -> None:
        """Serve a CRD conversion webhook at ``path``."""
        self._add(path, _Route("conversion", converter, timeout, "Fail"))

    @property
    def paths(self) -> list[str]:
        return list(self._routes)

    # ------------------------------------------------------------------ state

    @property
    def port(self) -> int:
        """The bound port (the configured one until :meth:`serve` has bound)."""
        return self._port

    def url(self, path: str = "") -> str:
        """``https://host:port/path`` of this server (for a ``clientConfig.url``)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"https://{host}:{self._port}{path}"

    def ready(self) -> bool:
        """Whether the server is listening (a manager ``/readyz`` check)."""
        return self._serving

    # ------------------------------------------------------------------ serving

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled, polling ``cert_dir`` for rotation (module doc)."""
        async with self:
            task_status.started()
            if self.certs is not None:
                await self.certs.run()
            else:
                await anyio.sleep_forever()

    async def __aenter__(self) -> WebhookServer:
        """Listen until the block exits (no rotation polling here: :meth:`serve` does that)."""
        if self._started:
            raise RuntimeError("a WebhookServer serves once")
        self._started = True
        app = web.Application(client_max_size=self.max_request_bytes)
        for path in self._routes:
            app.router.add_post(path, self._handle)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self._port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                exc.errno, f"cannot serve webhooks on {self.host}:{self._port}: {exc.strerror}"
            ) from exc
        self._port = runner.addresses[-1][1]
        self._serving = True
        _log.info("serving webhooks", paths=self.paths, address=f"{self.host}:{self._port}")
        return self

    async def __aexit__(self, *_: object) -> None:
        self._serving = False
        if self._runner is not None:
            with anyio.CancelScope(shield=True):
                await self._runner.cleanup()

    async def _readyz(self, _request: web.Request) -> web.Response:
        return web.Response(
            text="ok" if self._serving else "not serving", status=200 if self._serving else 503
        )

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        route = self._routes[path]
        began = time.monotonic()
        IN_FLIGHT.labels(path).inc()
        status = 500
        try:
            response = await self._answer(request, path, route)
            status = response.status
            return response
        finally:
            IN_FLIGHT.labels(path).dec()
            REQUESTS.labels(path, str(status)).inc()
            LATENCY.labels(path).observe(time.monotonic() - began)

    async def _answer(self, request: web.Request, path: str, route: _Route) -> web.Response:
        if request.content_length is not None and request.content_length > self.max_request_bytes:
            return _error(413, f"request body larger than {self.max_request_bytes} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body larger than {self.max_request_bytes} bytes")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != "application/json":
            return _error(400, f"contentType={content_type or '(none)'}, expected application/json")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        try:
            if route.kind == "conversion":
                return _json(await self._convert(path, route, body))
            review = AdmissionRequest.from_review(body)
        except ReviewError as exc:
            return _error(400, f"malformed review: {exc}")
        answer = await self._admit(path, route, review)
        return _json(answer.review(review.uid))

    async def _convert(self, path: str, route: _Route, body: Any) -> dict[str, Any]:
        with anyio.move_on_after(route.timeout) as scope:
            answer = await convert_review(route.handler, body)
        if scope.cancelled_caught:
            _log.warning("conversion webhook timed out", webhook=path, timeout=route.timeout)
            uid = body["request"]["uid"]
            return {
                "apiVersion": body["apiVersion"],
                "kind": "ConversionReview",
                "response": {
                    "uid": uid,
                    "convertedObjects": [],
                    "result": {
                        "status": "Failure",
                        "message": f"conversion timed out after {route.timeout}s",
                    },
                },
            }
        result = answer["response"]["result"]
        if result["status"] != "Success":
            _log.warning("conversion webhook failed", webhook=path, error=result.get("message"))
        return answer

    async def _admit(self, path: str, route: _Route, review: AdmissionRequest) -> AdmissionResponse:
        result: AdmissionResponse | None = None
        with anyio.move_on_after(route.timeout) as scope:
            try:
                result = await self._call(route, review)
            except Exception as exc:
                _log.exception(
                    "webhook handler raised; denying the request",
                    webhook=path,
                    operation=review.operation,
                    name=review.name,
                    namespace=review.namespace,
                )
                return AdmissionResponse.deny(f"{path} failed: {exc}", code=500, reason="InternalError")
        if scope.cancelled_caught or result is None:
            _log.warning(
                "webhook handler timed out; answering per failure policy",
                webhook=path,
                timeout=route.timeout,
                failure_policy=route.failure_policy,
            )
            message = f"{path} did not decide within {route.timeout}s"
            if route.failure_policy == "Ignore":
                return AdmissionResponse.allow(f"{message}; allowed (failurePolicy Ignore)")
            return AdmissionResponse.deny(message, code=504, reason="Timeout")
        return result

    async def _call(self, route: _Route, review: AdmissionRequest) -> AdmissionResponse:
        if route.kind == "validating":
            handler: ValidatingHandler = route.handler
            verdict: Any = await handler(review)
            if not isinstance(verdict, AdmissionResponse):
                raise TypeError(f"the handler returned {type(verdict).__name__}, not AdmissionResponse")
            return verdict
        mutator: MutatingHandler = route.handler
        obj = copy.deepcopy(review.object) if review.object is not None else {}
        answer: Any = await mutator(review, obj)
        if answer is not None and not isinstance(answer, AdmissionResponse):
            raise TypeError(f"the handler returned {type(answer).__name__}, not AdmissionResponse or None")
        decision = answer or AdmissionResponse.allow()
        if not decision.allowed or review.object is None:
            return decision
        ops = json_patch_diff(review.object, obj)
        if not ops:
            return decision
        return AdmissionResponse(
            True,
            message=decision.message,
            code=decision.code,
            reason=decision.reason,
            warnings=decision.warnings,
            patch=tuple(ops),
        )


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    _log.warning("bad webhook request", status=status, error=message)
    return web.Response(text=message + "\n", status=status, content_type="text/plain")
