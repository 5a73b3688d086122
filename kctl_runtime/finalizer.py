"""Finalizers: turn one reconcile into *apply* (object alive) or *cleanup* (object being deleted).

Expected flow
-------------
Call :func:`finalizer` from a reconciler with the object it just read (level-based: the reconciler
re-reads the object every time; never pass a cached copy you mutated)::

    result = await finalizer(api, WIDGETS, obj, "example.com/cleanup", apply=reconcile, cleanup=release)

Each call does exactly one of:

1. Alive (no ``deletionTimestamp``) and our finalizer missing: **add it** and return ``None`` without
   calling ``apply``. The write triggers a new watch event, hence a new reconcile, which then takes
   step 2. ``apply`` therefore never runs before the finalizer is persisted, so nothing ``apply``
   creates outside the cluster can be orphaned by a deletion that raced with it.
   With ``then_apply=True`` the same call goes on to step 2 at once, passing ``apply`` the
   server's answer to the patch (the object as stored, finalizer included), and returns what
   ``apply`` returns: the same guarantee, minus one trip through the watch and the work queue.
   The write's own watch event still reconciles the object again afterwards (level-based: that
   reconcile finds the work done).
2. Alive and our finalizer present: return ``await apply(obj)``.
3. Being deleted and our finalizer present: ``await cleanup(obj)``, then **remove only our
   finalizer** and return cleanup's result. The removal is one JSON patch: ``test`` that
   ``/metadata/finalizers/<i>`` is our name, then ``remove`` index ``i``. If the list changed
   concurrently the ``test`` fails (422) or a conflict (409) is returned; the object is re-read and
   the removal retried at the new index. Another controller's finalizer is never removed.
4. Being deleted and our finalizer absent: return ``None`` (nothing of ours left to clean up).

Guarantees
----------
* The finalizer is added with a JSON patch guarded by a ``test`` of ``metadata.resourceVersion``,
  so it is added at most once and never clobbers a finalizer list someone else just wrote; on
  409/422 the object is re-read and the decision taken again (it may have started deleting).
* Crash-safety at every step: if the process dies (or ``apply``/``cleanup`` raises) after the
  finalizer was added, during cleanup, or after cleanup but before the removal, the object keeps our
  finalizer, so the next reconcile runs step 2 or 3 again. Nothing is lost; things may be repeated.
* Conflicts are retried up to ``max_conflict_retries`` times within one call, re-reading the object
  each time; then the last error is raised (the controller's rate limiter retries later).

Assumptions
-----------
* ``cleanup`` is **idempotent**: it may run more than once for one deletion (a crash or failure
  after it finished but before the finalizer was removed), and must succeed when what it cleans up
  is already gone.
* ``apply`` is idempotent as well (it is an ordinary level-based reconcile).
* One reconcile of a given object runs at a time (the work queue guarantees this per key).

Caveats
-------
* A finalizer blocks deletion until it is removed. If the controller is uninstalled (or cleanup
  fails forever) the object stays ``Terminating`` forever, and so does a namespace containing it;
  removing the finalizer by hand (``kubectl patch ... --type=json``) skips the cleanup.
* Finalizer names should be domain-qualified (``example.com/cleanup``); the API server warns
  otherwise. A finalizer cannot be *added* to an object that is already being deleted.
* NOT guaranteed: that ``cleanup`` runs at all if someone removes our finalizer by hand, or that it
  runs exactly once.

Errors
------
:class:`FinalizerError` with ``step`` telling where it failed, raised ``from`` the original error:
:class:`ApplyFailed` and :class:`CleanupFailed` wrap exceptions of the callbacks;
:class:`~kctl_runtime.reconcile.TerminalError` raised by a callback passes through unwrapped, so
the controller does not retry it; the finalizer stays in place.
:class:`AddFinalizerFailed` and :class:`RemoveFinalizerFailed` wrap API errors of the patches
(:class:`~kctl_runtime.errors.ApiError`, transport errors); :class:`InvalidFinalizer` reports a bad
finalizer name or an object without ``metadata.name`` (no ``__cause__``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import structlog

from kctl_runtime._rest import request_json
from kctl_runtime.errors import CALL_FAILURES, Conflict, Invalid, NotFound
from kctl_runtime.patch import json_patch, pointer
from kctl_runtime.reconcile import TerminalError
from kctl_runtime.resource import Resource

__all__ = [
    "AddFinalizerFailed",
    "ApplyFailed",
    "CleanupFailed",
    "FinalizerError",
    "InvalidFinalizer",
    "RemoveFinalizerFailed",
    "finalizer",
    "has_finalizer",
]

R = TypeVar("R")

FinalizerStep = Literal["apply", "cleanup", "add_finalizer", "remove_finalizer", "invalid"]

_log = structlog.get_logger("kctl_runtime.finalizer")

_QUALIFIED = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class FinalizerError(Exception):
    """A finalizer-driven reconcile failed; ``step`` says where, ``__cause__`` holds the error."""

    step: FinalizerStep = "invalid"
    wraps_cause = True  # logged as its cause is (errors.expected_failure_level)

    def __init__(self, message: str, *, finalizer: str, object_key: str) -> None:
        super().__init__(f"{message} (finalizer {finalizer!r}, object {object_key})")
        self.finalizer = finalizer
        self.object_key = object_key


class ApplyFailed(FinalizerError):
    """``apply`` raised; the finalizer stays in place."""

    step: FinalizerStep = "apply"


class CleanupFailed(FinalizerError):
    """``cleanup`` raised; the finalizer stays, so cleanup runs again on the next reconcile."""

    step: FinalizerStep = "cleanup"


class AddFinalizerFailed(FinalizerError):
    """The patch adding the finalizer failed (after retrying conflicts); ``apply`` did not run."""

    step: FinalizerStep = "add_finalizer"


class RemoveFinalizerFailed(FinalizerError):
    """Cleanup succeeded but the finalizer could not be removed; cleanup will run again."""

    step: FinalizerStep = "remove_finalizer"


class InvalidFinalizer(FinalizerError):
    """The finalizer name is not a qualified name, or the object has no name."""

    step: FinalizerStep = "invalid"


def has_finalizer(obj: Mapping[str, Any], name: str) -> bool:
    """Whether ``obj``'s ``metadata.finalizers`` contains ``name``."""
    return name in ((obj.get("metadata") or {}).get("finalizers") or ())


