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
controller; every User's token Secret is re-checked at least every ``resync_seconds`` (default 300)
instead -- and only then: a reconcile within ``resync_seconds`` of this process proving the Secret
in place for the same namespace and ServiceAccount uid skips the check (so the echoes of our own
writes cost no request). A token Secret bound to an earlier ServiceAccount of the same name (the
``kubernetes.io/service-account.uid`` annotation differs) is replaced at once. A deleted
ServiceAccount or namespace is noticed at once (ServiceAccounts are watched).

Every reconcile that changes something records ONE Normal event naming all it did (reasons
``AccountCreated``, ``AccountMoved``, ``AccountRemoved``, ``TokenRequested``, ``NamespaceCreated``,
``AccountRepaired``). A reconcile that reads (from the cache) a User at a resourceVersion that this
process's own finalizer or status write replaced does nothing: that write's watch event reconciles
the User again.

Conflicts are reported, never resolved by force: a ServiceAccount or Secret of the same name that
belongs to someone else (another User with the same name in the same group, or an object this
controller did not create) gives ``Ready=False`` reason ``AccountConflict`` and a Warning event.

Typed: the reconciler reads the User from the cache as a dict (the cache keeps dicts) and parses
it into :class:`~examples.user_controller.api.User` (``User.from_object``, after the finalizer
step), so its field access is checked by ``mypy --strict``; status is written as a typed
:class:`~examples.user_controller.api.UserStatus` (``User.status_patch``: only what changed); the
children (Namespace, ServiceAccount, Secret) stay dicts, and so do the functions that run on every
cached User (the group index, the event predicates and mappers), which must never fail on an object.
A User that passed the CRD's schema but does not parse into the model -- stored before a schema
change, or a value only the model rejects (``spec.email`` holding a non-breaking space: the server's
Go regexp ``\\s`` is ASCII-only, the model's is Unicode) -- gets ``Ready=False`` reason
``InvalidSpec`` naming the bad fields (``InvalidObject`` when they are not in the spec) and one
Warning event (:func:`kctl_runtime.customresource.report_invalid`: once per problem and generation)
and ends in the parse error, a :class:`~kctl_runtime.reconcile.TerminalError`: one log line, not
retried until the User changes; the echo of that status write finds it reported and ends quietly.
Its account, if it has one, is left as it is. Cleanup does not need the model (it reads the uid,
name and namespace and ``status.namespace`` from the dict), so a User that does not parse is still
cleaned up when it is deleted.

NOT guaranteed: accounts whose User was removed while its finalizer was stripped by hand are not
found again (nothing points at them any more except their labels; delete by label
``app.kubernetes.io/managed-by=user-controller``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import structlog

from examples.user_controller.api import User
from kctl_runtime.client import Client
from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.controller import Controller, Watch
from kctl_runtime.customresource import InvalidObject, report_invalid, set_condition
from kctl_runtime.errors import AlreadyExists, Conflict, Invalid, NotFound
from kctl_runtime.finalizer import finalizer
from kctl_runtime.patch import pointer
from kctl_runtime.predicates import from_functions, label_selector, namespace_in
from kctl_runtime.reconcile import Request, RequeueAfter, TerminalError
from kctl_runtime.resource import NAMESPACES, SECRETS, SERVICEACCOUNTS

__all__ = [
    "FIELD_MANAGER",
    "FINALIZER",
    "LIVE_GROUP_FIELD",
    "MANAGED_BY",
    "NAMESPACE_PREFIX",
    "TOKEN_SECRET_TYPE",
    "USERS",
    "USER_ANNOTATION",
    "USER_UID_LABEL",
    "EventSink",
    "GroupNamespaceReconciler",
    "UserReconciler",
    "desired_namespace",
    "desired_service_account",
    "desired_token_secret",
    "group_namespace",
    "managed_labels",
    "token_secret_name",
    "user_controllers",
    "user_of",
    "validate_user",
]

_log = structlog.get_logger("examples.user_controller")

USERS = User.resource
"""The User custom resource, declared by the class in ``api.py``."""

FIELD_MANAGER = "user-controller"
"""The name written in ``managedFields`` and in the ``app.kubernetes.io/managed-by`` label."""

NAMESPACE_PREFIX = "kiamol-ch20-authn-"
FINALIZER = "ch20.kiamol.net/account-cleanup"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"  # set by the cluster's token controller

MANAGED_BY = ("app.kubernetes.io/managed-by", FIELD_MANAGER)
"""The label every object this controller creates carries (and the only ones it ever deletes)."""

USER_UID_LABEL = "ch20.kiamol.net/user-uid"
"""Label on a ServiceAccount / Secret: the uid of the User it belongs to."""

USER_ANNOTATION = "ch20.kiamol.net/user"
"""Annotation on a ServiceAccount / Secret: ``NAMESPACE/NAME`` of the User it belongs to."""

GROUP_LABEL = "ch20.kiamol.net/group"

LIVE_GROUP_FIELD = ".spec.group(live)"
"""The cache index of Users by group, for Users not being deleted (a made-up field)."""
EMAIL_ANNOTATION = "ch20.kiamol.net/email"

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


def validate_user(user: User) -> list[str]:
    """What is wrong with ``user`` that its model cannot express; ``[]`` when valid. Never raises.

    The group's shape and length (it must name a namespace) and the e-mail address are the model's
    (a User that breaks them does not parse); this checks what needs code.
    """
    name = user.metadata.name
    if len(token_secret_name(name)) > 253:
        return [f"metadata.name is too long to name the token Secret {token_secret_name(name)!r}"]
    return []


def _back_reference(user: User) -> tuple[dict[str, str], dict[str, str]]:
    meta = user.metadata
    labels = {**managed_labels(), USER_UID_LABEL: str(meta.uid)}
    annotations = {USER_ANNOTATION: f"{meta.namespace}/{meta.name}"}
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


def desired_service_account(user: User) -> dict[str, Any]:
    """The user's ServiceAccount, in the group namespace; its token is never mounted into pods."""
    labels, annotations = _back_reference(user)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": user.metadata.name,
            "namespace": group_namespace(user.spec.group),
            "labels": labels,
            "annotations": {**annotations, EMAIL_ANNOTATION: user.spec.email},
        },
        "automountServiceAccountToken": False,
    }


