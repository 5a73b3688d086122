"""``Status`` error bodies shaped exactly like kube-apiserver's (k8s.io/apimachinery ``errors``).

Contract
--------
Every failure the fake server reports is an :class:`ApiError` carrying a ``metav1.Status`` body with
the same ``code``, ``reason``, ``message`` and ``details`` the real server would produce for the same
request. ``details.kind`` holds the *resource* (plural), as the real server does; ``details.group`` is
omitted for the core group. Handlers raise these; the server turns them into JSON responses.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden_terminating",
    "invalid",
    "method_not_allowed",
    "not_found",
    "options_invalid",
    "qualified",
    "query_bool",
    "status_body",
    "unsupported_media_type",
]


def query_bool(value: str | None) -> bool:
    """A boolean query parameter as Go's ``strconv.ParseBool`` reads it (``1``, ``t``, ``True``...)."""
    return (value or "").lower() in ("1", "t", "true")


def qualified(resource: str, group: str) -> str:
    """``configmaps`` or ``deployments.apps``: how the real server names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def status_body(
    code: int,
    reason: str,
    message: str,
    *,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A failure ``Status`` object (an empty ``reason`` is left out, as the real server's omitempty)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    """An error response: an HTTP code and the ``Status`` body to send."""

    def __init__(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message", ""))
        self.body = body
        self.code = int(body["code"])
        self.headers = headers or {}


def _details(resource: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    message = f'{qualified(resource, group)} "{name}" not found'
    return ApiError(status_body(404, "NotFound", message, details=_details(resource, group, name)))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    message = f'{qualified(resource, group)} "{name}" already exists'
    return ApiError(status_body(409, "AlreadyExists", message, details=_details(resource, group, name)))


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}'
    return ApiError(status_body(409, "Conflict", message, details=_details(resource, group, name)))


MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def bad_request(message: str) -> ApiError:
    return ApiError(status_body(400, "BadRequest", message))


def expired(message: str) -> ApiError:
    return ApiError(status_body(410, "Expired", message))


def method_not_allowed(resource: str, group: str, verb: str) -> ApiError:
    """405, worded as kube-apiserver's router words it for a verb the resource does not serve."""
    del resource, group, verb
    message = "the server does not allow this method on the requested resource"
    return ApiError(status_body(405, "MethodNotAllowed", message, details={}))


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    message = (
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}"
    )
    del content_type
    return ApiError(status_body(415, "UnsupportedMediaType", message))


def forbidden_terminating(resource: str, group: str, name: str, namespace: str) -> ApiError:
    message = (
        f'{qualified(resource, group)} "{name}" is forbidden: unable to create new content in namespace '
        f"{namespace} because it is being terminated"
    )
    details = _details(resource, group, name)
    details["causes"] = [
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace",
        }
    ]
    return ApiError(status_body(403, "Forbidden", message, details=details))


def options_invalid(options_kind: str, field: str, reason: str, message: str) -> ApiError:
    """422 for a bad request option, e.g. ``CreateOptions.meta.k8s.io "" is invalid: dryRun: ...``."""
    return invalid(options_kind, "meta.k8s.io", "", [{"reason": reason, "message": message, "field": field}])


OPTIONS_KIND = {
    "create": "CreateOptions",
    "update": "UpdateOptions",
    "patch": "PatchOptions",
    "delete": "DeleteOptions",
    "deletecollection": "DeleteOptions",
}


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid, with ``causes`` of ``{"reason", "message", "field"}`` (the real aggregation)."""
    parts = list(
        dict.fromkeys(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    )
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    message = (
        f'{kind}.{group} "{name}" is invalid: {summary}'
        if group
        else f'{kind} "{name}" is invalid: {summary}'
    )
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = causes
    return ApiError(status_body(422, "Invalid", message, details=details))