async def finalizer(
    api_client: Any,
    resource: Resource,
    obj: Mapping[str, Any],
    name: str,
    *,
    apply: Callable[[dict[str, Any]], Awaitable[R]],
    cleanup: Callable[[dict[str, Any]], Awaitable[R]],
    field_manager: str | None = None,
    max_conflict_retries: int = 5,
    then_apply: bool = False,
) -> R | None:
    """Run ``apply`` or ``cleanup`` for ``obj`` guarded by finalizer ``name``; see the module doc."""
    meta = obj.get("metadata") or {}
    obj_name = meta.get("name")
    namespace = meta.get("namespace") if resource.namespaced else None
    key = f"{namespace}/{obj_name}" if namespace else str(obj_name)
    if not obj_name:
        raise InvalidFinalizer("the object has no metadata.name", finalizer=name, object_key=key)
    if not name or len(name) > 316 or not _QUALIFIED.match(name):
        raise InvalidFinalizer(
            "finalizer names must be qualified names such as 'example.com/cleanup'",
            finalizer=name,
            object_key=key,
        )
    log = _log.bind(finalizer=name, object=key, resource=resource.group_resource)
    current: dict[str, Any] = dict(obj)

    async def reread() -> dict[str, Any] | None:
        try:
            fresh: dict[str, Any] = await request_json(api_client, "GET", resource.path(namespace, obj_name))
        except NotFound:
            return None
        return fresh

    # Step 1: make sure the finalizer is there before anything else happens (or learn it is deleting).
    attempts = 0
    while True:
        meta = current.get("metadata") or {}
        if meta.get("deletionTimestamp") or has_finalizer(current, name):
            break
        finalizers = list(meta.get("finalizers") or [])
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
            (
                {"op": "add", "path": "/metadata/finalizers/-", "value": name}
                if finalizers
                else {"op": "add", "path": "/metadata/finalizers", "value": [name]}
            ),
        ]
        try:
            stored = await json_patch(
                api_client, resource, namespace, obj_name, ops, field_manager=field_manager
            )
        except (Conflict, Invalid) as exc:
            attempts += 1
            if attempts > max_conflict_retries:
                raise AddFinalizerFailed(
                    f"adding the finalizer kept conflicting ({attempts} attempts)",
                    finalizer=name,
                    object_key=key,
                ) from exc
            log.debug("finalizer add conflicted; re-reading", error=repr(exc))
            fresh = await _reread_or_fail(reread, AddFinalizerFailed, name, key)
            if fresh is None:
                return None
            current = fresh
            continue
        except NotFound:
            return None
        except CALL_FAILURES as exc:
            raise AddFinalizerFailed("adding the finalizer failed", finalizer=name, object_key=key) from exc
        log.info("added finalizer")
        if not then_apply:
            return None
        current = stored
        break

    meta = current.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        # Step 2: alive, finalizer present.
        try:
            return await apply(current)
        except TerminalError:
            raise  # the reconciler's verdict: not retried, so it must reach the controller as it is
        except Exception as exc:
            raise ApplyFailed(f"apply failed: {exc!r}", finalizer=name, object_key=key) from exc

    if not has_finalizer(current, name):
        # Step 4: being deleted, and our cleanup already finished.
        return None

    # Step 3: being deleted, our finalizer present.
    try:
        result = await cleanup(current)
    except TerminalError:
        raise
    except Exception as exc:
        raise CleanupFailed(f"cleanup failed: {exc!r}", finalizer=name, object_key=key) from exc
    attempts = 0
    while True:
        finalizers = list((current.get("metadata") or {}).get("finalizers") or [])
        if name not in finalizers:
            return result
        index = finalizers.index(name)
        ops = [
            {"op": "test", "path": pointer("metadata", "finalizers", index), "value": name},
            {"op": "remove", "path": pointer("metadata", "finalizers", index)},
        ]
        try:
            await json_patch(api_client, resource, namespace, obj_name, ops, field_manager=field_manager)
        except (Conflict, Invalid) as exc:
            attempts += 1
            if attempts > max_conflict_retries:
                raise RemoveFinalizerFailed(
                    f"removing the finalizer kept conflicting ({attempts} attempts)",
                    finalizer=name,
                    object_key=key,
                ) from exc
            log.debug("finalizer removal conflicted; re-reading", error=repr(exc))
            fresh = await _reread_or_fail(reread, RemoveFinalizerFailed, name, key)
            if fresh is None:
                return result
            current = fresh
            continue
        except NotFound:
            return result
        except CALL_FAILURES as exc:
            raise RemoveFinalizerFailed(
                "removing the finalizer failed", finalizer=name, object_key=key
            ) from exc
        log.info("cleanup done; removed finalizer")
        return result


async def _reread_or_fail(
    reread: Callable[[], Awaitable[dict[str, Any] | None]],
    error: type[FinalizerError],
    name: str,
    key: str,
) -> dict[str, Any] | None:
    try:
        return await reread()
    except CALL_FAILURES as exc:
        raise error("re-reading the object after a conflict failed", finalizer=name, object_key=key) from exc
