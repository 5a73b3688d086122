"""The API semantics of the fake server, independent of HTTP: create / update / patch / delete.

Contract
--------
:class:`Cluster` owns the :class:`~.storage.Storage`, the :class:`~.discovery.Registry` and the
:class:`~.watch.WatchHub`, and implements each verb the way kube-apiserver's generic registry does:

* create: type-meta checks (400, worded like the real decoder), namespace defaulting and mismatch
  (400), missing namespace (404) and terminating namespace (403) before anything else (as admission
  runs first), ``generateName`` (5 random characters), ObjectMeta validation (name, labels,
  annotation keys, finalizer names, owner references: 422), uid / creationTimestamp /
  ``generation: 1`` for kinds that track it, status dropped for kinds with a status subresource,
  custom-resource defaulting / pruning / validation (422; unknown fields per ``fieldValidation``),
  ``managedFields`` for the request's field manager, ``AlreadyExists`` (409).
* update: optimistic concurrency on ``metadata.resourceVersion`` (409 with the real message; an
  update without resourceVersion is unconditional for built-ins, a 422 for custom resources),
  custom-resource status writes defaulted, pruned and validated against the schema, built-in
  field types, immutability and sizes checked by :mod:`.validation`, system metadata kept from
  the stored object,
  main-resource writes ignore ``status`` and status writes change only ``status``, ``generation``
  bumped on spec change only (Deployments: also on annotation change), a PUT body's ``uid`` is a
  precondition (409), no-op updates do not write, an object being deleted is removed when its last
  finalizer goes, and new finalizers cannot be added to it (422); an apps/v1 Deployment's
  ``spec.selector`` is immutable (422).
* delete: preconditions (409, the registry's wording), propagation policies (``Orphan`` /
  ``Foreground`` add the ``orphan`` / ``foregroundDeletion`` finalizers that the garbage collector in
  :mod:`.gc` honours; batch/v1 Jobs default to ``Orphan`` with kube-apiserver's warning), finalizers
  keep the object with ``deletionTimestamp`` set, namespaces go ``Terminating``.
* ``dry_run`` runs every check and returns what would have been stored, storing nothing.

Everything here is synchronous and runs on the event loop: one write at a time, so no locks.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from . import certificates, validation
from . import crd as crdlib
from .builtins import Defaulter, builtin_types, fold_string_data
from .discovery import Registry, ResourceType
from .errors import (
    MODIFIED,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden_terminating,
    invalid,
    not_found,
    options_invalid,
    query_bool,
    status_body,
)
from .storage import Storage, Stored
from .watch import WatchHub

if TYPE_CHECKING:
    from kctl_runtime.servingcert import CertificateAuthority
    from kctl_runtime.testing.portrange import PortRange

__all__ = ["Cluster", "DeleteOptions"]

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
JOB_ORPHAN_WARNING = (
    "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to "
    "remove them or set propagationPolicy=Orphan to suppress this warning"
)


def _copy(obj: Any) -> Any:
    """A deep copy of JSON data (orjson round trip: faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(obj))


class DeleteOptions:
    """The parts of ``metav1.DeleteOptions`` the fake honours."""

    def __init__(self, body: dict[str, Any] | None = None, query: dict[str, str] | None = None) -> None:
        body = body or {}
        query = query or {}
        self.propagation: str | None = body.get("propagationPolicy") or query.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        if orphan is None and "orphanDependents" in query:
            orphan = query_bool(query["orphanDependents"])
        if self.propagation is None and orphan is not None:
            self.propagation = "Orphan" if orphan else "Background"
        if self.propagation not in (None, "Orphan", "Background", "Foreground"):
            raise options_invalid(
                "DeleteOptions",
                "propagationPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{self.propagation}": supported values: '
                '"Foreground", "Background", "Orphan", "nil"',
            )
        pre = body.get("preconditions") or {}
        self.uid: str | None = pre.get("uid")
        self.resource_version: str | None = pre.get("resourceVersion")
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        try:
            self.grace_period = int(grace) if grace is not None else None
        except (TypeError, ValueError):
            raise bad_request(f'strconv.ParseInt: parsing "{grace}": invalid syntax') from None
        dry = body.get("dryRun") or ([query["dryRun"]] if "dryRun" in query else [])
        self.dry_run = "All" in dry


