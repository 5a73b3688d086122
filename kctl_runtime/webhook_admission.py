"""Typed ``admission.k8s.io/v1`` AdmissionReview requests and responses, and JSON Patch diffs.

Contract
--------
* :meth:`AdmissionRequest.from_review` parses an AdmissionReview body (a decoded JSON dict) into a
  frozen :class:`AdmissionRequest`, or raises :class:`ReviewError` naming what is wrong (the server
  answers 400 with that text). ``object`` / ``old_object`` are the decoded JSON the API server sent
  (``None`` where the operation has none: no ``object`` on DELETE, no ``old_object`` on CREATE);
  treat them as read-only.
* :class:`AdmissionResponse` is the handler's decision: :meth:`~AdmissionResponse.allow` (optionally
  with warnings) or :meth:`~AdmissionResponse.deny` with a message and an HTTP-style code (403 by
  default, as controller-runtime's ``Denied``). :meth:`AdmissionResponse.review` renders the
  AdmissionReview the API server expects, echoing the request's ``uid``.
* :func:`json_patch_diff` computes an RFC 6902 patch turning ``old`` into ``new``: object keys are
  compared recursively; a changed list or scalar is replaced whole. Applying the result to ``old``
  gives ``new`` exactly (keys escaped with :func:`kctl_runtime.patch.pointer`).

A *validating* handler is ``async def handler(request) -> AdmissionResponse``. A *mutating* handler
is ``async def handler(request, obj) -> AdmissionResponse | None``: it edits ``obj`` (a private deep
copy of ``request.object``) in place and returns ``None`` to allow, or a response (denial, or
``allow`` with warnings); the server sends the JSON Patch between the two.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kctl_runtime.patch import pointer

__all__ = [
    "ADMISSION_API_VERSION",
    "AdmissionRequest",
    "AdmissionResponse",
    "MutatingHandler",
    "ReviewError",
    "UserInfo",
    "ValidatingHandler",
    "json_patch_diff",
    "review_request",
]

ADMISSION_API_VERSION = "admission.k8s.io/v1"
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class ReviewError(ValueError):
    """A review body that is not a well-formed request (the server answers 400 with this text)."""


def review_request(review: Any, api_version: str, kind: str) -> tuple[dict[str, Any], str]:
    """The ``request`` of a review body and its ``uid``; :class:`ReviewError` for anything else."""
    if not isinstance(review, dict):
        raise ReviewError("the body is not a JSON object")
    if review.get("apiVersion") != api_version or review.get("kind") != kind:
        raise ReviewError(
            f"expected apiVersion {api_version} kind {kind}, got apiVersion "
            f"{review.get('apiVersion')!r} kind {review.get('kind')!r}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError(f"the {kind} has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing")
    return request, uid


@dataclass(frozen=True)
class UserInfo:
    """Who sent the request the API server is admitting (``request.userInfo``)."""

    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class AdmissionRequest:
    """One admission request (``AdmissionReview.request``); see the module doc."""

    uid: str
    operation: str
    #: ``{"group", "version", "kind"}`` of ``object`` as sent to the webhook
    kind: Mapping[str, str]
    #: ``{"group", "version", "resource"}`` being accessed
    resource: Mapping[str, str]
    name: str
    namespace: str
    sub_resource: str
    user_info: UserInfo
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool
    #: the operation's options (CreateOptions, UpdateOptions, DeleteOptions), if sent
    options: dict[str, Any] | None
    #: the whole ``request`` as received, for fields not surfaced above
    raw: Mapping[str, Any]

    @classmethod
    def from_review(cls, review: Any) -> AdmissionRequest:
        request, uid = review_request(review, ADMISSION_API_VERSION, "AdmissionReview")
        operation = request.get("operation")
        if operation not in _OPERATIONS:
            raise ReviewError(f"request.operation {operation!r} is not one of {', '.join(_OPERATIONS)}")
        for key in ("object", "oldObject", "options"):
            if request.get(key) is not None and not isinstance(request[key], dict):
                raise ReviewError(f"request.{key} is not an object")
        for key in ("kind", "resource"):
            if not isinstance(request.get(key), dict):
                raise ReviewError(f"request.{key} is missing")
        user = request.get("userInfo") or {}
        if not isinstance(user, dict):
            raise ReviewError("request.userInfo is not an object")
        extra = {str(k): tuple(str(x) for x in v or ()) for k, v in (user.get("extra") or {}).items()}
        return cls(
            uid=uid,
            operation=str(operation),
            kind={str(k): str(v) for k, v in request["kind"].items()},
            resource={str(k): str(v) for k, v in request["resource"].items()},
            name=str(request.get("name") or ""),
            namespace=str(request.get("namespace") or ""),
            sub_resource=str(request.get("subResource") or ""),
            user_info=UserInfo(
                username=str(user.get("username") or ""),
                uid=str(user.get("uid") or ""),
                groups=tuple(str(g) for g in user.get("groups") or ()),
                extra=extra,
            ),
            object=request.get("object"),
            old_object=request.get("oldObject"),
            dry_run=bool(request.get("dryRun")),
            options=request.get("options"),
            raw=request,
        )


@dataclass(frozen=True)
class AdmissionResponse:
    """A handler's decision (``AdmissionReview.response`` without the uid); see the module doc."""

    allowed: bool
    message: str = ""
    code: int | None = None
    reason: str = ""
    warnings: tuple[str, ...] = ()
    #: RFC 6902 operations (mutating webhooks); set by the server from the handler's edits
    patch: tuple[dict[str, Any], ...] = ()

    @classmethod
    def allow(cls, *warnings: str, message: str = "") -> AdmissionResponse:
        return cls(True, message=message, warnings=tuple(warnings))

    @classmethod
    def deny(
        cls, message: str, *, code: int = 403, reason: str = "Forbidden", warnings: tuple[str, ...] = ()
    ) -> AdmissionResponse:
        if not 400 <= code <= 599:
            raise ValueError(f"a denial's code must be an HTTP error code (400-599), not {code}")
        return cls(False, message=message, code=code, reason=reason, warnings=tuple(warnings))

    def review(self, uid: str) -> dict[str, Any]:
        """The AdmissionReview answering the request ``uid``."""
        response: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if self.warnings:
            response["warnings"] = list(self.warnings)
        if not self.allowed or self.message or self.code is not None:
            status: dict[str, Any] = {}
            if self.code is not None:
                status["code"] = self.code
            if self.message:
                status["message"] = self.message
            if self.reason:
                status["reason"] = self.reason
            response["status"] = status
        if self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(orjson.dumps(list(self.patch))).decode()
        return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}


ValidatingHandler = Callable[[AdmissionRequest], Awaitable[AdmissionResponse]]
MutatingHandler = Callable[[AdmissionRequest, dict[str, Any]], Awaitable[AdmissionResponse | None]]


def json_patch_diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations that turn ``old`` into ``new`` (module doc)."""
    ops: list[dict[str, Any]] = []
    _diff(old, new, (), ops)
    return ops


def _diff(old: Any, new: Any, path: tuple[str, ...], ops: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": pointer(*path, key)})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": pointer(*path, key), "value": value})
            else:
                _diff(old[key], value, (*path, key), ops)
        return
    if old != new or type(old) is not type(new):
        ops.append({"op": "replace", "path": pointer(*path), "value": new})
