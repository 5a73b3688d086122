"""CRD conversion webhooks: ``apiextensions.k8s.io/v1`` ConversionReview.

Contract
--------
A converter is ``def convert(obj, desired_api_version) -> dict`` (sync or async): it gets one
object (decoded JSON; do not mutate it) and returns it in ``desired_api_version``. It may be called
with an object already in that version and must then return it unchanged (kube-apiserver sends
mixed lists). :func:`convert_review` answers a review: every object converted, in order, each with
``apiVersion`` set to the desired version and ``metadata`` carried over unchanged except for
labels and annotations (kube-apiserver rejects a response that changes anything else in metadata).
If a converter raises, the whole review answers ``result.status: Failure`` with the error's message;
kube-apiserver then fails the request that needed the conversion.

A malformed review raises :class:`~kctl_runtime.webhook_admission.ReviewError` (the server answers 400).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from kctl_runtime.webhook_admission import ReviewError, review_request

__all__ = ["CONVERSION_API_VERSION", "Converter", "convert_review"]

CONVERSION_API_VERSION = "apiextensions.k8s.io/v1"

Converter = Callable[[dict[str, Any], str], dict[str, Any] | Awaitable[dict[str, Any]]]


class ConversionFailed(Exception):
    """A converter's error, answered as ``result.status: Failure``."""


def _parse(review: Any) -> tuple[str, str, list[dict[str, Any]]]:
    request, uid = review_request(review, CONVERSION_API_VERSION, "ConversionReview")
    desired = request.get("desiredAPIVersion")
    objects = request.get("objects")
    if not isinstance(desired, str) or "/" not in desired:
        raise ReviewError(f"request.desiredAPIVersion {desired!r} is not group/version")
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise ReviewError("request.objects is not a list of objects")
    return uid, desired, objects


async def _convert_one(converter: Converter, obj: dict[str, Any], desired: str) -> dict[str, Any]:
    if obj.get("apiVersion") == desired:
        return obj
    result = converter(copy.deepcopy(obj), desired)
    out = await result if inspect.isawaitable(result) else result
    if not isinstance(out, dict):
        raise ConversionFailed(f"the converter returned {type(out).__name__}, not an object")
    out["apiVersion"] = desired
    out["kind"] = obj.get("kind")
    meta = dict(obj.get("metadata") or {})
    new_meta = out.get("metadata") or {}
    for key in ("labels", "annotations"):
        if key in new_meta:
            meta[key] = new_meta[key]
        else:
            meta.pop(key, None)
    out["metadata"] = meta
    return out


async def convert_review(converter: Converter, review: Any) -> dict[str, Any]:
    """The ConversionReview answering ``review`` (module doc)."""
    uid, desired, objects = _parse(review)
    response: dict[str, Any] = {"uid": uid}
    try:
        response["convertedObjects"] = [await _convert_one(converter, o, desired) for o in objects]
        response["result"] = {"status": "Success"}
    except Exception as exc:
        response["convertedObjects"] = []
        response["result"] = {"status": "Failure", "message": f"conversion to {desired} failed: {exc}"}
    return {"apiVersion": CONVERSION_API_VERSION, "kind": "ConversionReview", "response": response}
