"""One JSON request over a kubernetes-asyncio ``ApiClient``, encoded and decoded with orjson (private).

Contract
--------
* :func:`request_json` sends one request through the ``ApiClient``'s own aiohttp session (its
  connection pool, TLS context with client certificates, proxy and ``tls_server_name``), with the
  client's default headers and its bearer-token authentication (including the token refresh hook
  that kubeconfig exec/OIDC and in-cluster token rotation install).
* The body is encoded with ``orjson`` and sent as bytes; the answer is decoded with ``orjson``.
  Unlike ``ApiClient.call_api`` nothing walks the body first (``sanitize_for_serialization``) and
  nothing goes through the stdlib ``json`` module: objects are plain JSON-compatible values.
* A non-2xx answer raises the matching :class:`kctl_runtime.errors.ApiError` subclass with the
  server's ``Status`` body and ``Retry-After``. Transport failures raise what aiohttp raises
  (``aiohttp.ClientError``, ``TimeoutError``), unwrapped: the request may or may not have reached
  the server. Nothing is retried here; :class:`kctl_runtime.client.Client` decides that.
* Every request is recorded in client-go's request metrics
  (:func:`kctl_runtime.metrics.observe_request`): its status, or ``<error>`` for a transport failure.

Not guaranteed: support for kubernetes-asyncio authentication other than ``BearerToken`` api keys
and client certificates (basic auth is not used by current kubeconfigs and is not sent).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from kctl_runtime.errors import api_error
from kctl_runtime.metrics import api_host, observe_request

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
    """Send ``method path`` (below the configured host) and return the decoded JSON answer.

    ``body`` is any orjson-serialisable value, sent as JSON (also valid YAML, so it serves
    ``application/apply-patch+yaml``). ``timeout`` is a total client-side timeout in seconds.
    Returns ``None`` for an empty answer.
    """
    headers: dict[str, str] = dict(api_client.default_headers)
    headers["Accept"] = "application/json"
    if api_client.cookie:
        headers["Cookie"] = api_client.cookie
    params: list[tuple[str, str]] = list(query or [])
    await api_client.update_params_for_auth(headers, params, ["BearerToken"])
    url = api_client.configuration.host + path
    if params:
        url = f"{url}?{urlencode(params)}"
    data: bytes | None = None
    if body is not None:
        headers["Content-Type"] = content_type
        data = orjson.dumps(body)
    rest = api_client.rest_client
    options: dict[str, Any] = {}
    if rest.proxy:
        options["proxy"] = rest.proxy
    if rest.proxy_headers:
        options["proxy_headers"] = rest.proxy_headers
    if rest.server_hostname:
        options["server_hostname"] = rest.server_hostname
    client_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else aiohttp.ClientTimeout()
    session: aiohttp.ClientSession = rest.pool_manager
    host = api_host(api_client.configuration.host)
    started = time.monotonic()
    status: int | None = None
    try:
        async with session.request(
            method, url, data=data, headers=headers, timeout=client_timeout, **options
        ) as resp:
            status = resp.status
            raw = await resp.read()
    finally:
        observe_request(method, host, status, time.monotonic() - started)
    if not 200 <= resp.status <= 299:
        raise api_error(resp.status, raw, resp.headers)
    return orjson.loads(raw) if raw else None
