"""Status conditions with apimachinery's semantics (``meta.SetStatusCondition`` and friends).

Contract
--------
Conditions are the plain JSON dicts of ``metav1.Condition`` (``type``, ``status``, ``reason``,
``message``, ``observedGeneration``, ``lastTransitionTime``) held in a ``list`` — typically
``obj["status"]["conditions"]`` of a decoded object.

* :func:`set_condition` adds or updates the condition of that ``type`` **in place** and returns
  whether anything changed. ``lastTransitionTime`` is set to ``now`` only when the condition is new
  or its ``status`` changes; a reason/message/generation change keeps the old transition time (as
  in apimachinery). Calling it twice with the same arguments changes nothing the second time, so a
  reconciler can call it every pass and only write status when it returns ``True``.
* Arguments are validated before anything is modified (``ValueError`` with the offending value):
  ``type`` is a qualified name (``Ready``, ``example.com/Synced``); ``status`` is ``"True"``,
  ``"False"`` or ``"Unknown"`` (Python ``bool`` is accepted and converted); ``reason`` is
  CamelCase (``^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$``, at most 1024 characters, as the API
  server validates it); ``message`` at most 32768 characters; ``observed_generation`` >= 0.
* :func:`find_condition`, :func:`is_true`, :func:`is_false`, :func:`remove_condition` behave like
  ``FindStatusCondition``, ``IsStatusConditionTrue/False`` and ``RemoveStatusCondition``.
* :func:`status_conditions_patch` builds a JSON merge patch for the status subresource. Merge patch
  replaces the whole ``conditions`` list (it is not a map-keyed merge), so the patch carries the
  complete list — callers must start from a recently read object, and should send it with the
  object's ``resourceVersion`` when another writer may own other conditions.

NOT guaranteed: the list is not sorted or deduplicated beyond the one ``type`` being set (an
existing duplicate from a sloppy writer is left alone); timestamps are written with second
precision (``metav1.Time``), so two transitions within the same second look simultaneous.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, MutableSequence, Sequence
from typing import Any, Literal

from kctl_runtime.clock import format_time

__all__ = [
    "ConditionStatus",
    "find_condition",
    "format_time",
    "is_false",
    "is_true",
    "remove_condition",
    "set_condition",
    "status_conditions_patch",
]

ConditionStatus = Literal["True", "False", "Unknown"]

_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_STATUSES = ("True", "False", "Unknown")


def _validate_type(type_: str) -> None:
    if not isinstance(type_, str) or not type_:
        raise ValueError("condition type must be a non-empty string such as 'Ready'")
    prefix, _, name = type_.rpartition("/")
    if len(name) > 63 or not _NAME.match(name):
        raise ValueError(
            f"condition type {type_!r} is not a qualified name: the name part must be at most 63 "
            "characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    if "/" in type_ and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"condition type {type_!r} has an invalid prefix: it must be a DNS subdomain")


def _validate_status(status: str | bool) -> str:
    if isinstance(status, bool):
        return "True" if status else "False"
    if status not in _STATUSES:
        raise ValueError(f"condition status must be one of 'True', 'False', 'Unknown', not {status!r}")
    return status


def _validate_reason(reason: str) -> None:
    if not isinstance(reason, str) or not reason:
        raise ValueError("condition reason is required: a CamelCase word such as 'DeploymentReady'")
    if len(reason) > 1024:
        raise ValueError(f"condition reason is {len(reason)} characters long; the limit is 1024")
    if not _REASON.match(reason):
        raise ValueError(
            f"condition reason {reason!r} must be CamelCase: start with a letter, then letters, "
            "digits, '_', ',' or ':' (no spaces or dashes), e.g. 'MinimumReplicasUnavailable'"
        )


def _validate_arguments(
    type: str, status: str | bool, reason: str, message: str, observed_generation: int | None
) -> str:
    """Check :func:`set_condition`'s arguments (``ValueError``); the status as a string."""
    _validate_type(type)
    status_s = _validate_status(status)
    _validate_reason(reason)
    if not isinstance(message, str) or len(message) > 32768:
        raise ValueError("condition message must be a string of at most 32768 characters")
    if observed_generation is not None and (
        isinstance(observed_generation, bool)
        or not isinstance(observed_generation, int)
        or observed_generation < 0
    ):
        raise ValueError(f"observed_generation must be a non-negative int, not {observed_generation!r}")
    return status_s


def set_condition(
    conditions: MutableSequence[dict[str, Any]],
    *,
    type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: _dt.datetime,
) -> bool:
    """Add or update the condition ``type`` in ``conditions`` in place; return whether it changed.

    ``now`` should come from the runtime clock (``clock.now()``); it is only written when the
    status transitions (or the condition is new).
    """
    status_s = _validate_arguments(type, status, reason, message, observed_generation)
    stamp = format_time(now)

    existing = find_condition(conditions, type)
    if existing is None:
        new: dict[str, Any] = {
            "type": type,
            "status": status_s,
            "observedGeneration": observed_generation,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }
        if observed_generation is None:
            del new["observedGeneration"]
        conditions.append(new)
        return True

    changed = False
    if existing.get("status") != status_s:
        existing["status"] = status_s
        existing["lastTransitionTime"] = stamp
        changed = True
    elif not existing.get("lastTransitionTime"):
        existing["lastTransitionTime"] = stamp
        changed = True
    if existing.get("reason") != reason:
        existing["reason"] = reason
        changed = True
    if existing.get("message", "") != message:
        existing["message"] = message
        changed = True
    if observed_generation is not None and existing.get("observedGeneration") != observed_generation:
        existing["observedGeneration"] = observed_generation
        changed = True
    return changed


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> Any:
    """The first condition of ``type`` (the same dict object, so it can be edited), or ``None``."""
    for condition in conditions or ():
        if condition.get("type") == type:
            return condition
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> bool:
    """Whether condition ``type`` is present with status ``"True"``."""
    condition = find_condition(conditions, type)
    return condition is not None and condition.get("status") == "True"


def is_false(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> bool:
    """Whether condition ``type`` is present with status ``"False"`` (absent is neither)."""
    condition = find_condition(conditions, type)
    return condition is not None and condition.get("status") == "False"


def remove_condition(conditions: MutableSequence[dict[str, Any]], type: str) -> bool:
    """Remove every condition of ``type`` in place; return whether one was removed."""
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.get("type") != type]
    return len(conditions) != before


def status_conditions_patch(
    conditions: Sequence[Mapping[str, Any]],
    *,
    resource_version: str | None = None,
    observed_generation: int | None = None,
) -> dict[str, Any]:
    """A JSON merge patch that sets ``status.conditions`` (the whole list) on the status subresource.

    With ``resource_version`` the patch fails with 409 Conflict if the object changed since it was
    read (use it when other writers manage other conditions). ``observed_generation`` also sets
    ``status.observedGeneration``.
    """
    patch: dict[str, Any] = {"status": {"conditions": [dict(c) for c in conditions]}}
    if observed_generation is not None:
        patch["status"]["observedGeneration"] = observed_generation
    if resource_version is not None:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch
