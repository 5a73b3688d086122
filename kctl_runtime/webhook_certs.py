"""Getting a webhook's CA to the API server: ``caBundle`` injection into the objects we own.

Contract
--------
* The serving side lives in :mod:`kctl_runtime.servingcert` (one home for every HTTPS endpoint):
  :class:`~kctl_runtime.servingcert.CertWatcher` (a certificate directory reloaded on rotation) and
  :func:`~kctl_runtime.servingcert.self_signed` (a development CA and serving pair; its CA PEM is the
  ``caBundle``) are re-exported here for webhook code.
* :func:`inject_ca_bundle` writes a ``caBundle`` into the webhook configurations and CRDs it is
  told it owns: one JSON patch per object, each webhook entry guarded by a ``test`` of its name so a
  concurrent reorder fails (422) instead of writing the wrong entry. It touches nothing else.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from kctl_runtime.patch import json_patch, pointer
from kctl_runtime.resource import (
    CUSTOMRESOURCEDEFINITIONS,
    MUTATINGWEBHOOKCONFIGURATIONS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    Resource,
)
from kctl_runtime.servingcert import CertWatcher, self_signed

__all__ = ["CertWatcher", "inject_ca_bundle", "self_signed"]


async def inject_ca_bundle(
    api_client: Any,
    ca_pem: bytes,
    *,
    validating: Iterable[str] = (),
    mutating: Iterable[str] = (),
    crds: Iterable[str] = (),
) -> None:
    """Write ``caBundle`` into the named configurations' webhooks and CRDs' conversion (module doc)."""
    from kctl_runtime._rest import request_json

    bundle = base64.b64encode(ca_pem).decode()
    configs: list[tuple[Resource, str]] = [(VALIDATINGWEBHOOKCONFIGURATIONS, n) for n in validating]
    configs += [(MUTATINGWEBHOOKCONFIGURATIONS, n) for n in mutating]
    for resource, name in configs:
        obj = await request_json(api_client, "GET", resource.path(name=name))
        ops: list[dict[str, Any]] = []
        for index, hook in enumerate(obj.get("webhooks") or ()):
            ops.append({"op": "test", "path": pointer("webhooks", index, "name"), "value": hook["name"]})
            ops.append(
                {"op": "add", "path": pointer("webhooks", index, "clientConfig", "caBundle"), "value": bundle}
            )
        if ops:
            await json_patch(api_client, resource, None, name, ops)
    for name in crds:
        ops = [
            {
                "op": "add",
                "path": pointer("spec", "conversion", "webhook", "clientConfig", "caBundle"),
                "value": bundle,
            }
        ]
        await json_patch(api_client, CUSTOMRESOURCEDEFINITIONS, None, name, ops)
