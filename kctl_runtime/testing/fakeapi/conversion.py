"""CRD conversion webhooks for the fake API server: it calls them as kube-apiserver does.

Contract
--------
A custom resource whose CRD has ``spec.conversion.strategy: Webhook`` is stored in the CRD's storage
version. A request in another served version goes through :class:`ConversionWebhooks`:

* :meth:`ConversionWebhooks.storage_type` says whether a request needs conversion (a custom
  resource, a ``Webhook`` strategy, a version other than the storage version) and returns the
  storage version's :class:`~.discovery.ResourceType`;
* :meth:`ConversionWebhooks.convert` POSTs one ``apiextensions.k8s.io/v1`` ConversionReview with
  every object to convert (objects already in the desired version are not sent; nothing is sent
  when none remain) through :func:`.webhookcall.post_review`, with a 30 s deadline
  (kube-apiserver's), and checks the answer as kube-apiserver does: the same ``uid``,
  ``result.status: Success``, as many objects as were sent, each in the desired ``apiVersion``,
  with ``metadata`` unchanged except labels and annotations (a changed ``name``, ``uid`` or the like
  fails the conversion).
* Any failure is the real error: a 500 ``Status`` (no reason) with the message
  ``conversion webhook for GROUP/FROM-VERSION, Kind=KIND failed: DETAIL`` -- DETAIL is the
  webhook's ``result.message``, or what went wrong with the call. A list fails as a whole.

The HTTP layer (:mod:`.handlers`, :mod:`.reads`) converts request bodies to the storage version
before the registry sees them, responses (objects, list items, watch events) to the request's
version, and runs a PATCH in the request's version (stored object converted, patch applied,
result converted back and written with the stored ``resourceVersion`` as a precondition).

Differences from kube-apiserver: defaulting, pruning and schema validation of a converted write use
the storage version's schema (kube-apiserver uses the request version's before converting);
``managedFields`` entries record the storage version; admission webhooks see the storage version;
``clientConfig.service`` cannot be reached (the call fails, as for admission); ``v1beta1`` reviews
are not sent.
"""

from __future__ import annotations

import uuid
from typing import Any

from .discovery import Registry, ResourceType
from .errors import ApiError, status_body
from .storage import Storage
from .webhookcall import WebhookCallFailed, post_review

__all__ = ["CRD_STORAGE_KEY", "TIMEOUT_SECONDS", "ConversionWebhooks"]

CRD_STORAGE_KEY = "apiextensions.k8s.io/customresourcedefinitions"
TIMEOUT_SECONDS = 30


class _Failed(Exception):
    pass


class ConversionWebhooks:
    """Conversion of custom resources through their CRD's webhook (module doc)."""

    def __init__(self, storage: Storage, registry: Registry) -> None:
        self.storage = storage
        self.registry = registry
        #: ConversionReviews sent (for tests of the fake itself)
        self.calls = 0

    def _webhook(self, rt: ResourceType) -> dict[str, Any] | None:
        crd_name = (rt.extra or {}).get("crd")
        if not rt.custom or not crd_name:
            return None
        crd = self.storage.get(CRD_STORAGE_KEY, "", str(crd_name))
        if crd is None:
            return None
        conversion = (crd.obj.get("spec") or {}).get("conversion") or {}
        if conversion.get("strategy") != "Webhook":
            return None
        webhook = conversion.get("webhook") or {}
        return dict(webhook) if isinstance(webhook, dict) else {}

    def storage_type(self, rt: ResourceType) -> ResourceType | None:
        """The storage version's type when requests in ``rt``'s version need the webhook, else ``None``."""
        if not rt.custom or not rt.storage_version or rt.storage_version == rt.version:
            return None
        if self._webhook(rt) is None:
            return None
        return self.registry.get(rt.group, rt.storage_version, rt.plural)

    async def convert(
        self, rt: ResourceType, objects: list[dict[str, Any]], desired: str
    ) -> list[dict[str, Any]]:
        """``objects`` in ``desired`` (``group/version``), in order; raises the real 500 on failure."""
        todo = [i for i, obj in enumerate(objects) if obj.get("apiVersion") != desired]
        if not todo:
            return objects
        source = str(objects[todo[0]].get("apiVersion") or "")
        try:
            webhook = self._webhook(rt)
            if webhook is None:
                raise _Failed("the CustomResourceDefinition no longer converts with a webhook")
            converted = await self._post(webhook, [objects[i] for i in todo], desired)
        except _Failed as exc:
            message = f"conversion webhook for {source}, Kind={rt.kind} failed: {exc}"
            body = status_body(500, "", message)
            body.pop("reason", None)  # kube-apiserver's conversion errors carry none
            raise ApiError(body) from None
        out = list(objects)
        for index, obj in zip(todo, converted, strict=True):
            out[index] = obj
        return out

    async def _post(self, webhook: dict[str, Any], objects: list[dict[str, Any]], desired: str) -> list[Any]:
        uid = str(uuid.uuid4())
        review = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
        }
        self.calls += 1
        try:
            answer = await post_review(webhook.get("clientConfig") or {}, review, TIMEOUT_SECONDS)
        except WebhookCallFailed as exc:
            if exc.status is not None:
                raise _Failed(f"conversion webhook responded with status {exc.status}") from None
            raise _Failed(str(exc)) from None
        result = answer.get("result") or {}
        converted = answer.get("convertedObjects")
        if answer.get("uid") != uid:
            raise _Failed(f"expected response.uid={uid}, got {answer.get('uid')}")
        if result.get("status") != "Success":
            raise _Failed(str(result.get("message") or "conversion failed"))
        if not isinstance(converted, list) or len(converted) != len(objects):
            count = len(converted) if isinstance(converted, list) else 0
            raise _Failed(f"expected {len(objects)} converted objects, got {count}")
        for before, after in zip(objects, converted, strict=True):
            _check(before, after, desired)
        return converted


def _check(before: dict[str, Any], after: Any, desired: str) -> None:
    if not isinstance(after, dict):
        raise _Failed("a converted object is not an object")
    if after.get("apiVersion") != desired:
        raise _Failed(
            f"invalid converted object: expected apiVersion {desired}, got {after.get('apiVersion')}"
        )
    if after.get("kind") != before.get("kind"):
        raise _Failed(
            f"invalid converted object: expected kind {before.get('kind')}, got {after.get('kind')}"
        )
    old_meta = {k: v for k, v in (before.get("metadata") or {}).items() if k not in ("labels", "annotations")}
    new_meta = {k: v for k, v in (after.get("metadata") or {}).items() if k not in ("labels", "annotations")}
    if old_meta != new_meta:
        raise _Failed("invalid metadata: only labels and annotations may change in a conversion")
