"""The runtime's Prometheus registry, and the API client's request metrics.

Contract
--------
Every metric the runtime defines (work queue, informer, controller, leader election, API client
requests) is registered in :data:`REGISTRY`, not in prometheus-client's global default registry, so
importing the library never collides with an application's own metrics and tests can read values
back. The manager's ``/metrics`` endpoint serves this registry (and, optionally, the default one).

Metric names follow client-go and controller-runtime so existing dashboards work. The API client's
requests are counted as client-go counts them (``k8s.io/component-base`` restclient metrics):

* ``rest_client_requests_total{code,method,host}`` -- one per HTTP request that got an answer
  (``code`` is the status, e.g. ``"200"``) or failed in transport (``code="<error>"``);
* ``rest_client_request_duration_seconds{verb,host}`` -- seconds until the answer (for a watch:
  until its headers), with client-go's buckets (5 ms to 60 s).

``method`` and ``verb`` are the HTTP method (``GET``, ``PATCH``...); ``host`` is the API server's
``host:port``. :func:`observe_request` records one request; the one raw request path
(``kctl_runtime._rest`` and ``kctl_runtime._http``) calls it, so every runtime request is counted.

Importing this module turns prometheus-client's ``*_created`` series off process-wide
(:func:`prometheus_client.disable_created_metrics`): Go's client never emits them and for a
controller they are dozens of series of noise. Call :func:`prometheus_client.enable_created_metrics`
after importing the library to get them back.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

__all__ = [
    "REGISTRY",
    "REST_CLIENT_REQUESTS",
    "REST_CLIENT_REQUEST_DURATION",
    "api_host",
    "observe_request",
    "sample_value",
]

disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

REST_CLIENT_REQUESTS = Counter(
    "rest_client_requests",
    "Number of HTTP requests, partitioned by status code, method, and host.",
    ["code", "method", "host"],
    registry=REGISTRY,
)
REST_CLIENT_REQUEST_DURATION = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb, and host.",
    ["verb", "host"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
    registry=REGISTRY,
)


def api_host(base_url: str) -> str:
    """The ``host`` label for requests to ``base_url`` (an API server URL): its ``host:port``."""
    return urlsplit(base_url).netloc or base_url


def observe_request(method: str, host: str, code: int | None, seconds: float) -> None:
    """Record one API request: its status ``code`` (``None``: failed in transport) and latency."""
    verb = method.upper()
    REST_CLIENT_REQUESTS.labels(code="<error>" if code is None else str(code), method=verb, host=host).inc()
    REST_CLIENT_REQUEST_DURATION.labels(verb=verb, host=host).observe(seconds)


def sample_value(name: str, labels: dict[str, str] | None = None) -> float | None:
    """Read one sample from :data:`REGISTRY` (``None`` when absent); for tests and diagnostics."""
    return REGISTRY.get_sample_value(name, labels or {})