def desired_token_secret(user: User) -> dict[str, Any]:
    """The Secret the token controller fills with a long-lived token for the user's account.

    It carries no ``data``: the token is written by the cluster, and this controller never reads it.
    """
    labels, annotations = _back_reference(user)
    name = user.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TOKEN_SECRET_TYPE,
        "metadata": {
            "name": token_secret_name(name),
            "namespace": group_namespace(user.spec.group),
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


# ------------------------------------------------------------------------------------------ reconciler


class EventSink(Protocol):
    """What the reconcilers need of an event recorder (``manager.event_recorder(...)``)."""

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


_MANAGED_SELECTOR = f"{MANAGED_BY[0]}={MANAGED_BY[1]}"


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return bool(((obj.get("metadata") or {}).get("labels") or {}).get(USER_UID_LABEL) == uid)


def _metadata_drift(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The labels and annotations of ``desired`` that ``actual`` lacks or has different (a merge patch)."""
    patch: dict[str, Any] = {}
    for field in ("labels", "annotations"):
        have = (actual.get("metadata") or {}).get(field) or {}
        want = desired["metadata"].get(field) or {}
        changed = {k: v for k, v in want.items() if have.get(k) != v}
        if changed:
            patch[field] = changed
    return patch


@dataclass(frozen=True)
class _TokenCheck:
    """When this process last proved a User's token Secret in place, and for which account."""

    user_uid: str
    namespace: str
    account_uid: str
    at: float


class UserReconciler:
    """Keeps one User's account, token Secret and status in line with its spec (module doc).

    ``api_client`` is the raw kubernetes-asyncio client (for :func:`kctl_runtime.finalizer.finalizer`);
    ``client`` the manager's cache-reading client.
    """

    def __init__(
        self,
        client: Client,
        api_client: Any,
        events: EventSink,
        *,
        resync_seconds: float = 300.0,
        namespace: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if resync_seconds <= 0:
            raise ValueError("resync_seconds must be > 0: a deleted token Secret is only noticed on resync")
        self.client = client
        self.api_client = api_client
        self.events = events
        self.resync_seconds = resync_seconds
        self.namespace = namespace
        self.clock: Clock = clock or SystemClock()
        if client.cache is not None:  # _remove_accounts lists accounts by this label
            client.cache.index_label(SERVICEACCOUNTS, USER_UID_LABEL)
        # Secrets are not watched: the last proof of each User's token Secret, by User key. One
        # worker per key at a time (the queue's guarantee), so no two reconciles race on an entry.
        self._token_checks: dict[Request, _TokenCheck] = {}
        # resourceVersions of each User that our own writes replaced: a cached User at one of them
        # is older than what we wrote, and the watch event of that write reconciles it again
        self._superseded: dict[Request, set[str]] = {}
        # uids of token Secrets this process created or proved to be a User's, by User key and
        # namespace: removing one is then a single delete conditional on that uid
        self._secret_uids: dict[Request, dict[str, str]] = {}

    async def reconcile(self, request: Request) -> RequeueAfter | None:
        if self.namespace is not None and request.namespace != self.namespace:
            return None  # an account pointing at a User outside our scope: not ours to manage
        try:
            user = await self.client.get(USERS, request.name, request.namespace)
        except NotFound:
            self._token_checks.pop(request, None)
            self._secret_uids.pop(request, None)
            self._superseded.pop(request, None)
            return None
        read_rv = str(user["metadata"].get("resourceVersion"))
        if read_rv in self._superseded.get(request, ()):
            # The cache has not caught up with our own last write to this User (its finalizer or
            # status): acting on it would only earn a 409. That write's event brings us back.
            _log.debug("cache behind our own write; waiting for its event", resource_version=read_rv)
            return None
        self._superseded.pop(request, None)

        # --8<-- [start:apply]
        async def apply(stored: dict[str, Any]) -> RequeueAfter | TerminalError | None:
            if str(stored["metadata"].get("resourceVersion")) != read_rv:
                self._supersede(request, read_rv)  # finalizer() added the finalizer on read_rv
            try:
                parsed = User.from_object(stored)  # the dict as stored, finalizer included
            except InvalidObject as exc:
                return await self._unparseable(request, stored, exc)
            return await self._apply(request, parsed)  # typed from here on

        # --8<-- [end:apply]

        outcome = await finalizer(
            self.api_client,
            USERS,
            user,
            FINALIZER,
            apply=apply,
            cleanup=self._cleanup,
            field_manager=FIELD_MANAGER,
            # the finalizer is stored before apply runs either way; going on at once saves a trip
            # through the watch and the queue per new User
            then_apply=True,
        )
        if isinstance(outcome, TerminalError):
            # Returned, not raised, through finalizer(): it wraps exceptions from apply in ApplyFailed,
            # which the controller would retry.
            raise outcome
        return outcome

    # ----------------------------------------------------------------------------------- apply

    async def _apply(self, key: Request, user: User) -> RequeueAfter | TerminalError | None:
        problems = validate_user(user)
        if problems:
            message = "; ".join(problems)
            await self._not_ready(key, user, "InvalidSpec", message, warn=True)
            return TerminalError(f"invalid User: {message}")
        uid = str(user.metadata.uid)
        group = user.spec.group
        namespace = group_namespace(group)
        done: list[str] = []  # what this reconcile changed: one event says it all

        ready = await self._ensure_namespace(group, done)
        if not ready:
            await self._not_ready(
                key, user, "NamespaceTerminating", f"namespace {namespace} is being deleted"
            )
            return RequeueAfter(2.0)
        conflict, account_uid = await self._ensure_service_account(user, done)
        next_check = self.resync_seconds
        if conflict is None:
            conflict, next_check = await self._token_secret_in_place(key, user, account_uid, done)
        if conflict is not None:
            self._report(user, done)
            await self._not_ready(key, user, "AccountConflict", conflict, warn=True)
            return RequeueAfter(self.resync_seconds)
        await self._remove_accounts(key, uid, user.status.namespace, keep=namespace, done=done)

        name = user.metadata.name
        generation = user.metadata.generation
        status = user.status
        status.namespace, status.service_account = namespace, name
        status.token_secret = token_secret_name(name)
        set_condition(
            status.conditions,
            type="Ready",
            status="True",
            reason="AccountReady",
            message=f"ServiceAccount {namespace}/{name} and its token Secret {token_secret_name(name)} exist",
            observed_generation=generation,
            now=self.clock.now(),
        )
        status.observed_generation = generation
        await self._patch_status(key, user)
        self._report(user, done)
        _log.debug("user account in place", user_uid=uid, account_namespace=namespace)
        return RequeueAfter(next_check)

    async def _unparseable(
        self, key: Request, obj: Mapping[str, Any], error: InvalidObject
    ) -> InvalidObject | None:
        """A User the model refuses: ``Ready=False`` and one Warning event, once per problem and
        generation; its account is left as it is. The error (terminal: one log line) only when it
        was reported now, so the echo of that status write logs nothing again."""
        reported = await report_invalid(
            self.client,
            USERS,
            obj,
            error,
            events=self.events,
            now=self.clock.now(),
            field_manager=FIELD_MANAGER,
        )
        if not reported:
            return None
        self._supersede(key, str(obj["metadata"]["resourceVersion"]))
        return error

    def _report(self, user: User | Mapping[str, Any], done: list[str]) -> None:
        """One Normal event (and one log line) for everything a reconcile changed, if anything."""
        if not done:
            return
        reason = _event_reason(done)
        message = "; ".join(done)
        self.events.event(user.to_object() if isinstance(user, User) else user, "Normal", reason, message)
        _log.info(message, reason=reason)

    async def _ensure_namespace(self, group: str, done: list[str]) -> bool:
        """Create the group namespace if needed; ``False`` while it is terminating."""
        desired = desired_namespace(group)
        name = desired["metadata"]["name"]
        try:
            existing = await self.client.get(NAMESPACES, name)
        except NotFound:
            try:
                await self.client.create(NAMESPACES, desired, field_manager=FIELD_MANAGER)
            except AlreadyExists:
                return True
            done.append(f"created namespace {name}")
            return True
        return not (existing.get("metadata") or {}).get("deletionTimestamp")

    async def _ensure_service_account(self, user: User, done: list[str]) -> tuple[str | None, str]:
        """Create or repair the account: ``(conflict message or None, the account's uid)``."""
        desired = desired_service_account(user)
        meta = desired["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        try:
            actual = await self.client.get(SERVICEACCOUNTS, meta["name"], meta["namespace"])
        except NotFound:
            try:
                created = await self.client.create(SERVICEACCOUNTS, desired, field_manager=FIELD_MANAGER)
            except AlreadyExists:
                # ours, created by an earlier reconcile and not in the cache yet -- or someone
                # else's: the API says which (rare: the cache normally has our own account)
                actual = await self.client.api.get(SERVICEACCOUNTS, meta["name"], meta["namespace"])
            else:
                done.append(f"created ServiceAccount {where}")
                return None, str(created["metadata"]["uid"])
        account_uid = str(actual["metadata"]["uid"])
        if not _owned_by(actual, str(user.metadata.uid)):
            owner = ((actual.get("metadata") or {}).get("annotations") or {}).get(USER_ANNOTATION)
            return (
                f"ServiceAccount {where} already exists and belongs to "
                f"{'User ' + owner if owner else 'someone else'}"
            ), account_uid
        patch: dict[str, Any] = {}
        metadata = _metadata_drift(actual, desired)
        if metadata:
            patch["metadata"] = metadata
        if actual.get("automountServiceAccountToken") is not False:
            patch["automountServiceAccountToken"] = False
        if patch:
            # Conditional on what we read: a concurrent edit makes this fail (409) and retry.
            patch.setdefault("metadata", {})["resourceVersion"] = actual["metadata"]["resourceVersion"]
            await self.client.patch(
                SERVICEACCOUNTS, meta["name"], patch, namespace=meta["namespace"], field_manager=FIELD_MANAGER
            )
            done.append(f"repaired ServiceAccount {where}")
        return None, account_uid

    async def _token_secret_in_place(
        self, key: Request, user: User, account_uid: str, done: list[str]
    ) -> tuple[str | None, float]:
        """Check (or skip checking) the token Secret: ``(conflict or None, seconds to the next check)``.

        The check costs requests (Secrets are not cached), so it is skipped while this process
        proved the Secret in place for the same User, namespace and account less than
        ``resync_seconds`` ago; the reconcile then asks to run again when that proof expires. Echo
        reconciles of our own writes (status, finalizer, the account's events) therefore send
        nothing, and a Secret deleted by hand is still back within ``resync_seconds``.
        """
        uid = str(user.metadata.uid)
        namespace = group_namespace(user.spec.group)
        now = self.clock.monotonic()
        last = self._token_checks.get(key)
        if (
            last is not None
            and last.user_uid == uid
            and last.namespace == namespace
            and last.account_uid == account_uid
            and now - last.at < self.resync_seconds
        ):
            return None, self.resync_seconds - (now - last.at)
        self._token_checks.pop(key, None)
        conflict = await self._ensure_token_secret(key, user, account_uid, done)
        if conflict is None:
            self._token_checks[key] = _TokenCheck(uid, namespace, account_uid, now)
        return conflict, self.resync_seconds

    async def _owned_secret(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        """The Secret, if it exists and carries ``uid``'s label, proven by a JSON patch of ``test``s only.

        This writes nothing; it is how the controller checks ownership without ``get`` on secrets.
        The answer holds the Secret's data: it is used for its metadata only and never logged.
        """
        ops = [{"op": "test", "path": pointer("metadata", "labels", USER_UID_LABEL), "value": uid}]
        try:
            return await self.client.patch(
                SECRETS, name, ops, namespace=namespace, patch_type="json", field_manager=FIELD_MANAGER
            )
        except NotFound:
            return None
        except Invalid:
            raise _NotOurs from None

    async def _ensure_token_secret(
        self, key: Request, user: User, account_uid: str, done: list[str]
    ) -> str | None:
        desired = desired_token_secret(user)
        meta = desired["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        try:
            created = await self.client.create(SECRETS, desired, field_manager=FIELD_MANAGER)
        except AlreadyExists:
            pass
        else:
            self._remember_secret(key, created)
            done.append(f"created token Secret {where}")
            return None
        try:
            actual = await self._owned_secret(meta["namespace"], meta["name"], str(user.metadata.uid))
        except _NotOurs:
            return f"Secret {where} already exists and does not belong to this User"
        if actual is None:
            raise NotFound(404, "NotFound", "token Secret vanished between create and check; retrying")
        if actual.get("type") != TOKEN_SECRET_TYPE:
            return f"Secret {where} is of type {actual.get('type')!r}"
        bound_to = ((actual.get("metadata") or {}).get("annotations") or {}).get(SA_UID_ANNOTATION)
        if bound_to and bound_to != account_uid:
            # A token of an earlier account of this name (deleted and made again): the token
            # controller deletes such a Secret. Replace it now instead of finding it gone later.
            await self.client.delete(
                SECRETS,
                meta["name"],
                namespace=meta["namespace"],
                preconditions={"uid": actual["metadata"]["uid"]},
                ignore_not_found=True,
            )
            created = await self.client.create(SECRETS, desired, field_manager=FIELD_MANAGER)
            self._remember_secret(key, created)
            done.append(f"replaced token Secret {where} (it held an earlier account's token)")
            return None
        self._remember_secret(key, actual)
        metadata = _metadata_drift(actual, desired)
        if metadata:
            metadata["resourceVersion"] = actual["metadata"]["resourceVersion"]
            await self.client.patch(
                SECRETS,
                meta["name"],
                {"metadata": metadata},
                namespace=meta["namespace"],
                field_manager=FIELD_MANAGER,
            )
            done.append(f"repaired token Secret {where}")
        return None

    def _remember_secret(self, key: Request, secret: Mapping[str, Any]) -> None:
        meta = secret["metadata"]
        self._secret_uids.setdefault(key, {})[meta["namespace"]] = meta["uid"]

    async def _delete_token_secret(self, key: Request, uid: str, namespace: str) -> None:
        """Delete the User's token Secret in ``namespace`` if it is the User's (never another's)."""
        name = token_secret_name(key.name)
        known = self._secret_uids.get(key, {}).pop(namespace, None)
        if known is not None:
            # created or proved ours by this process: the uid precondition makes one delete safe
            try:
                await self.client.delete(
                    SECRETS, name, namespace=namespace, preconditions={"uid": known}, ignore_not_found=True
                )
                return
            except Conflict:
                pass  # replaced since: prove the one there now
        try:
            secret = await self._owned_secret(namespace, name, uid)
        except _NotOurs:
            return
        if secret is None:
            return
        await self.client.delete(
            SECRETS,
            name,
            namespace=namespace,
            preconditions={"uid": secret["metadata"]["uid"]},
            ignore_not_found=True,
        )

    async def _remove_accounts(
        self, key: Request, uid: str, recorded: str | None, *, keep: str | None, done: list[str]
    ) -> None:
        """Delete the accounts and token Secrets of the User ``key`` (uid ``uid``) in every namespace
        but ``keep``: where the uid label finds them, and in ``recorded`` (its ``status.namespace``).

        In each namespace the token Secret and the account are deleted concurrently (neither
        depends on the other; the token controller would delete the Secret of a deleted account
        anyway)."""
        name = key.name
        # served by the cache's index on the uid label (UserReconciler registers it)
        accounts = await self.client.list(SERVICEACCOUNTS, label_selector=f"{USER_UID_LABEL}={uid}")
        namespaces = {a["metadata"]["namespace"]: a for a in accounts}
        if recorded:
            namespaces.setdefault(recorded, {})
        for namespace, account in sorted(namespaces.items()):
            if namespace == keep:
                continue
            work: list[Callable[[], Awaitable[object]]] = [
                functools.partial(self._delete_token_secret, key, uid, namespace)
            ]
            if account:
                work.append(
                    functools.partial(
                        self.client.delete,
                        SERVICEACCOUNTS,
                        account["metadata"]["name"],
                        namespace=namespace,
                        preconditions={"uid": account["metadata"]["uid"]},
                        ignore_not_found=True,
                    )
                )
            await _concurrently(work)
            if account:
                done.append(f"removed ServiceAccount {namespace}/{name}")

    # --------------------------------------------------------------------------------- cleanup

    async def _cleanup(self, user: dict[str, Any]) -> None:
        """The User is being deleted: remove its accounts everywhere (idempotent).

        Works on the dict, not the model: a User being deleted is cleaned up even if it does not
        parse. It needs the metadata (always valid: the API server checks it) and
        ``status.namespace``, read defensively."""
        meta = user["metadata"]
        key = Request(meta["name"], meta["namespace"])
        status = user.get("status")
        recorded = status.get("namespace") if isinstance(status, Mapping) else None
        done: list[str] = []
        self._token_checks.pop(key, None)
        await self._remove_accounts(
            key, str(meta["uid"]), recorded if isinstance(recorded, str) else None, keep=None, done=done
        )
        self._report(user, done)

    # ---------------------------------------------------------------------------------- status

    async def _not_ready(
        self, key: Request, user: User, reason: str, message: str, *, warn: bool = False
    ) -> None:
        """Ready=False with ``reason``; with ``warn``, one Warning event per generation and message."""
        generation = user.metadata.generation
        status = user.status
        changed = set_condition(
            status.conditions,
            type="Ready",
            status="False",
            reason=reason,
            message=message,
            observed_generation=generation,
            now=self.clock.now(),
        )
        status.observed_generation = generation
        await self._patch_status(key, user)
        if warn and changed:
            self.events.event(user.to_object(), "Warning", reason, message)

    def _supersede(self, key: Request, resource_version: str) -> None:
        self._superseded.setdefault(key, set()).add(resource_version)

    async def _patch_status(self, key: Request, user: User) -> None:
        """Merge-patch the status subresource with what changed since it was read, if anything.

        Conditional on the resourceVersion read (``status_patch`` adds it): a stale (ex-leader's)
        write gets a 409."""
        patch = user.status_patch()
        if not patch:
            return
        await self.client.patch(
            USERS,
            user.metadata.name,
            patch,
            namespace=user.metadata.namespace,
            subresource="status",
            field_manager=FIELD_MANAGER,
        )
        self._supersede(key, str(user.metadata.resource_version))


async def _concurrently(calls: Sequence[Callable[[], Awaitable[object]]]) -> None:
    """Run ``calls`` at once; when any fails, raise the first failure itself (not a group)."""
    failures: list[BaseException] = []

    async def run(call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except Exception as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(run, call)
    if failures:
        raise failures[0]


_REASONS = (  # the first that fits names the event of a reconcile
    (("created ServiceAccount", "removed ServiceAccount"), "AccountMoved"),
    (("created ServiceAccount",), "AccountCreated"),
    (("removed ServiceAccount",), "AccountRemoved"),
    (("created token Secret",), "TokenRequested"),
    (("replaced token Secret",), "TokenRequested"),
    (("created namespace",), "NamespaceCreated"),
)


def _event_reason(done: list[str]) -> str:
    for prefixes, reason in _REASONS:
        if all(any(d.startswith(p) for d in done) for p in prefixes):
            return reason
    return "AccountRepaired"


class _NotOurs(Exception):
    """A Secret of the expected name exists but lacks the User's uid label."""


# ------------------------------------------------------------------------------ namespace collector


class GroupNamespaceReconciler:
    """Deletes a group namespace this controller created once nothing in it is a user's any more.

    A namespace (request name) is deleted when all of these hold: it carries the controller's
    managed-by label and is not already terminating; no User that is not being deleted names its
    group (read from the cache: a User just created is there before its own reconcile runs); and the
    API -- not the cache, because this is irreversible -- lists no ServiceAccount of this controller
    in it. The delete is conditional on the namespace's uid.

    With a cache, "a live User names the group" is one lookup in the cache's index
    :data:`LIVE_GROUP_FIELD` (registered here), not a scan of every User.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._indexed = client.cache is not None
        if client.cache is not None:
            client.cache.index_field(USERS, LIVE_GROUP_FIELD, _live_group)

    async def reconcile(self, request: Request) -> RequeueAfter | None:
        try:
            namespace = await self.client.get(NAMESPACES, request.name)
        except NotFound:
            return None
        meta = namespace.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY[0]) != MANAGED_BY[1] or meta.get("deletionTimestamp"):
            return None
        group = labels.get(GROUP_LABEL)
        if self._indexed:
            if await self.client.list(USERS, field_selector=f"{LIVE_GROUP_FIELD}={group}", limit=1):
                return None
        elif any(group in _live_group(user) for user in await self.client.list(USERS)):
            return None
        accounts = await self.client.api.list(
            SERVICEACCOUNTS, namespace=request.name, label_selector=_MANAGED_SELECTOR
        )
        if accounts:
            return None
        await self.client.delete(
            NAMESPACES, request.name, preconditions={"uid": meta["uid"]}, ignore_not_found=True
        )
        _log.info("deleted empty group namespace", account_namespace=request.name, group=group)
        return None


# -------------------------------------------------------------------------------------------- wiring


def _live_group(user: dict[str, Any]) -> list[str]:
    """Index function: the group of a User that is not being deleted."""
    if (user.get("metadata") or {}).get("deletionTimestamp"):
        return []
    group = (user.get("spec") or {}).get("group")
    return [group] if isinstance(group, str) and group else []


def _membership_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A User update that can change who is in a group: its group, or the start of its deletion."""
    return (old.get("spec") or {}).get("group") != (new.get("spec") or {}).get("group") or bool(
        (old.get("metadata") or {}).get("deletionTimestamp")
    ) != bool((new.get("metadata") or {}).get("deletionTimestamp"))


def _user_of_account(obj: dict[str, Any]) -> list[Request]:
    request = user_of(obj)
    return [request] if request is not None else []


def _namespace_of_account(obj: dict[str, Any]) -> list[Request]:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [Request(namespace)] if namespace and str(namespace).startswith(NAMESPACE_PREFIX) else []


def _namespace_of_user(obj: dict[str, Any]) -> list[Request]:
    group = (obj.get("spec") or {}).get("group")
    if not isinstance(group, str) or not group:
        return []
    return [Request(group_namespace(group))]


def user_controllers(
    client: Client,
    api_client: Any,
    events: EventSink,
    *,
    namespace: str | None = None,
    resync_seconds: float = 300.0,
    clock: Clock | None = None,
    max_concurrent_reconciles: int = 1,
) -> list[Controller]:
    """The two controllers of this example, ready for ``manager.add`` (on a manager WITHOUT a namespace).

    ``namespace`` limits which Users are served. It is applied as a predicate and a check in the
    reconciler, not as an informer scope, because the accounts live in group namespaces anywhere in
    the cluster and must be watched cluster-wide either way (a controller's ``namespace`` would
    scope its watches too).

    * ``user`` -- Users (optionally only in ``namespace``) and the ServiceAccounts pointing back to
      them; no predicate on Users: every change reconciles (a status edited by hand is put back).
      The echoes of our own writes cost no request (reads come from the cache, and the token
      Secret is re-checked only every ``resync_seconds``).
    * ``user-namespace`` -- the group namespaces this controller created, woken by their accounts and
      by Users joining (created, group changed) or leaving (group changed, deleting, deleted) the
      group; other User updates (status, finalizers) cannot change a group's membership.

    ``max_concurrent_reconciles`` applies to each (``--workers``); the queue never hands one key to
    two workers, so a User or a group namespace is still reconciled by one worker at a time.
    """
    managed = label_selector(_MANAGED_SELECTOR)
    scope = [namespace_in(namespace)] if namespace is not None else []
    reconciler = UserReconciler(
        client, api_client, events, resync_seconds=resync_seconds, namespace=namespace, clock=clock
    )
    return [
        Controller(
            "user",
            for_=USERS,
            reconciler=reconciler,
            watches=[Watch(SERVICEACCOUNTS, _user_of_account, predicates=[managed])],
            predicates=scope,
            clock=clock,
            max_concurrent_reconciles=max_concurrent_reconciles,
        ),
        Controller(
            "user-namespace",
            for_=NAMESPACES,
            reconciler=GroupNamespaceReconciler(client),
            watches=[
                Watch(SERVICEACCOUNTS, _namespace_of_account, predicates=[managed]),
                Watch(
                    USERS,
                    _namespace_of_user,
                    predicates=[from_functions(update=_membership_changed)],
                ),
            ],
            predicates=[managed],
            clock=clock,
            max_concurrent_reconciles=max_concurrent_reconciles,
        ),
    ]
