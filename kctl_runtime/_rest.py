"""Requests over a kubernetes-asyncio ``ApiClient``'s connection pool, without its models (private).

The "api client" here is that ``ApiClient`` or a :class:`kctl_runtime.connection.Connection`, which
answers the same attributes (its pool is already ``trust_env=False``, with the proxy resolved).

Contract
--------
* :func:`send` starts one request and returns the response once its headers are in (lists and
  watches stream it, through :func:`kctl_runtime._http.open_get`); :func:`request_json` sends one
  request with an orjson-encoded body and decodes the answer. Both go over the ``ApiClient``'s own
  connection pool (its aiohttp connector: TLS context with client certificates, connection limit)
  and honour its configured proxy and ``tls_server_name``, with the client's default headers and
  its bearer-token authentication (including the token refresh hook that kubeconfig exec/OIDC and
  in-cluster token rotation install).
* Proxies from the environment (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, as
  kubernetes-asyncio's session would use them) are looked up **once per ApiClient and host**, not
  per request: the ``ApiClient``'s session is ``trust_env=True``, which makes aiohttp read the
  environment and ``~/.netrc`` in a worker thread for every request (two thread hops, a third of a
  busy controller's CPU). Requests here go through a sibling session on the same connector with
  ``trust_env=False`` and the proxy passed explicitly. ``~/.netrc`` is not consulted for the API
  server's credentials (client-go never does either); a proxy's credentials come from its URL.
  A change to the proxy environment after the first request is not seen.
* :func:`request_json`'s body is encoded with ``orjson`` and sent as bytes; the answer is decoded
  with ``orjson``. Unlike ``ApiClient.call_api`` nothing walks the body first
  (``sanitize_for_serialization``) and nothing goes through the stdlib ``json`` module: objects are
  plain JSON-compatible values.
* In :func:`request_json`, a non-2xx answer raises the matching
  :class:`kctl_runtime.errors.ApiError` subclass with the server's ``Status`` body and
  ``Retry-After``. Transport failures raise what aiohttp raises
  (``aiohttp.ClientError``, ``TimeoutError``), unwrapped: the request may or may not have reached
  the server. Nothing is retried here; :class:`kctl_runtime.client.Client` decides that.
* Every :func:`request_json` is recorded in client-go's request metrics
  (:func:`kctl_runtime.metrics.observe_request`): its status, or ``<error>`` for a transport failure.

Not guaranteed: support for kubernetes-asyncio authentication other than ``BearerToken`` api keys
and client certificates (basic auth is not used by current kubeconfigs and is not sent).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from kctl_runtime.errors import api_error
from kctl_runtime.metrics import api_host, observe_request

__all__ = ["request_json", "send"]


@dataclass
class _Transport:
    """The sibling session of one ``ApiClient``'s and the proxy resolved for each host (module doc)."""

    session: aiohttp.ClientSession
    proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]]


_TRANSPORTS: weakref.WeakKeyDictionary[Any, _Transport] = weakref.WeakKeyDictionary()


def _transport(rest: Any) -> _Transport:
    transport = _TRANSPORTS.get(rest)
    pool: aiohttp.ClientSession = rest.pool_manager
    if transport is None or transport.session.closed:
        if not pool.trust_env:
            # Already what we want (a kctl_runtime.connection.Connection's pool): use it.
            session = pool
        else:
            # Same connector (pool, TLS), not owned: closing the ApiClient closes the connector,
            # which closes this session too.
            session = aiohttp.ClientSession(
                connector=pool.connector, connector_owner=False, trust_env=False, read_bufsize=2**21
            )
        transport = _Transport(session, {})
        _TRANSPORTS[rest] = transport
    return transport


def _proxy_for(rest: Any, transport: _Transport, url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    key = f"{url.scheme}://{url.host}"
    found = transport.proxies.get(key)
    if found is None:
        if rest.proxy:
            found = (URL(rest.proxy), None)  # as kubernetes-asyncio passes it
        elif rest.pool_manager.trust_env:
            try:
                found = get_env_proxy_for_url(url)
            except LookupError:
                found = (None, None)
        else:
            found = (None, None)
        transport.proxies[key] = found
    return found


_NO_TIMEOUT = aiohttp.ClientTimeout()


async def send(
    api_client: Any,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    data: bytes | None = None,
    content_type: str = "application/json",
    accept: str = "application/json",
    timeout: float | None = None,
) -> aiohttp.ClientResponse:
    """Send ``method path`` and return the response once its headers are in (the caller releases it).

    What the module docstring promises about connections, proxies, headers and authentication holds
    here; the status is not checked and nothing is recorded in the request metrics (the callers do
    both: :func:`request_json` below, :func:`kctl_runtime._http.open_get` for lists and watches).
    """
    headers: dict[str, str] = dict(api_client.default_headers)
    headers["Accept"] = accept
    if api_client.cookie:
        headers["Cookie"] = api_client.cookie
    params: list[tuple[str, str]] = list(query or [])
    await api_client.update_params_for_auth(headers, params, ["BearerToken"])
    url = api_client.configuration.host + path
    if params:
        url = f"{url}?{urlencode(params)}"
    if data is not None:
        headers["Content-Type"] = content_type
    rest = api_client.rest_client
    transport = _transport(rest)
    options: dict[str, Any] = {}
    proxy, proxy_auth = _proxy_for(rest, transport, URL(api_client.configuration.host))
    if proxy is not None:
        options["proxy"] = proxy
        if proxy_auth is not None:
            options["proxy_auth"] = proxy_auth
        if rest.proxy_headers:
            options["proxy_headers"] = rest.proxy_headers
    if rest.server_hostname:
        options["server_hostname"] = rest.server_hostname
    client_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else _NO_TIMEOUT
    return await transport.session.request(
        method, url, data=data, headers=headers, timeout=client_timeout, **options
    )


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
    data = orjson.dumps(body) if body is not None else None
    host = api_host(api_client.configuration.host)
    started = time.monotonic()
    status: int | None = None
    try:
        response = await send(
            api_client, method, path, query=query, data=data, content_type=content_type, timeout=timeout
        )
        async with response as resp:
            status = resp.status
            raw = await resp.read()
    finally:
        observe_request(method, host, status, time.monotonic() - started)
    if not 200 <= resp.status <= 299:
        raise api_error(resp.status, raw, resp.headers)
    return orjson.loads(raw) if raw else None
