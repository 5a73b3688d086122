"""Patch helpers for reconcilers: merge patch, JSON patch, server-side apply, status patches.

Contract
--------
* Every helper sends exactly one request and returns the object the server answered with, as a
  decoded JSON ``dict``. Inputs are plain dicts/lists; nothing is decoded into generated models.
* Errors are the shared :mod:`kctl_runtime.errors` types: :class:`~kctl_runtime.errors.Conflict`
  (409: a ``metadata.resourceVersion`` precondition in the patch failed, or server-side apply found
  fields owned by another manager), :class:`~kctl_runtime.errors.Invalid` (422: validation failed,
  or a JSON patch ``test`` op did not match), :class:`~kctl_runtime.errors.NotFound`, ... Transport
  failures are raised as aiohttp raised them (outcome unknown). Nothing is retried here; a
  reconciler returns the error and the controller retries with its rate limiter.
* :func:`merge_patch` (RFC 7386, ``application/merge-patch+json``): ``null`` deletes a key, lists
  are replaced whole. Put ``{"metadata": {"resourceVersion": rv}}`` in the patch to make it
  conditional (optimistic concurrency).
* :func:`json_patch` (RFC 6902, ``application/json-patch+json``): ops apply atomically, in order; a
  failing ``test`` op makes the whole patch fail (422 on kube-apiserver) and nothing is written.
  Build paths with :func:`pointer` so ``/`` and ``~`` in keys (annotations!) are escaped.
* :func:`apply` is server-side apply (``application/apply-patch+yaml``; the body is JSON, which is
  valid YAML): send only the fields this manager has an opinion about, always with the same
  ``field_manager``. Fields it stops sending are removed if it was their only owner. ``force=True``
  takes ownership of conflicting fields from other managers instead of failing with 409.
* :func:`patch_status` merge-patches the ``status`` subresource: spec/metadata changes in the patch
  are ignored by the server (except ``metadata.resourceVersion`` as a precondition), and the
  ``status`` is not written through the main resource when the CRD has the subresource enabled.
* :func:`diff_merge_patch` computes a minimal merge patch turning ``old`` into ``new``;
  :func:`apply_merge_patch` applies one locally. ``apply_merge_patch(old, diff_merge_patch(old,
  new)) == new`` holds whenever ``new`` contains no ``None`` values (merge patch cannot express
  "set to null": null means delete).

NOT guaranteed: a merge patch without a ``resourceVersion`` is last-writer-wins on every key it
names, and always replaces whole lists (for example ``metadata.finalizers`` or
``status.conditions``), so two writers of the same list can undo each other; use :func:`json_patch`
with a ``test`` op, a ``resourceVersion`` precondition, or server-side apply for shared lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kctl_runtime._rest import request_json
from kctl_runtime.resource import Resource

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "apply",
    "apply_merge_patch",
    "diff_merge_patch",
    "json_patch",
    "merge_patch",
    "patch_status",
    "pointer",
]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def pointer(*segments: str | int) -> str:
    """A JSON pointer (RFC 6901) from raw segments: ``pointer("metadata", "annotations", "a/b")``.

    ``~`` becomes ``~0`` and ``/`` becomes ``~1``, so keys like ``example.com/owner`` are safe.
    """
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in segments)


def _query(field_manager: str | None, dry_run: bool, force: bool | None = None) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    if field_manager is not None:
        if not field_manager:
            raise ValueError("field_manager must be a non-empty string")
        query.append(("fieldManager", field_manager))
    if force is not None and force:
        query.append(("force", "true"))
    if dry_run:
        query.append(("dryRun", "All"))
    return query


async def merge_patch(
    api_client: Any,
    resource: Resource,
    namespace: str | None,
    name: str,
    patch: Mapping[str, Any],
    *,
    subresource: str | None = None,
    field_manager: str | None = None,
    dry_run: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """JSON merge patch one object (or its ``subresource``); returns the patched object."""
    if not isinstance(patch, Mapping):
        raise TypeError("a merge patch must be a JSON object (dict)")
    result: dict[str, Any] = await request_json(
        api_client,
        "PATCH",
        resource.path(namespace, name, subresource),
        query=_query(field_manager, dry_run),
        body=dict(patch),
        content_type=MERGE_PATCH,
        timeout=timeout,
    )
    return result


async def json_patch(
    api_client: Any,
    resource: Resource,
    namespace: str | None,
    name: str,
    ops: Sequence[Mapping[str, Any]],
    *,
    subresource: str | None = None,
    field_manager: str | None = None,
    dry_run: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Apply RFC 6902 ``ops`` atomically (e.g. ``[{"op": "test", ...}, {"op": "remove", ...}]``)."""
    checked: list[dict[str, Any]] = []
    for op in ops:
        kind = op.get("op")
        if kind not in ("add", "remove", "replace", "move", "copy", "test"):
            raise ValueError(f"not a JSON patch operation: {op!r}")
        if not isinstance(op.get("path"), str):
            raise TypeError(f"JSON patch operation without a string 'path': {op!r}")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ValueError(f"JSON patch {kind!r} operation needs a 'value': {op!r}")
        checked.append(dict(op))
    if not checked:
        raise ValueError("an empty JSON patch does nothing; do not send it")
    result: dict[str, Any] = await request_json(
        api_client,
        "PATCH",
        resource.path(namespace, name, subresource),
        query=_query(field_manager, dry_run),
        body=checked,
        content_type=JSON_PATCH,
        timeout=timeout,
    )
    return result


