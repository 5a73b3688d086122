"""A small raw-JSON request helper over a kubernetes-asyncio ``ApiClient`` (private).

Contract
--------
* :func:`request_json` sends one HTTP request through the ``ApiClient``'s own connection pool,
  configuration and authentication (bearer token, client certificates) and returns the decoded JSON
  body as plain ``dict``/``list`` values, never kubernetes-asyncio model objects.
* Every non-2xx response is raised as :class:`ApiError` carrying the HTTP status, the ``Status``
  object's ``reason`` and ``message`` when the server sent one, the decoded body and, for 429/5xx
  responses, the ``Retry-After`` seconds.
* A transport failure (connection refused, reset, a client-side timeout) is raised as whatever
  aiohttp raised (``aiohttp.ClientError`` or ``TimeoutError``); it is NOT wrapped, because the
  request may or may not have reached the server and callers must treat it as "unknown outcome".
* Nothing is retried here. Retrying is a policy decision of the caller.

This is deliberately tiny; the runtime's full client lives in :mod:`kctl_runtime.client`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

__all__ = ["ApiError", "request_json"]


class ApiError(Exception):
    """A non-2xx answer from the API server.

    ``status`` is the HTTP status code, ``reason`` the machine-readable ``Status.reason`` (for
    example ``"Conflict"``, ``"NotFound"``, ``"Invalid"``, ``"AlreadyExists"``), ``message`` the
    human-readable ``Status.message`` and ``body`` the decoded response body (a ``Status`` dict, or
    the raw text when the body was not JSON). It may be subclassed by richer client error types.
    """

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        body: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body
        self.retry_after = retry_after
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")

    @property
    def is_conflict(self) -> bool:
        """409 Conflict: a stale ``resourceVersion`` or an apply field-manager conflict."""
        return self.status == 409

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def is_invalid(self) -> bool:
        """422 Unprocessable Entity: validation failed, or a JSON patch ``test`` op did not match."""
        return self.status == 422

    def __repr__(self) -> str:
        return f"ApiError(status={self.status!r}, reason={self.reason!r}, message={self.message!r})"


async def request_json(
    api_client: Any,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float | None = None,
) -> Any:
    """Send ``method path`` and return the decoded JSON response body.

    ``path`` is the URL path below the configured host (``/api/v1/namespaces/x/configmaps/y``).
    ``body`` is any JSON-serialisable value (it is sent as JSON; JSON is also valid YAML, so this
    works for ``application/apply-patch+yaml`` too). ``timeout`` is a total client-side timeout in
    seconds for this one request.
    """
    headers = {"Accept": "application/json", "Content-Type": content_type}
    response = await api_client.call_api(
        path,
        method,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=timeout,
    )
    try:
        raw = await response.read()
        status: int = response.status
        retry_after_header = response.headers.get("Retry-After")
    finally:
        response.release()
    decoded: Any
    try:
        decoded = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        decoded = raw.decode("utf-8", "replace")
    if 200 <= status <= 299:
        return decoded
    reason = ""
    message = ""
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        reason = str(decoded.get("reason") or "")
        message = str(decoded.get("message") or "")
    elif isinstance(decoded, str):
        message = decoded
    retry_after: float | None = None
    if retry_after_header is not None:
        with contextlib.suppress(ValueError):
            retry_after = float(retry_after_header)
    raise ApiError(status, reason, message, decoded, retry_after=retry_after)
