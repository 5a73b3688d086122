"""Install webhook configurations that point at a local webhook server (controller-runtime's
WebhookInstallOptions).

Contract
--------
:func:`install_webhooks` takes Validating/MutatingWebhookConfiguration manifests as a cluster would
get them (``clientConfig.service`` with a ``path``, or ``clientConfig.url``) and a running
:class:`~kctl_runtime.webhook.WebhookServer` with the CA that signed its certificate. For every
webhook it rewrites ``clientConfig`` to ``{"url": server.url(path), "caBundle": CA}`` -- the server
listens on 127.0.0.1, which kube-apiserver on the same host (and the fake API server) can reach --
and creates the configurations. CRDs named in ``conversion_crds`` get their conversion webhook's
``clientConfig`` rewritten the same way. The async context manager deletes the configurations it
created on exit (a missing one is fine) and restores nothing else.

Works against any API server: envtest's real kube-apiserver and the fake one call the same URLs.
kube-apiserver picks up new configurations asynchronously (an informer, typically well under a
second): a test's first request may still be admitted without them, so poll for the first effect
(:func:`kctl_runtime.testing.pytest_plugin.eventually`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from kctl_runtime._rest import request_json
from kctl_runtime.errors import NotFound
from kctl_runtime.resource import (
    CUSTOMRESOURCEDEFINITIONS,
    MUTATINGWEBHOOKCONFIGURATIONS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
)
from kctl_runtime.webhook import WebhookServer

__all__ = ["install_webhooks", "local_client_config"]


def local_client_config(
    server: WebhookServer, ca_pem: bytes, client_config: Mapping[str, Any]
) -> dict[str, Any]:
    """``clientConfig`` aimed at ``server``: the path from ``service.path`` or the given ``url``."""
    path = ""
    service = client_config.get("service")
    if isinstance(service, Mapping):
        path = str(service.get("path") or "")
    elif client_config.get("url"):
        url = str(client_config["url"])
        path = "/" + url.split("://", 1)[-1].partition("/")[2]
    if not path.startswith("/") or path == "/":
        raise ValueError(f"clientConfig {dict(client_config)!r} names no path on the webhook server")
    if path not in server.paths:
        raise ValueError(f"the webhook server serves no {path!r} (it serves {server.paths})")
    return {"url": server.url(path), "caBundle": base64.b64encode(ca_pem).decode()}


@contextlib.asynccontextmanager
async def install_webhooks(
    api_client: Any,
    server: WebhookServer,
    ca_pem: bytes,
    *,
    validating: Iterable[Mapping[str, Any]] = (),
    mutating: Iterable[Mapping[str, Any]] = (),
    conversion_crds: Iterable[str] = (),
) -> AsyncIterator[list[dict[str, Any]]]:
    """Create the configurations aimed at ``server``; yields them as stored (module doc)."""
    created: list[tuple[Any, str]] = []
    stored: list[dict[str, Any]] = []
    try:
        for resource, manifests in (
            (VALIDATINGWEBHOOKCONFIGURATIONS, validating),
            (MUTATINGWEBHOOKCONFIGURATIONS, mutating),
        ):
            for manifest in manifests:
                body = copy.deepcopy(dict(manifest))
                body.setdefault("apiVersion", resource.api_version)
                body.setdefault("kind", resource.kind)
                for hook in body.get("webhooks") or ():
                    hook["clientConfig"] = local_client_config(server, ca_pem, hook.get("clientConfig") or {})
                obj = await request_json(api_client, "POST", resource.path(), body=body)
                created.append((resource, obj["metadata"]["name"]))
                stored.append(obj)
        for name in conversion_crds:
            crd = await request_json(api_client, "GET", CUSTOMRESOURCEDEFINITIONS.path(name=name))
            webhook = ((crd.get("spec") or {}).get("conversion") or {}).get("webhook") or {}
            config = local_client_config(server, ca_pem, webhook.get("clientConfig") or {})
            patch = {"spec": {"conversion": {"webhook": {"clientConfig": {"service": None, **config}}}}}
            await request_json(
                api_client,
                "PATCH",
                CUSTOMRESOURCEDEFINITIONS.path(name=name),
                body=patch,
                content_type="application/merge-patch+json",
            )
        yield stored
    finally:
        for resource, name in reversed(created):
            with contextlib.suppress(NotFound):
                await request_json(api_client, "DELETE", resource.path(name=name))
