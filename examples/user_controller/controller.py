"""The User controller: a ``User`` becomes a ServiceAccount and its token Secret in a group namespace.

Contract
--------
For each ``User`` NAME (``users.ch20.kiamol.net/v1``) in namespace NS with ``spec.group`` GROUP,
the controller keeps:

* the namespace ``kiamol-ch20-authn-GROUP``, labelled ``kiamol: ch20`` (created if missing);
* a ServiceAccount NAME in it, ``automountServiceAccountToken: false``;
* a Secret ``NAME-token`` in it, of type ``kubernetes.io/service-account-token`` and annotated
  ``kubernetes.io/service-account.name: NAME``; the cluster's token controller fills in the token.

A namespaced User cannot own objects in another namespace (ownerReferences never cross namespaces),
so the children point back to their User with the label ``ch20.kiamol.net/user-uid`` and the
annotation ``ch20.kiamol.net/user: NS/NAME``, and cleanup goes through the finalizer
``ch20.kiamol.net/account-cleanup``: the controller adds it before creating anything; when the
User is deleted it deletes the account and its token Secret wherever they are and only then
removes the finalizer. A User whose group changes gets its account in the new namespace first and
loses the old one afterwards. Status records ``namespace``, ``serviceAccount``, ``tokenSecret``,
``observedGeneration`` and a ``Ready`` condition.

Group namespaces are collected by a second, equally level-based reconciler
(:class:`GroupNamespaceReconciler`): a namespace this controller created is deleted once no
ServiceAccount of this controller is left in it and no live User names its group. Keeping that
decision in one place, keyed by namespace, means two Users leaving a group at the same moment
cannot both decide "someone else is still here" and leak the namespace.

Least privilege, and token contents never reach a log: the controller never reads Secrets. It has
no ``get``, ``list`` or ``watch`` on secrets at all -- it creates the token Secret, or, when one of
that name exists, changes it only through a JSON patch whose first operation *tests* that the
Secret carries this User's uid label (so a Secret it does not own is never touched), and deletes
it only after the same test. A deleted token Secret therefore produces no event for this
controller; every User is re-checked every ``resync_seconds`` (default 300) instead. A deleted
ServiceAccount or namespace is noticed at once (ServiceAccounts are watched).

Conflicts are reported, never resolved by force: a ServiceAccount or Secret of the same name that
belongs to someone else (another User with the same name in the same group, or an object this
controller did not create) gives ``Ready=False`` reason ``AccountConflict`` and a Warning event.

NOT guaranteed: accounts whose User was removed while its finalizer was stripped by hand are not
found again (nothing points at them any more except their labels; delete by label
``app.kubernetes.io/managed-by=user-controller``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kctl_runtime.reconcile import Request
from kctl_runtime.resource import Resource

__all__ = [
    "FINALIZER",
    "MANAGED_BY",
    "NAMESPACE_PREFIX",
    "TOKEN_SECRET_TYPE",
    "USERS",
    "USER_ANNOTATION",
    "USER_UID_LABEL",
    "desired_namespace",
    "desired_service_account",
    "desired_token_secret",
    "group_namespace",
    "managed_labels",
    "token_secret_name",
    "user_of",
    "validate_user",
]

USERS = Resource("ch20.kiamol.net", "v1", "users", "User")
"""The User custom resource (see ``crd.yaml``)."""

FIELD_MANAGER = "user-controller"
"""The name written in ``managedFields`` and in the ``app.kubernetes.io/managed-by`` label."""

NAMESPACE_PREFIX = "kiamol-ch20-authn-"
FINALIZER = "ch20.kiamol.net/account-cleanup"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"

MANAGED_BY = ("app.kubernetes.io/managed-by", FIELD_MANAGER)
"""The label every object this controller creates carries (and the only ones it ever deletes)."""

USER_UID_LABEL = "ch20.kiamol.net/user-uid"
"""Label on a ServiceAccount / Secret: the uid of the User it belongs to."""

USER_ANNOTATION = "ch20.kiamol.net/user"
"""Annotation on a ServiceAccount / Secret: ``NAMESPACE/NAME`` of the User it belongs to."""

GROUP_LABEL = "ch20.kiamol.net/group"
EMAIL_ANNOTATION = "ch20.kiamol.net/email"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_GROUP = 63 - len(NAMESPACE_PREFIX)
_TOKEN_SUFFIX = "-token"


def group_namespace(group: str) -> str:
    """The namespace of a group's accounts."""
    return f"{NAMESPACE_PREFIX}{group}"


def token_secret_name(user_name: str) -> str:
    """The name of a user's token Secret."""
    return f"{user_name}{_TOKEN_SUFFIX}"


def managed_labels() -> dict[str, str]:
    """Labels on everything the controller creates: the book's ``kiamol: ch20`` and managed-by."""
    return {"kiamol": "ch20", MANAGED_BY[0]: MANAGED_BY[1]}


def validate_user(user: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``user`` beyond the CRD schema (or despite it); ``[]`` when valid. Never raises."""
    meta = user.get("metadata") or {}
    spec = user.get("spec")
    if not isinstance(spec, Mapping):
        return ["spec is missing"]
    problems: list[str] = []
    group = spec.get("group")
    if not isinstance(group, str) or not _DNS_LABEL.match(group) or len(group) > _MAX_GROUP:
        problems.append(
            f"spec.group {group!r} cannot name a namespace: use at most {_MAX_GROUP} lower-case "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    email = spec.get("email")
    if not isinstance(email, str) or email.count("@") != 1:
        problems.append(f"spec.email {email!r} is not an e-mail address")
    name = str(meta.get("name", ""))
    if len(token_secret_name(name)) > 253:
        problems.append(f"metadata.name is too long to name the token Secret {token_secret_name(name)!r}")
    return problems


def _back_reference(user: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    meta = user["metadata"]
    labels = {**managed_labels(), USER_UID_LABEL: meta["uid"]}
    annotations = {USER_ANNOTATION: f"{meta['namespace']}/{meta['name']}"}
    return labels, annotations


def desired_namespace(group: str) -> dict[str, Any]:
    """The group namespace, labelled so the namespace collector knows it created it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": group_namespace(group),
            "labels": {**managed_labels(), GROUP_LABEL: group},
        },
    }


def desired_service_account(user: Mapping[str, Any]) -> dict[str, Any]:
    """The user's ServiceAccount, in the group namespace; its token is never mounted into pods."""
    labels, annotations = _back_reference(user)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": user["metadata"]["name"],
            "namespace": group_namespace(user["spec"]["group"]),
            "labels": labels,
            "annotations": {**annotations, EMAIL_ANNOTATION: str(user["spec"].get("email", ""))},
        },
        "automountServiceAccountToken": False,
    }


def desired_token_secret(user: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret the token controller fills with a long-lived token for the user's account.

    It carries no ``data``: the token is written by the cluster, and this controller never reads it.
    """
    labels, annotations = _back_reference(user)
    name = user["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TOKEN_SECRET_TYPE,
        "metadata": {
            "name": token_secret_name(name),
            "namespace": group_namespace(user["spec"]["group"]),
            "labels": labels,
            "annotations": {**annotations, SA_NAME_ANNOTATION: name},
        },
    }


def user_of(obj: Mapping[str, Any]) -> Request | None:
    """The User an account object points back to (its ``ch20.kiamol.net/user`` annotation), if any."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    ref = annotations.get(USER_ANNOTATION)
    if not isinstance(ref, str):
        return None
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name:
        return None
    return Request(name=name, namespace=namespace)
