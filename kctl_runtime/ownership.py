"""Owner references: the reference that makes a controller an object's owner, and reading it back.

Contract
--------
* :func:`controller_reference` builds the ``ownerReference`` a controller puts on what it creates:
  ``controller: true`` and ``blockOwnerDeletion: true`` (foreground deletion of the owner waits for
  the child), naming the owner by ``apiVersion``, ``kind``, ``name`` and ``uid`` -- what
  apimachinery's ``NewControllerRef`` and controller-runtime's ``SetControllerReference`` write. The
  garbage collector then deletes the child with its owner.
* :func:`controller_of` returns an object's controller reference (the one with ``controller:
  true``; the API server allows at most one), or ``None`` -- apimachinery's ``GetControllerOf``.
* :func:`controller_name` returns the name of the object's controller *if* that controller is of
  the given resource (matched on API group and kind, any version, as controller-runtime's
  ``EnqueueRequestForOwner(OnlyControllerOwner)`` matches), else ``None``.
* :func:`not_controlled_by` is the adoption policy of the examples and the scaffold: an existing
  object is ours to write only if its controller reference carries our owner's ``uid``. It returns
  ``None`` for a missing object (ours to create) or one we control, and otherwise a sentence saying
  why not -- "is controlled by Kind/name", or "is not controlled by this <Kind> (the controller
  never adopts an object it did not create)" -- for a status condition or a Warning event. Unlike
  controller-runtime's ``CreateOrUpdate`` + ``SetControllerReference``, nothing here adopts an
  orphan: an object nobody controls may be someone else's.

All functions read plain dicts (the informer cache's objects) and never modify them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kctl_runtime.resource import Resource

__all__ = ["controller_name", "controller_of", "controller_reference", "not_controlled_by"]


def controller_reference(owner: Resource, name: str, uid: str) -> dict[str, Any]:
    """The controller ``ownerReference`` to the ``owner`` object ``name`` with ``uid`` (module doc)."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ownerReference of ``obj`` with ``controller: true``, or ``None``."""
    if obj is None:
        return None
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def controller_name(obj: Mapping[str, Any], owner: Resource) -> str | None:
    """The name of ``obj``'s controller if it is of kind ``owner`` (group and kind match), else ``None``."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != owner.kind:
        return None
    if str(ref.get("apiVersion", "")).rpartition("/")[0] != owner.group:
        return None
    name = ref.get("name")
    return str(name) if name else None


def not_controlled_by(obj: Mapping[str, Any] | None, uid: str, owner_kind: str) -> str | None:
    """Why ``obj`` is not ours to write (``None``: missing, or the owner with ``uid`` controls it)."""
    if obj is None:
        return None
    ref = controller_of(obj)
    if ref is None:
        return (
            f"is not controlled by this {owner_kind} "
            "(the controller never adopts an object it did not create)"
        )
    if ref.get("uid") == uid:
        return None
    return f"is controlled by {ref.get('kind')}/{ref.get('name')}"
