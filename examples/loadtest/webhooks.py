"""The LoadTest admission webhooks: defaulting (``scheme``) and validation beyond the CRD schema.

Contract
--------
* :func:`default_loadtest` (mutating, ``/default-loadtest``): ``spec.scheme`` defaults to ``http``;
  nothing else changes.
* :func:`validate_loadtest` (validating, ``/validate-loadtest``) denies with 422 ``Invalid`` and one
  message listing every problem: ``requestsPerSecond`` outside
  [:data:`MIN_RPS`, :data:`MAX_RPS`], ``scheme`` other than ``http`` / ``https``, a path not starting
  with ``/``, ``service`` not a DNS name (an RFC 1123 label, or ``name.namespace[.svc...]``
  subdomain). UPDATE is validated like CREATE; DELETE is never sent here.
* :func:`webhook_server` registers both on a :class:`~kctl_runtime.webhook.WebhookServer`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from kctl_runtime.webhook import WebhookServer
from kctl_runtime.webhook_admission import AdmissionRequest, AdmissionResponse

__all__ = [
    "DEFAULT_PATH",
    "MAX_RPS",
    "MIN_RPS",
    "VALIDATE_PATH",
    "default_loadtest",
    "problems",
    "validate_loadtest",
    "webhook_server",
]

MIN_RPS = 1
MAX_RPS = 10_000
DEFAULT_PATH = "/default-loadtest"
VALIDATE_PATH = "/validate-loadtest"
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _dns_name(value: str) -> bool:
    return 0 < len(value) <= 253 and all(
        len(part) <= 63 and _LABEL.fullmatch(part) for part in value.split(".")
    )


def problems(spec: dict[str, Any]) -> list[str]:
    """Every rule ``spec`` breaks, as user-facing sentences (empty: valid)."""
    found: list[str] = []
    rps = spec.get("requestsPerSecond")
    if not isinstance(rps, int) or isinstance(rps, bool) or not MIN_RPS <= rps <= MAX_RPS:
        found.append(f"spec.requestsPerSecond must be between {MIN_RPS} and {MAX_RPS}, got {rps!r}")
    scheme = spec.get("scheme")
    if scheme not in ("http", "https"):
        found.append(f"spec.scheme must be http or https, got {scheme!r}")
    for index, path in enumerate(spec.get("paths") or ()):
        if not isinstance(path, str) or not path.startswith("/"):
            found.append(f"spec.paths[{index}] must start with '/', got {path!r}")
    service = spec.get("service")
    if not isinstance(service, str) or not _dns_name(service):
        found.append(f"spec.service must be a DNS name (e.g. web or web.shop.svc), got {service!r}")
    return found


async def default_loadtest(request: AdmissionRequest, obj: dict[str, Any]) -> AdmissionResponse | None:
    obj.setdefault("spec", {}).setdefault("scheme", "http")
    return None


async def validate_loadtest(request: AdmissionRequest) -> AdmissionResponse:
    spec = (request.object or {}).get("spec") or {}
    found = problems(spec)
    if found:
        return AdmissionResponse.deny("; ".join(found), code=422, reason="Invalid")
    return AdmissionResponse.allow()


def webhook_server(
    cert_dir: str | os.PathLike[str], *, bind: str = "127.0.0.1:9443", **kwargs: Any
) -> WebhookServer:
    """A server with both LoadTest webhooks at :data:`DEFAULT_PATH` and :data:`VALIDATE_PATH`."""
    server = WebhookServer(bind=bind, cert_dir=cert_dir, **kwargs)
    server.mutating(DEFAULT_PATH, default_loadtest, timeout=4)
    server.validating(VALIDATE_PATH, validate_loadtest, timeout=4)
    return server
