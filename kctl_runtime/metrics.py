"""The runtime's Prometheus registry.

Contract
--------
Every metric the runtime defines (work queue, informer, controller, leader election) is registered
in :data:`REGISTRY`, not in prometheus-client's global default registry, so importing the library
never collides with an application's own metrics and tests can read values back. The manager's
``/metrics`` endpoint serves this registry (and, optionally, the default one).

Metric names follow client-go and controller-runtime so existing dashboards work.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

__all__ = ["REGISTRY", "sample_value"]

REGISTRY = CollectorRegistry(auto_describe=True)


def sample_value(name: str, labels: dict[str, str] | None = None) -> float | None:
    """Read one sample from :data:`REGISTRY` (``None`` when absent); for tests and diagnostics."""
    return REGISTRY.get_sample_value(name, labels or {})
