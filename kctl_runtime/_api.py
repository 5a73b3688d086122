"""A small raw-JSON request helper over a kubernetes-asyncio ``ApiClient`` (private).

Contract
--------
* :func:`request_json` sends one HTTP request through the ``ApiClient``'s own connection pool,
  configuration and authentication (bearer token, client certificates) and returns the decoded JSON
  body as plain ``dict``/``list`` values, never kubernetes-asyncio model objects.
* Every non-2xx response is raised as the matching :class:`kctl_runtime.errors.ApiError` subclass
  (``NotFound``, ``Conflict``, ``Invalid``, ...) carrying the server's ``Status`` body and
  ``Retry-After``.
* A transport failure (connection refused, reset, a client-side timeout) is raised as whatever
  aiohttp raised (``aiohttp.ClientError`` or ``TimeoutError``); it is NOT wrapped, because the
  request may or may not have reached the server and callers must treat it as "unknown outcome".
* Nothing is retried here. Retrying is a policy decision of the caller.

This is deliberately tiny; the runtime's full client lives in :mod:`kctl_runtime.client`.
"""

from __future__ import annotations

from typing import Any

import orjson

from kctl_runtime.errors import api_error

__all__ = ["request_json"]


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
    """Send ``method path`` and return the decoded JSON response body (``None`` when empty).

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
        if not 200 <= status <= 299:
            raise api_error(status, raw, response.headers)
    finally:
        response.release()
    return orjson.loads(raw) if raw else None
