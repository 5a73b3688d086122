"""One HTTPS call from the fake API server to a webhook: admission and conversion share it.

Contract
--------
:func:`post_review` sends a review object (AdmissionReview, ConversionReview) to a webhook's
``clientConfig`` the way kube-apiserver does: to ``clientConfig.url`` with ``?timeout=Ns`` appended
(``&`` when the URL has a query already), verifying TLS against the base64 ``clientConfig.caBundle``
(the system roots when absent), over a fresh connection, within ``timeout_seconds``. It returns the
decoded ``response`` object of the answer. Every failure raises :class:`WebhookCallFailed` with the
text kube-apiserver would put after its caller's prefix: ``Post "URL": context deadline exceeded``,
``Post "URL": <transport error>``, ``the server responded with status N`` (``status`` set), ``bad
caBundle: ...``; an answer that is no review response raises :class:`InvalidWebhookResponse`
(``received invalid webhook response: ...``). ``clientConfig.service`` cannot be reached from
the fake (it has no Services network): that is a failure too, saying to use ``clientConfig.url``.
The caller checks the response's ``uid`` and its kind-specific fields.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

__all__ = ["InvalidWebhookResponse", "WebhookCallFailed", "post_review"]


class WebhookCallFailed(Exception):
    """The webhook could not be called; ``status`` is the HTTP status when it answered other than 200."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidWebhookResponse(WebhookCallFailed):
    """The webhook answered 200 with something that is not a review response."""


async def post_review(client_config: Mapping[str, Any], review: Any, timeout_seconds: int) -> dict[str, Any]:
    """POST ``review`` to the webhook ``client_config`` names; the answer's ``response`` (module doc)."""
    url = client_config.get("url")
    if not url:
        raise WebhookCallFailed("the fake API server cannot reach Services; use clientConfig.url")
    url = f"{url}{'&' if '?' in url else '?'}timeout={timeout_seconds}s"
    try:
        context = ssl.create_default_context()
        if client_config.get("caBundle"):
            context = ssl.create_default_context(cadata=base64.b64decode(client_config["caBundle"]).decode())
    except (ValueError, ssl.SSLError) as exc:
        raise WebhookCallFailed(f"bad caBundle: {exc}") from None
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, force_close=True),
                timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            ) as session,
            session.post(
                url, data=orjson.dumps(review), headers={"Content-Type": "application/json"}
            ) as answer,
        ):
            raw = await answer.read()
            if answer.status != 200:
                raise WebhookCallFailed(f"the server responded with status {answer.status}", answer.status)
    except TimeoutError:
        raise WebhookCallFailed(f'Post "{url}": context deadline exceeded') from None
    except aiohttp.ClientError as exc:
        raise WebhookCallFailed(f'Post "{url}": {exc}') from None
    try:
        response = orjson.loads(raw)["response"]
        if not isinstance(response, dict):
            raise TypeError("response is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidWebhookResponse(f"received invalid webhook response: {exc}") from None
    return response