async def apply(
    api_client: Any,
    resource: Resource,
    obj: Mapping[str, Any],
    *,
    field_manager: str,
    force: bool = False,
    subresource: str | None = None,
    dry_run: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Server-side apply ``obj`` (the fields this manager owns) and return the resulting object.

    ``obj`` needs ``metadata.name`` (and ``metadata.namespace`` for namespaced resources);
    ``apiVersion`` and ``kind`` are filled from ``resource`` when missing. The object is created if
    it does not exist. A 409 :class:`~kctl_runtime.errors.Conflict` lists the conflicting fields and
    their managers in its message; retry with ``force=True`` only if this manager should win.
    """
    if not field_manager:
        raise ValueError("server-side apply needs a field_manager (a stable name for this controller)")
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError("server-side apply needs metadata.name in the applied object")
    namespace = meta.get("namespace")
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource.group_resource} is namespaced: set metadata.namespace")
    body = dict(obj)
    body.setdefault("apiVersion", resource.api_version)
    body.setdefault("kind", resource.kind)
    result: dict[str, Any] = await request_json(
        api_client,
        "PATCH",
        resource.path(namespace if resource.namespaced else None, name, subresource),
        query=_query(field_manager, dry_run, force),
        body=body,
        content_type=APPLY_PATCH,
        timeout=timeout,
    )
    return result


async def patch_status(
    api_client: Any,
    resource: Resource,
    namespace: str | None,
    name: str,
    status_patch: Mapping[str, Any],
    *,
    resource_version: str | None = None,
    field_manager: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Merge-patch ``status`` through the status subresource: sends ``{"status": status_patch}``.

    With ``resource_version`` the write fails with 409 if the object changed since it was read.
    """
    patch: dict[str, Any] = {"status": dict(status_patch)}
    if resource_version is not None:
        patch["metadata"] = {"resourceVersion": resource_version}
    return await merge_patch(
        api_client,
        resource,
        namespace,
        name,
        patch,
        subresource="status",
        field_manager=field_manager,
        timeout=timeout,
    )


def diff_merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The smallest JSON merge patch that turns ``old`` into ``new`` (``{}`` when equal).

    Removed keys become ``None`` (null), changed objects recurse, and anything else that differs —
    including any list — is sent whole.
    """
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, new_value in new.items():
        if key not in old:
            patch[key] = _copy(new_value)
            continue
        old_value = old[key]
        if isinstance(old_value, Mapping) and isinstance(new_value, Mapping):
            sub = diff_merge_patch(old_value, new_value)
            if sub:
                patch[key] = sub
        elif old_value != new_value or type(old_value) is not type(new_value):
            patch[key] = _copy(new_value)
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch) on plain JSON values; returns a new value."""
    if not isinstance(patch, Mapping):
        return _copy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
