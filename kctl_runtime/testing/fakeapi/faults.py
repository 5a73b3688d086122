"""Fault injection for the fake API server: failed requests, delays, dropped watches, lost history.

Contract
--------
:class:`FaultInjector` holds rules that an aiohttp middleware consults before every API request.

* :meth:`FaultInjector.fail_next` makes the next ``n`` matching requests fail with ``status`` and a
  real ``Status`` body (reason derived from the code: 429 ``TooManyRequests`` with a ``Retry-After``
  header and ``details.retryAfterSeconds``, 500 ``InternalError``, 503 ``ServiceUnavailable``, ...).
  Matching: ``verb`` (Kubernetes verbs: get list watch create update patch delete deletecollection),
  ``resource`` (plural, optionally ``plural/subresource``) and ``path_regex`` (searched in the path);
  ``None`` matches anything. Rules are consulted in the order they were added; each request consumes
  at most one failure.
* :meth:`FaultInjector.delay` holds matching requests for ``seconds`` before serving them (``count``
  requests, or every one while the rule exists).
* :meth:`FaultInjector.close_watches` ends every open watch stream now; clients see a clean end of
  stream, as when a real apiserver's watch times out.
* :meth:`FaultInjector.expire_history` forgets event history, so a watch or ``continue`` from any older
  resourceVersion gets 410 Expired.
* :meth:`FaultInjector.clear` removes all failure and delay rules.

Discovery, OpenAPI and ``/version`` requests are matched with verb ``get`` and no resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, status_body

__all__ = ["FaultInjector"]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"})


@dataclass
class _Rule:
    remaining: int | None
    verb: str | None
    resource: str | None
    path: re.Pattern[str] | None
    status: int = 500
    retry_after: int | None = None
    message: str | None = None
    seconds: float = 0.0

    def matches(self, verb: str, resource: str, path: str) -> bool:
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is not None:
            base = resource.split("/", 1)[0]
            if self.resource not in (resource, base):
                return False
        return self.path is None or self.path.search(path) is not None


class FaultInjector:
    """Failure, delay and stream-control knobs of one fake API server."""

    def __init__(self, close_watches: Callable[[], None], expire_history: Callable[[], None]) -> None:
        self._failures: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._close_watches = close_watches
        self._expire_history = expire_history
        self.injected = 0

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        verb: str | None = None,
        resource: str | None = None,
        path_regex: str | None = None,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """Fail the next ``n`` requests that match, with HTTP ``status`` and a real Status body."""
        if n < 1:
            raise ValueError("n must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error code (400-599)")
        if verb is not None and verb not in _VERBS:
            raise ValueError(f"unknown verb {verb!r}; use one of {sorted(_VERBS)}")
        pattern = re.compile(path_regex) if path_regex is not None else None
        self._failures.append(
            _Rule(n, verb, resource, pattern, status=status, retry_after=retry_after, message=message)
        )

    def delay(
        self,
        seconds: float,
        *,
        verb: str | None = None,
        resource: str | None = None,
        count: int | None = None,
    ) -> None:
        """Hold matching requests for ``seconds`` (``count`` of them, or all while the rule exists)."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if verb is not None and verb not in _VERBS:
            raise ValueError(f"unknown verb {verb!r}; use one of {sorted(_VERBS)}")
        self._delays.append(_Rule(count, verb, resource, None, seconds=seconds))

    def close_watches(self) -> None:
        self._close_watches()

    def expire_history(self) -> None:
        self._expire_history()

    @property
    def armed(self) -> bool:
        """Whether any failure or delay rule is pending (otherwise requests need no matching)."""
        return bool(self._failures or self._delays)

    def clear(self) -> None:
        self._failures.clear()
        self._delays.clear()

    # ---- used by the server middleware ----

    def delay_for(self, verb: str, resource: str, path: str) -> float:
        total = 0.0
        for rule in list(self._delays):
            if rule.matches(verb, resource, path):
                total += rule.seconds
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._delays.remove(rule)
        return total

    def failure_for(self, verb: str, resource: str, path: str) -> ApiError | None:
        for rule in self._failures:
            if rule.matches(verb, resource, path):
                assert rule.remaining is not None
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._failures.remove(rule)
                self.injected += 1
                return _error(rule)
        return None


def _error(rule: _Rule) -> ApiError:
    reason = _REASONS.get(rule.status, "InternalError" if rule.status >= 500 else "BadRequest")
    message = rule.message or f"injected fault: {reason}"
    details: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    retry_after = rule.retry_after
    if rule.status == 429 and retry_after is None:
        retry_after = 1
    if retry_after is not None:
        details = {"retryAfterSeconds": retry_after}
        headers["Retry-After"] = str(retry_after)
    return ApiError(status_body(rule.status, reason, message, details=details), headers)