class Cluster:
    """The object model and verbs of one fake API server."""

    def __init__(
        self, *, history_size: int, now: Callable[[], str], node_ports: PortRange | None = None
    ) -> None:
        self.storage = Storage(history_size)
        self.registry = Registry()
        self.hub = WatchHub(self.storage)
        self.defaulter = Defaulter(node_ports)
        self.now = now
        #: ``fieldValidation`` of the request being served (set by the HTTP layer around each write;
        #: writes are synchronous, so no other request can observe it) and the warnings it produced.
        self.field_validation = "Warn"
        #: record ``metadata.managedFields`` on create/update/patch (server-side apply always does)
        self.track_managed_fields = True
        self.warnings: list[str] = []
        self._ca: CertificateAuthority | None = None
        for rt in builtin_types():
            self.registry.add(rt)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.namespace_type, "", {"metadata": {"name": name}})

    @property
    def certificate_authority(self) -> CertificateAuthority:
        """The fake cluster's CA, made on first use: the built-in CSR signers issue from it and
        ``kube-root-ca.crt`` publishes it (needs the ``cryptography`` package)."""
        if self._ca is None:
            from kctl_runtime.servingcert import CertificateAuthority

            self._ca = CertificateAuthority("kctl-fake-cluster-ca", extra="test")
        return self._ca

    @property
    def namespace_type(self) -> ResourceType:
        rt = self.registry.get("", "v1", "namespaces")
        assert rt is not None
        return rt

    # ---- helpers ----

    def _unknown(self, fields: list[str]) -> None:
        self.warnings.extend(f'unknown field "{f}"' for f in fields)

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.storage.get(rt.storage_key, namespace if rt.namespaced else "", name)
        if stored is None:
            raise not_found(rt.plural, rt.group, name)
        return stored

    def view(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` as served under ``rt``'s version (custom resources: apiVersion rewritten)."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def raw(self, rt: ResourceType, stored: Stored) -> bytes:
        if stored.obj.get("apiVersion") == rt.api_version:
            return stored.raw
        return orjson.dumps(self.view(rt, stored.obj))

    def _storage_version(self, rt: ResourceType) -> str:
        if rt.custom and rt.storage_version:
            return f"{rt.group}/{rt.storage_version}"
        return rt.api_version

    def _check_type_meta(self, rt: ResourceType, body: dict[str, Any]) -> None:
        """Reject a body of another kind or version, worded like the real decoder's errors."""
        api_version = str(body.get("apiVersion") or rt.api_version)
        kind = str(body.get("kind") or rt.kind)
        version = api_version.rpartition("/")[2]
        if rt.custom:
            if api_version != rt.api_version:
                raise bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rt.api_version})"
                )
            if kind != rt.kind:
                name = str((body.get("metadata") or {}).get("name") or "")
                cause = {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "{kind}": must be {rt.kind}',
                }
                raise invalid(kind, rt.group, name, [{**cause, "field": "kind"}])
            return
        if api_version != rt.api_version:
            raise bad_request(
                f'{kind} in version "{version}" cannot be handled as a {rt.kind}: no kind "{kind}" is '
                f'registered for version "{api_version}" in scheme "pkg/runtime/scheme.go:111"'
            )
        if kind != rt.kind:
            internal = rt.group.split(".")[0] if rt.group else "core"
            raise bad_request(
                f'{kind} in version "{version}" cannot be handled as a {rt.kind}: converting '
                f"({version}.{kind}) to ({internal}.{rt.kind}): unknown conversion"
            )

    def _validate_meta(self, rt: ResourceType, obj: dict[str, Any], *, name_check: bool) -> None:
        """ObjectMeta validation of the real server: name, labels, annotations, finalizers, owners."""
        meta = obj["metadata"]
        causes = self._name_causes(rt, meta.get("name", "")) if name_check else []
        causes += _meta_causes(meta)
        if causes:
            raise invalid(rt.kind, rt.group, meta.get("name", ""), causes)

    def _name_causes(self, rt: ResourceType, name: str) -> list[dict[str, str]]:
        if rt.plural == "namespaces":
            pattern, message, limit = _LABEL, _LABEL_MSG, 63
        elif rt.plural == "services" and not rt.custom:
            # RelaxedServiceNameValidation (kube-apiserver 1.34+): an RFC 1123 label
            pattern, message, limit = _LABEL, _LABEL_MSG, 63
        else:
            pattern, message, limit = _SUBDOMAIN, _SUBDOMAIN_MSG, 253
        if len(name) > limit:
            message = f"must be no more than {limit} characters"
        elif pattern.fullmatch(name):
            return []
        return [
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "{name}": {message}',
                "field": "metadata.name",
            }
        ]

    def _namespace_ok(self, rt: ResourceType, namespace: str, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self.storage.get("/namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise forbidden_terminating(rt.plural, rt.group, name, namespace)

    def _spec_changed(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
        skip = {"metadata", "status"} if rt.status_subresource else {"metadata"}
        keys = (set(old) | set(new)) - skip - {"apiVersion", "kind"}
        if any(old.get(k) != new.get(k) for k in keys):
            return True
        # apps/v1 Deployments also bump on annotation changes (they are copied to ReplicaSets)
        if rt.group == "apps" and rt.plural == "deployments" and not rt.custom:
            return bool(old["metadata"].get("annotations") != new["metadata"].get("annotations"))
        return False

    # ---- verbs ----

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        manager: str | None = "kube-controller-manager",
    ) -> dict[str, Any]:
        """Create an object; ``manager`` records managedFields (``None``: the body already has them)."""
        if body is None:  # JSON null decodes as an empty object
            body = {}
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized (must be a JSON object)")
        self._check_type_meta(rt, body)
        validation.decode_check(rt, body)
        if (body.get("metadata") or {}).get("resourceVersion"):
            raise ApiError(status_body(500, "", "resourceVersion should not be set on objects to be created"))
        obj = dict(body)
        meta = dict(obj.get("metadata") or {})
        obj["metadata"] = meta
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or body_ns or ""
        else:
            meta.pop("namespace", None)
        name = meta.get("name") or ""
        # NamespaceLifecycle admission runs before the registry's name handling and validation
        self._namespace_ok(rt, meta.get("namespace", ""), name)
        if not name:
            prefix = meta.get("generateName") or ""
            if not prefix:
                raise invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
            name = prefix + "".join(secrets.choice(_GENERATE_CHARS) for _ in range(5))
            meta["name"] = name
        self._validate_meta(rt, obj, name_check=True)
        obj["apiVersion"] = self._storage_version(rt)
        obj["kind"] = rt.kind
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        if rt.tracks_generation or rt.custom:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rt.status_subresource and rt.plural != "namespaces":
            obj.pop("status", None)
        if rt.custom:
            self._unknown(
                crdlib.prepare_custom_resource(rt, obj, None, field_validation=self.field_validation)
            )
        elif rt.plural == "customresourcedefinitions":
            crdlib.validate_crd(obj)
        if rt.plural == "secrets" and not rt.custom:
            fold_string_data(obj)
        validation.drop_empty_maps(rt, obj)
        validation.validate_builtin(rt, obj, None)
        if certificates.is_csr(rt):
            from .admission import USER_INFO

            certificates.prepare_create(obj, USER_INFO)
        # Like the real registry, a create that fails after allocating (a name taken) or a dry run
        # gives back the cluster IP and node ports it allocated: they do not leak until the range
        # is full (the sharded Website controller's creates that meet AlreadyExists filled it).
        self.defaulter.on_create(rt, obj)
        try:
            if self.storage.get(rt.storage_key, meta.get("namespace", ""), name) is not None:
                raise already_exists(rt.plural, rt.group, name)
            if manager is not None:
                obj = self._managed(rt, None, obj, manager, None)
            if dry_run:
                self.defaulter.undo_create()
                return self.view(rt, obj)
            stored = self.storage.create(rt.storage_key, obj)
        except ApiError:
            self.defaulter.undo_create()
            raise
        return self.view(rt, stored.obj)

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = "kube-controller-manager",
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized (must be a JSON object)")
        self._check_type_meta(rt, body)
        validation.decode_check(rt, body)
        existing = self.get(rt, namespace, name)
        if rt.custom and not (body.get("metadata") or {}).get("resourceVersion"):
            # custom resources allow no unconditional update (the CRD registry's strategy)
            raise invalid(
                rt.plural,
                rt.group,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: 0: must be specified for an update",
                        "field": "metadata.resourceVersion",
                    }
                ],
            )
        uid = (body.get("metadata") or {}).get("uid")
        if uid and uid != existing.uid:
            # The uid of a PUT body is a precondition (rest.DefaultUpdatedObjectInfo.Preconditions),
            # checked by the storage layer, whose error text the real server passes through.
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"StorageError: invalid object, Code: 4, Key: {_etcd_key(rt, existing)}, ResourceVersion: 0, "
                f"AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {existing.uid}",
            )
        new = self._prepare_update(rt, existing, body, subresource=subresource)
        if manager is not None:
            new = self._managed(rt, existing.obj, new, manager, subresource)
        return self._write_update(rt, existing, new, dry_run=dry_run)

    def _managed(
        self,
        rt: ResourceType,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        subresource: str | None,
    ) -> dict[str, Any]:
        if not self.track_managed_fields:
            return new
        from .apply import update_managed_fields

        return update_managed_fields(
            old,
            new,
            manager=manager,
            subresource=subresource,
            now=self.now(),
            api_version=rt.api_version,
            kind=rt.kind,
            schema=rt.schema if rt.custom else None,
            status_subresource=rt.status_subresource,
        )

    def _prepare_update(
        self, rt: ResourceType, existing: Stored, body: dict[str, Any], *, subresource: str | None
    ) -> dict[str, Any]:
        name = existing.name
        meta_in = body.get("metadata") or {}
        if meta_in.get("name") and meta_in["name"] != name:
            raise bad_request(
                f"the name of the object ({meta_in['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta_in.get("namespace") and meta_in["namespace"] != existing.namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        rv = meta_in.get("resourceVersion")
        if rv and str(rv) != existing.obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name, MODIFIED)
        uid = meta_in.get("uid")
        if uid and uid != existing.uid:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{uid}": field is immutable',
                        "field": "metadata.uid",
                    }
                ],
            )
        old = existing.obj
        new: dict[str, Any]
        if certificates.is_csr(rt) and subresource in ("status", "approval"):
            new = certificates.prepare_update(
                old, _copy(old) | {"status": body.get("status")}, subresource, self.now()
            )
            if "managedFields" in meta_in:
                new["metadata"]["managedFields"] = meta_in["managedFields"]
            return new
        if subresource == "status":
            new = _copy(old)
            if "status" in body:
                new["status"] = body["status"]
            else:
                new.pop("status", None)
            if "managedFields" in meta_in:  # server-side apply computed them for this subresource
                new["metadata"]["managedFields"] = meta_in["managedFields"]
            if rt.custom:  # status writes are defaulted, pruned and validated like any other write
                try:
                    self._unknown(
                        crdlib.prepare_custom_resource(rt, new, old, field_validation=self.field_validation)
                    )
                except ApiError as exc:
                    # kube-apiserver 1.36 reports each status cause twice, once more with a leading dot
                    causes = (exc.body.get("details") or {}).get("causes") or []
                    causes += [{**c, "field": "." + c["field"]} for c in list(causes) if c.get("field")]
                    raise
            else:
                validation.validate_builtin_status(rt, new, old)
            return new
        new = dict(body)
        meta = dict(meta_in)
        new["metadata"] = meta
        new["apiVersion"] = self._storage_version(rt)
        new["kind"] = rt.kind
        old_meta = old["metadata"]
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = existing.namespace
        else:
            meta.pop("namespace", None)
        meta.pop("selfLink", None)
        for key in _SYSTEM_META:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if meta.get("generateName") is None and "generateName" in old_meta:
            meta["generateName"] = old_meta["generateName"]
        if rt.status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if rt.plural == "namespaces" and not rt.custom:
            new["spec"] = old.get("spec", {})
        self._validate_meta(rt, new, name_check=False)
        if rt.plural == "secrets" and not rt.custom:
            fold_string_data(new)
        validation.drop_empty_maps(rt, new)
        validation.validate_builtin(rt, new, old)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                forbidden = {
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: no new finalizers can be added if the object is being "
                    "deleted, found new finalizers " + _go_list(sorted(added)),
                    "field": "metadata.finalizers",
                }
                # kube-apiserver reports this cause twice (generic and strategy validation both check)
                raise invalid(rt.kind, rt.group, name, [forbidden, dict(forbidden)])
        if rt.custom:
            self._unknown(
                crdlib.prepare_custom_resource(rt, new, old, field_validation=self.field_validation)
            )
        elif rt.plural == "customresourcedefinitions":
            crdlib.validate_crd(new, old)
        elif certificates.is_csr(rt):
            new = certificates.prepare_update(old, new, None, self.now())
        elif rt.plural == "deployments" and rt.group == "apps":
            selector = (new.get("spec") or {}).get("selector")
            if selector != (old.get("spec") or {}).get("selector"):  # apps/v1 strategy validation
                immutable = {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: field is immutable",
                    "field": "spec.selector",
                }
                raise invalid(rt.kind, rt.group, name, [immutable])
        return new

    def _write_update(
        self, rt: ResourceType, existing: Stored, new: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        old = existing.obj
        meta = new["metadata"]
        if meta.get("generation") and self._spec_changed(rt, old, new):
            meta["generation"] = int(meta["generation"]) + 1
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if new == old:
            return self.view(rt, old)
        if dry_run:
            return self.view(rt, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not _namespace_held(rt, new):
            self.storage.remove(rt.storage_key, existing, final=new)
            self.defaulter.release(rt, new)
            return self.view(rt, new)
        stored = self.storage.replace(rt.storage_key, new, existing)
        return self.view(rt, stored.obj)

    def patch_with(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        apply: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = "kube-controller-manager",
    ) -> dict[str, Any]:
        """Apply ``apply`` to a private copy of the stored object and write the result as an update."""
        existing = self.get(rt, namespace, name)
        target = _copy(self.view(rt, existing.obj))
        patched = apply(target)
        if not isinstance(patched, dict):
            raise bad_request("the patch produced something other than an object")
        try:
            validation.decode_check(rt, patched)
        except ApiError as exc:  # a patch result the typed decoder refuses is a 422 on "patch"
            cause = {"reason": "FieldValueInvalid", "message": str(exc.body.get("message")), "field": "patch"}
            raise invalid(rt.kind, rt.group, name, [cause]) from None
        new = self._prepare_update(rt, existing, patched, subresource=subresource)
        if manager is not None:
            new = self._managed(rt, existing.obj, new, manager, subresource)
        return self._write_update(rt, existing, new, dry_run=dry_run)

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: DeleteOptions
    ) -> tuple[dict[str, Any], bool]:
        """Returns ``(body, deleted_now)``; ``body`` is the object or a success Status."""
        existing = self.get(rt, namespace, name)
        meta = existing.obj["metadata"]
        # Delete preconditions are checked by the registry, which names the kind, not the resource.
        if options.uid is not None and options.uid != meta.get("uid"):
            raise conflict(
                rt.kind,
                rt.group,
                name,
                f"the UID in the precondition ({options.uid}) does not match the UID in record "
                f"({meta.get('uid')}). The object might have been deleted and then recreated",
            )
        if options.resource_version is not None and options.resource_version != meta["resourceVersion"]:
            raise conflict(
                rt.kind,
                rt.group,
                name,
                f"the ResourceVersion in the precondition ({options.resource_version}) does not match the "
                f"ResourceVersion in record ({meta['resourceVersion']}). The object might have been modified",
            )
        finalizers = list(meta.get("finalizers") or ())
        propagation = options.propagation
        if propagation is None and rt.group == "batch" and rt.plural == "jobs" and not rt.custom:
            # batch/v1 Jobs keep the legacy default: their Pods are orphaned, with this warning
            propagation = "Orphan"
            self.warnings.append(JOB_ORPHAN_WARNING)
        if propagation == "Orphan":
            finalizers = [f for f in finalizers if f != FOREGROUND]
            finalizers += [ORPHAN] if ORPHAN not in finalizers else []
        elif propagation == "Foreground":
            finalizers = [f for f in finalizers if f != ORPHAN]
            finalizers += [FOREGROUND] if FOREGROUND not in finalizers else []
        elif propagation == "Background":
            finalizers = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
        is_crd = rt.plural == "customresourcedefinitions" and not rt.custom
        if is_crd and crdlib.CLEANUP_FINALIZER not in finalizers:
            finalizers.append(crdlib.CLEANUP_FINALIZER)
        held = finalizers or _namespace_held(rt, existing.obj)
        if held:
            new = _copy(existing.obj)
            new_meta = new["metadata"]
            if not new_meta.get("deletionTimestamp"):
                if new_meta.get("generation"):
                    new_meta["generation"] = int(new_meta["generation"]) + 1
                new_meta["deletionTimestamp"] = self.now()
                new_meta["deletionGracePeriodSeconds"] = 0
            if finalizers:
                new_meta["finalizers"] = finalizers
            if rt.plural == "namespaces" and not rt.custom:
                new.setdefault("status", {})["phase"] = "Terminating"
            if rt.plural == "customresourcedefinitions" and not rt.custom:
                crdlib.set_condition(
                    new,
                    "Terminating",
                    "True",
                    "InstanceDeletionInProgress",
                    "CustomResource deletion is in progress",
                    now=self.now(),
                )
            if options.dry_run or new == existing.obj:
                return self.view(rt, new), False
            stored = self.storage.replace(rt.storage_key, new, existing)
            return self.view(rt, stored.obj), False
        if options.dry_run:
            return self.view(rt, existing.obj), True
        removed = self.storage.remove(rt.storage_key, existing)
        self.defaulter.release(rt, existing.obj)
        if rt.return_deleted_object:
            return self.view(rt, removed.obj), True
        details: dict[str, Any] = {"name": name}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
        details["uid"] = meta.get("uid", "")
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }, True

    def finalize_namespace(self, name: str, finalizers: list[str]) -> dict[str, Any]:
        """The ``namespaces/NAME/finalize`` subresource: set ``spec.finalizers``."""
        rt = self.namespace_type
        existing = self.get(rt, "", name)
        new: dict[str, Any] = _copy(existing.obj)
        new.setdefault("spec", {})["finalizers"] = finalizers
        if not finalizers:
            new["spec"].pop("finalizers")
        if new == existing.obj:
            return existing.obj
        if (
            new["metadata"].get("deletionTimestamp")
            and not finalizers
            and not new["metadata"].get("finalizers")
        ):
            self.storage.remove(rt.storage_key, existing, final=new)
            return new
        return self.storage.replace(rt.storage_key, new, existing).obj


_STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


def _meta_causes(meta: dict[str, Any]) -> list[dict[str, str]]:
    from ._values import go_quote
    from .selectors import validate_label_key, validate_label_value

    def bad(field: str, value: str, message: str) -> dict[str, str]:
        return {
            "reason": "FieldValueInvalid",
            "message": f"Invalid value: {go_quote(value)}: {message}",
            "field": field,
        }

    causes: list[dict[str, str]] = []
    for key, value in (meta.get("labels") or {}).items():
        causes += [bad("metadata.labels", key, m) for m in validate_label_key(str(key))]
        causes += [bad("metadata.labels", str(value), m) for m in validate_label_value(str(value))]
    for key in meta.get("annotations") or {}:
        causes += [bad("metadata.annotations", key, m) for m in validate_label_key(str(key).lower())]
    for index, finalizer in enumerate(meta.get("finalizers") or ()):
        if finalizer not in _STANDARD_FINALIZERS and "/" not in str(finalizer):
            causes.append(
                bad(
                    f"metadata.finalizers[{index}]",
                    str(finalizer),
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    references = meta.get("ownerReferences") or ()
    first_controller = ""
    for ref in references:
        for field, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(field):
                message = "must not be empty" if field == "uid" else f"{what} must not be empty"
                causes.append(bad(f"metadata.ownerReferences.{field}", "", message))
        if ref.get("controller") is True:
            controller = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if not first_controller:
                first_controller = controller
                continue
            # apimachinery's ValidateOwnerReferences: the value is the whole list, as Go's JSON has it
            listed = json.dumps([_go_owner_reference(r) for r in references], separators=(",", ":"))
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {listed}: Only one reference can have Controller set to "
                    f'true. Found "true" in references for {first_controller} and {controller}',
                    "field": "metadata.ownerReferences",
                }
            )
    return causes


def _go_owner_reference(ref: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference in metav1.OwnerReference's field order, empty optional fields left out."""
    out: dict[str, Any] = {key: ref.get(key, "") for key in ("apiVersion", "kind", "name", "uid")}
    out.update({key: ref[key] for key in ("controller", "blockOwnerDeletion") if ref.get(key) is not None})
    return out


def _etcd_key(rt: ResourceType, stored: Stored) -> str:
    """Where kube-apiserver would keep the object in etcd (quoted in some storage errors)."""
    prefix = f"/registry/{rt.group}/{rt.plural}" if rt.custom else f"/registry/{rt.plural}"
    return f"{prefix}/{stored.namespace}/{stored.name}" if stored.namespace else f"{prefix}/{stored.name}"


def _namespace_held(rt: ResourceType, obj: dict[str, Any]) -> bool:
    if rt.plural != "namespaces" or rt.custom:
        return False
    return bool((obj.get("spec") or {}).get("finalizers"))


def _go_list(items: list[str]) -> str:
    return "[]string{" + ", ".join(f'"{i}"' for i in items) + "}"
