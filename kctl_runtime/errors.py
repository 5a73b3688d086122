"""Errors raised by the runtime's API calls.

Contract
--------
Every non-2xx answer from the API server becomes an :class:`ApiError` (or a subclass chosen by
HTTP status and the ``Status.reason``), carrying the decoded ``Status`` body when the server sent
one. Callers branch on the type (``except NotFound``) rather than on numbers. Which errors are worth
retrying is decided in one place, :func:`is_transient`; how loudly a failure is worth logging in
one other, :func:`expected_failure_level`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

__all__ = [
    "CALL_FAILURES",
    "TRANSPORT_ERRORS",
    "AlreadyExists",
    "ApiError",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "api_error",
    "expected_failure_level",
    "is_namespace_terminating",
    "is_transient",
]


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)
"""Failures below HTTP (connection refused or reset, TLS, timeouts): the request may or may not have
reached the server. Catch them together with :class:`ApiError` where any failed call is handled."""


class ApiError(Exception):
    """The API server answered with an error ``Status``."""

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        body: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message or reason or f"HTTP {status}"
        self.body: Mapping[str, Any] = body or {}
        self.retry_after = retry_after
        super().__init__(f"{status} {reason}: {self.message}" if reason else f"{status}: {self.message}")

    @property
    def causes(self) -> list[Mapping[str, Any]]:
        """``details.causes`` of the Status (field-level validation errors), if any."""
        details = self.body.get("details") or {}
        return list(details.get("causes") or [])


class NotFound(ApiError):
    """404: the object (or its namespace, or the resource type) does not exist."""


class AlreadyExists(ApiError):
    """409 AlreadyExists: create of a name that is taken."""


class Conflict(ApiError):
    """409 Conflict: a write based on a stale resourceVersion (or a precondition) lost."""


class Invalid(ApiError):
    """422 Invalid: the object failed validation; see :attr:`ApiError.causes`."""


class Gone(ApiError):
    """410 Gone / Expired: a resourceVersion or continue token is too old."""


class Forbidden(ApiError):
    """403: RBAC denied the request, or the namespace is terminating."""


class TooManyRequests(ApiError):
    """429: throttled; :attr:`ApiError.retry_after` holds the server's Retry-After seconds."""


class ServerError(ApiError):
    """5xx: the server failed; usually worth retrying."""


CALL_FAILURES: tuple[type[BaseException], ...] = (ApiError, *TRANSPORT_ERRORS)
"""Everything a failed API call raises: an error ``Status``, or a failure below HTTP."""


def api_error(
    status: int, body: bytes | str | Mapping[str, Any] | None, headers: Mapping[str, str] | None = None
) -> ApiError:
    """Build the right :class:`ApiError` subclass from an HTTP status, body and headers."""
    decoded: Mapping[str, Any] = {}
    if isinstance(body, Mapping):
        decoded = body
    elif body:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            value = {"message": body.decode(errors="replace") if isinstance(body, bytes) else body}
        if isinstance(value, Mapping):
            decoded = value
    reason = str(decoded.get("reason") or "")
    message = str(decoded.get("message") or "")
    retry_after: float | None = None
    if headers is not None:
        raw = headers.get("Retry-After") or headers.get("retry-after")
        if raw:
            try:
                retry_after = float(raw)
            except ValueError:
                retry_after = None
    if retry_after is None:
        details = decoded.get("details") or {}
        if isinstance(details, Mapping) and details.get("retryAfterSeconds"):
            retry_after = float(details["retryAfterSeconds"])
    cls: type[ApiError]
    if status == 404:
        cls = NotFound
    elif status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status == 422:
        cls = Invalid
    elif status == 410:
        cls = Gone
    elif status == 403:
        cls = Forbidden
    elif status == 429:
        cls = TooManyRequests
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(status, reason, message, decoded, retry_after=retry_after)


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same request may succeed: 429, 5xx, and connection-level failures."""
    if isinstance(error, TooManyRequests | ServerError):
        return True
    if isinstance(error, ApiError):
        return False
    return isinstance(error, TRANSPORT_ERRORS) or type(error).__module__.startswith("aiohttp")


def is_namespace_terminating(error: BaseException) -> bool:
    """Whether ``error`` is the 403 for a write into a namespace that is being deleted."""
    if not isinstance(error, Forbidden):
        return False
    if any(cause.get("reason") == "NamespaceTerminating" for cause in error.causes):
        return True
    return "because it is being terminated" in error.message


def expected_failure_level(error: BaseException) -> str | None:
    """The log level for an *expected* failure, or ``None`` for an unexpected one (a bug).

    Expected failures are part of normal operation and are logged as one line without a traceback
    (the traceback of a 409 says nothing its status line does not):

    * ``"info"`` -- races the next attempt resolves: 409 (conflict, already exists), 404 (an object
      deleted meanwhile), the 403 for a namespace being terminated;
    * ``"warning"`` -- the user or the server must change something, or the server is busy: 422
      (invalid), 429, 5xx, and failures below HTTP (connection refused or reset, timeouts);
    * ``"error"`` -- any other API answer (401, an RBAC 403, 400, ...): worth attention, but an
      answer, not a bug.

    An exception whose class sets ``wraps_cause = True`` (the finalizer helper's errors) is judged
    by its ``__cause__``; one whose class sets ``failure_level`` (such as
    :class:`kctl_runtime.connection.CredentialError`, ``"error"``) gets that level. Anything else (a
    ``KeyError`` in a reconciler) is ``None``.
    """
    while getattr(type(error), "wraps_cause", False) and error.__cause__ is not None:
        error = error.__cause__
    declared = getattr(type(error), "failure_level", None)
    if isinstance(declared, str):
        return declared
    if isinstance(error, Conflict | AlreadyExists | NotFound) or is_namespace_terminating(error):
        return "info"
    if isinstance(error, Invalid) or is_transient(error):
        return "warning"
    if isinstance(error, ApiError):
        return "error"
    return None
