"""Dynamic admission for the fake API server: it calls the registered webhooks over HTTPS on writes.

Contract
--------
:class:`Admission` reads the stored ``admissionregistration.k8s.io/v1``
``MutatingWebhookConfiguration`` and ``ValidatingWebhookConfiguration`` objects on every write and,
like kube-apiserver's webhook admission plugins:

* selects the webhooks whose ``rules`` match (``operations``, ``apiGroups``, ``apiVersions``,
  ``resources`` with ``*``, ``*/*``, ``res/sub`` and ``*/sub`` forms, ``scope``), whose
  ``namespaceSelector`` matches the labels of the object's namespace (of the Namespace itself for
  namespaces; ignored for other cluster-scoped resources) and whose ``objectSelector`` matches the
  labels of the new or the old object;
* calls the mutating webhooks first, one after another in configuration-name order, each seeing the
  previous one's patched object, then re-validates the result through the registry, then calls the
  validating webhooks with the final object (in order here; kube-apiserver calls them in parallel,
  which no webhook can observe);
* POSTs an ``admission.k8s.io/v1`` AdmissionReview through :func:`.webhookcall.post_review`
  (``clientConfig.url`` with ``?timeout=Ns``, TLS verified against ``clientConfig.caBundle``), with
  ``timeoutSeconds`` (default 10) as the whole call's deadline;
* a denial becomes the real error: ``admission webhook "NAME" denied the request: MESSAGE`` with the
  webhook's code (at least 400) and reason; warnings become ``Warning`` headers; a failed call
  (refused, TLS, timeout, bad answer) with ``failurePolicy: Fail`` (the default) is a 500
  ``Internal error occurred: failed calling webhook "NAME": failed to call webhook: ...`` and with
  ``Ignore`` is skipped;
* dry-run requests reach the webhooks with ``dryRun: true``: admissionregistration/v1 accepts only
  ``sideEffects`` ``None`` and ``NoneOnDryRun`` (422 otherwise, checked on create as kube-apiserver
  words it), so every webhook supports dry run.

The write itself: the registry computes the object as a dry run, the webhooks see that object
(``oldObject`` on UPDATE and DELETE), and the admitted object is written with the stored
``resourceVersion`` as a precondition; if another write landed while the webhooks ran, the whole
admission is redone (as kube-apiserver's update retry does), up to five times.

Not implemented (the webhooks are not called, or the field is ignored): ``clientConfig.service``
(no Service network here: such a call fails per its failure policy), ``matchConditions`` (CEL),
``matchPolicy: Equivalent`` across versions, ``reinvocationPolicy: IfNeeded``, CONNECT,
DELETE of collections, the ``v1beta1`` review version.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .discovery import ResourceType
from .errors import ApiError, invalid, status_body
from .patch import PatchError, json_patch
from .selectors import SelectorError, label_selector_from_dict
from .storage import Storage
from .webhookcall import InvalidWebhookResponse, WebhookCallFailed, post_review

__all__ = ["Admission", "Attributes", "default_webhook_configuration"]

MUTATING = "admissionregistration.k8s.io/mutatingwebhookconfigurations"
VALIDATING = "admissionregistration.k8s.io/validatingwebhookconfigurations"
_MAX_ATTEMPTS = 5
_OPTIONS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
#: who the fake says made every request (it does not authenticate)
USER_INFO = {"username": "kctl-fake-admin", "groups": ["system:masters", "system:authenticated"]}


def default_webhook_configuration(obj: dict[str, Any], *, mutating: bool) -> None:
    """The defaults kube-apiserver's admissionregistration/v1 defaulting applies to each webhook,
    and its check of ``sideEffects`` (422)."""
    causes: list[dict[str, str]] = []
    for index, hook in enumerate(obj.get("webhooks") or ()):
        if not isinstance(hook, dict):
            continue
        side_effects = hook.get("sideEffects")
        if side_effects is None:
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: must specify one of None, NoneOnDryRun",
                    "field": f"webhooks[{index}].sideEffects",
                }
            )
        elif side_effects not in ("None", "NoneOnDryRun"):
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "message": f'Unsupported value: "{side_effects}": '
                    'supported values: "None", "NoneOnDryRun"',
                    "field": f"webhooks[{index}].sideEffects",
                }
            )
        hook.setdefault("failurePolicy", "Fail")
        hook.setdefault("matchPolicy", "Equivalent")
        hook.setdefault("namespaceSelector", {})
        hook.setdefault("objectSelector", {})
        hook.setdefault("timeoutSeconds", 10)
        if mutating:
            hook.setdefault("reinvocationPolicy", "Never")
        for rule in hook.get("rules") or ():
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")
        service = (hook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            service.setdefault("port", 443)
    if causes:
        kind = "MutatingWebhookConfiguration" if mutating else "ValidatingWebhookConfiguration"
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise invalid(kind, "admissionregistration.k8s.io", name, causes)


@dataclass(frozen=True)
class Attributes:
    """What is being admitted."""

    operation: str  # CREATE, UPDATE, DELETE
    rt: ResourceType
    namespace: str
    name: str
    subresource: str
    dry_run: bool


@dataclass(frozen=True)
class _Hook:
    name: str
    config: dict[str, Any]
    mutating: bool


class Admission:
    """The webhook admission chain of one fake API server (module doc)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        #: AdmissionReviews sent, in order (for tests of the fake itself)
        self.calls = 0

    def _hooks(self, key: str, mutating: bool) -> list[_Hook]:
        hooks: list[_Hook] = []
        for stored in sorted(self.storage.snapshot(key, None), key=lambda s: s.name):
            for hook in stored.obj.get("webhooks") or ():
                if isinstance(hook, dict):
                    hooks.append(_Hook(str(hook.get("name", "")), hook, mutating))
        return hooks

    def candidates(self, attrs: Attributes) -> list[_Hook]:
        """Webhooks whose rules match (selectors are checked later, against the objects)."""
        hooks = self._hooks(MUTATING, True) + self._hooks(VALIDATING, False)
        return [h for h in hooks if any(_rule_matches(r, attrs) for r in h.config.get("rules") or ())]

    async def admit(
        self,
        attrs: Attributes,
        compute: Callable[[bool], dict[str, Any]],
        commit: Callable[[dict[str, Any], bool], dict[str, Any]],
        old: Callable[[], dict[str, Any] | None],
        warnings: list[str],
    ) -> dict[str, Any]:
        """Run the write with admission: ``compute(dry_run)`` is the plain write (used as is when no
        webhook matches), ``commit(obj, dry_run)`` writes the admitted object, ``old()`` reads the
        stored object. Webhook warnings are appended to ``warnings``."""
        hooks = self.candidates(attrs)
        if not hooks:
            return compute(attrs.dry_run)
        for attempt in range(_MAX_ATTEMPTS):
            previous = old()
            obj = None if attrs.operation == "DELETE" else compute(True)
            for hook in hooks:
                if hook.mutating and self._selected(hook, attrs, obj, previous):
                    obj = await self._call(hook, attrs, obj, previous, warnings)
            if obj is not None and any(h.mutating for h in hooks):
                obj = commit(obj, True)  # the registry validates and defaults what the webhooks made
            for hook in hooks:
                if not hook.mutating and self._selected(hook, attrs, obj, previous):
                    await self._call(hook, attrs, obj, previous, warnings)
            try:
                return commit(obj if obj is not None else {}, attrs.dry_run)
            except ApiError as exc:
                if exc.code != 409 or attempt == _MAX_ATTEMPTS - 1 or attrs.operation != "UPDATE":
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _selected(
        self, hook: _Hook, attrs: Attributes, obj: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> bool:
        config = hook.config
        try:
            object_selector = label_selector_from_dict(config.get("objectSelector") or {})
            namespace_selector = label_selector_from_dict(config.get("namespaceSelector") or {})
        except SelectorError:
            return False
        if not object_selector.empty and not any(
            o is not None and object_selector.matches((o.get("metadata") or {}).get("labels"))
            for o in (obj, old)
        ):
            return False
        if namespace_selector.empty:
            return True
        if attrs.rt.plural == "namespaces" and not attrs.rt.custom:
            labels = ((obj or old or {}).get("metadata") or {}).get("labels")
            return namespace_selector.matches(labels)
        if not attrs.rt.namespaced:
            return True
        namespace = self.storage.get("/namespaces", "", attrs.namespace)
        labels = namespace.obj["metadata"].get("labels") if namespace is not None else None
        return namespace_selector.matches(labels)

    async def _call(
        self,
        hook: _Hook,
        attrs: Attributes,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        warnings: list[str],
    ) -> dict[str, Any] | None:
        config = hook.config
        try:
            response = await self._post(hook, attrs, obj, old)
        except _CallFailed as exc:
            if config.get("failurePolicy", "Fail") == "Ignore":
                return obj
            message = f'failed calling webhook "{hook.name}": {exc}'
            raise ApiError(
                status_body(
                    500,
                    "InternalError",
                    f"Internal error occurred: {message}",
                    details={"causes": [{"message": message}]},
                )
            ) from None
        warnings.extend(str(w) for w in response.get("warnings") or ())
        if not response.get("allowed"):
            raise _denied(hook.name, response.get("status") or {})
        patch = response.get("patch")
        if not hook.mutating or not patch or obj is None:
            return obj
        try:
            ops = orjson.loads(base64.b64decode(patch))
            return json_patch(obj, ops)
        except (ValueError, PatchError) as exc:
            message = f'failed calling webhook "{hook.name}": received invalid webhook response: {exc}'
            raise ApiError(status_body(500, "InternalError", f"Internal error occurred: {message}")) from None

    async def _post(
        self, hook: _Hook, attrs: Attributes, obj: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        config = hook.config
        timeout = int(config.get("timeoutSeconds") or 10)
        rt = attrs.rt
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "resource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "requestKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "requestResource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "name": attrs.name,
            "operation": attrs.operation,
            "userInfo": USER_INFO,
            "object": obj,
            "oldObject": old if attrs.operation != "CREATE" else None,
            "dryRun": attrs.dry_run,
            "options": {"kind": _OPTIONS[attrs.operation], "apiVersion": "meta.k8s.io/v1"},
        }
        if attrs.dry_run:
            request["options"]["dryRun"] = ["All"]
        if attrs.namespace and rt.namespaced:
            request["namespace"] = attrs.namespace
        if attrs.subresource:
            request["subResource"] = attrs.subresource
            request["requestSubResource"] = attrs.subresource
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        self.calls += 1
        try:
            response = await post_review(config.get("clientConfig") or {}, review, timeout)
        except InvalidWebhookResponse as exc:
            raise _CallFailed(str(exc)) from None
        except WebhookCallFailed as exc:
            raise _CallFailed(f"failed to call webhook: {exc}") from None
        if response.get("uid") != request["uid"]:
            raise _CallFailed(f"expected response.uid={request['uid']!r}, got {response.get('uid')!r}")
        return response


class _CallFailed(Exception):
    pass


def _denied(name: str, status: dict[str, Any]) -> ApiError:
    """webhookerrors.ToStatusErr: the webhook's Status, its message prefixed, code at least 400."""
    denied_by = f'admission webhook "{name}" denied the request'
    code = int(status.get("code") or 0)
    code = max(code, 400)
    if status.get("message"):
        message = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied_by}: {status['reason']}"
    else:
        message = f"{denied_by} without explanation"
    return ApiError(
        status_body(code, status.get("reason") or "", message, details=status.get("details") or None)
    )


def _rule_matches(rule: Any, attrs: Attributes) -> bool:
    if not isinstance(rule, dict):
        return False
    rt = attrs.rt

    def has(values: Any, value: str) -> bool:
        return isinstance(values, list) and ("*" in values or value in values)

    if not has(rule.get("operations"), attrs.operation):
        return False
    if not has(rule.get("apiGroups"), rt.group) or not has(rule.get("apiVersions"), rt.version):
        return False
    scope = rule.get("scope", "*")
    namespaced = rt.namespaced and not (rt.plural == "namespaces" and not rt.custom)
    if (scope == "Cluster" and namespaced) or (scope == "Namespaced" and not namespaced):
        return False
    resources = rule.get("resources")
    if not isinstance(resources, list):
        return False
    for entry in resources:
        if entry == "*/*":
            return True
        res, _, sub = str(entry).partition("/")
        if (res in ("*", rt.plural)) and (sub == attrs.subresource or (sub == "*" and attrs.subresource)):
            return True
    return False
