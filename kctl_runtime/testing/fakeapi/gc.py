"""The fake's kube-controller-manager: garbage collection, namespace lifecycle, CRD lifecycle.

Contract
--------
:class:`Controllers` watches every storage event and reacts asynchronously (in its own task, right
after the write that triggered it), the way the real control plane does:

* **Garbage collector** — a dependent whose owners (``ownerReferences``) are all gone is deleted in
  the background; references to vanished owners are removed when a live owner remains. An owner being
  deleted with the ``orphan`` finalizer has its references removed from every dependent, then the
  finalizer. An owner with ``foregroundDeletion`` has its dependents deleted (foreground too) and loses
  the finalizer once no dependent with ``blockOwnerDeletion: true`` remains.
* **Namespace controller** — a namespace with ``deletionTimestamp`` has every object in it deleted and
  reports the real controller's five deletion conditions (content and finalizers remaining);
  once empty, ``kubernetes`` is removed from ``spec.finalizers`` and the namespace disappears.
* **Service-account and root-CA publishers** — every new namespace gets the ``default``
  ServiceAccount and the ``kube-root-ca.crt`` ConfigMap, as kube-controller-manager creates them;
  its ``ca.crt`` is the fake cluster's CA (:attr:`.cluster.Cluster.certificate_authority`), or a
  placeholder when the ``cryptography`` package is not installed.
* **Certificate signer** — an approved CertificateSigningRequest for a built-in signer name is
  signed from the cluster's CA or marked ``Failed`` (:func:`.certificates.sign`).
* **CRD controllers** — a new or changed CRD gets ``NamesAccepted`` / ``Established`` and its versions
  become served; a deleted CRD has all its objects deleted, stops being served (open watches end) and
  loses its cleanup finalizer.

Work items are de-duplicated and processed in arrival order. Errors in one item are logged and do not
stop the loop. Nothing is retried on a timer: every state change that could unblock an item produces
an event that enqueues it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from typing import Any

import structlog

from . import crd as crdlib
from .cluster import FOREGROUND, ORPHAN, Cluster, DeleteOptions
from .discovery import ResourceType, _version_priority
from .errors import ApiError
from .storage import Event, Stored

__all__ = ["Controllers"]

_log = structlog.get_logger("kctl_runtime.testing.fakeapi.gc")
_CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
_NS_KEY = "/namespaces"
_CSR_KEY = "certificates.k8s.io/certificatesigningrequests"
_FAKE_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBfakeCAcertificateForTheKctlRuntimeFakeApiServerNotARealKey0000\n"
    "-----END CERTIFICATE-----\n"
)

Item = tuple[str, ...]


class Controllers:
    """Event-driven background controllers over one :class:`~.cluster.Cluster`."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._pending: dict[Item, None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = cluster.storage.subscribe(self._on_event)
        for stored in cluster.storage.iter(_NS_KEY):
            self._enqueue(("namespace-new", stored.name))
        for stored in cluster.storage.iter(_CRD_KEY):  # CRDs loaded from a state file
            spec = stored.obj["spec"]
            if self._type(f"{spec['group']}/{spec['names']['plural']}") is None:
                self._enqueue(("crd", stored.name))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fakeapi-controllers")

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def idle(self) -> bool:
        return not self._pending

    def _enqueue(self, item: Item) -> None:
        self._pending[item] = None
        self._wake.set()

    def _on_event(self, event: Event) -> None:
        obj = event.current.obj
        meta = obj["metadata"]
        if event.storage_key == _NS_KEY:
            if event.type == "ADDED":
                self._enqueue(("namespace-new", event.name))
            if event.type != "DELETED" and meta.get("deletionTimestamp"):
                self._enqueue(("namespace-delete", event.name))
        elif event.storage_key == _CRD_KEY and event.type != "DELETED":
            self._enqueue(("crd", event.name))
        elif event.storage_key == _CSR_KEY and event.type != "DELETED":
            self._enqueue(("csr", event.name))
        if event.namespace:
            ns = self._cluster.storage.get(_NS_KEY, "", event.namespace)
            if ns is not None and ns.obj["metadata"].get("deletionTimestamp"):
                self._enqueue(("namespace-delete", event.namespace))
        uid = meta.get("uid", "")
        if event.type == "DELETED":
            if uid in self._cluster.storage.dependents:
                self._enqueue(("owner-gone", uid))
            for ref in meta.get("ownerReferences") or ():
                self._enqueue(("owner-check", ref.get("uid", "")))
            if event.storage_key == _CRD_KEY:
                self._enqueue(("crd-gone", event.name))
            else:
                group, _, plural = event.storage_key.partition("/")
                crd = self._cluster.storage.get(_CRD_KEY, "", f"{plural}.{group}") if group else None
                if crd is not None and crd.obj["metadata"].get("deletionTimestamp"):
                    self._enqueue(("crd", crd.name))
            return
        if meta.get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or ()
            if ORPHAN in finalizers or FOREGROUND in finalizers:
                self._enqueue(("owner-check", uid))
        for ref in meta.get("ownerReferences") or ():
            ref_uid = ref.get("uid", "")
            if ref_uid not in self._cluster.storage.by_uid:
                self._enqueue(("owner-gone", ref_uid))
            elif event.type != "ADDED":
                self._enqueue(("owner-check", ref_uid))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                item = next(iter(self._pending))
                del self._pending[item]
                try:
                    self._process(item)
                except ApiError as exc:
                    _log.debug("controller item failed", item=item, error=str(exc))
                except Exception:
                    _log.exception("controller item crashed", item=item)
                await asyncio.sleep(0)

    def _process(self, item: Item) -> None:
        kind, arg = item
        if kind == "namespace-new":
            self._namespace_new(arg)
        elif kind == "namespace-delete":
            self._namespace_delete(arg)
        elif kind == "owner-gone":
            self._owner_gone(arg)
        elif kind == "owner-check":
            self._owner_check(arg)
        elif kind == "crd":
            self._crd(arg)
        elif kind == "crd-gone":
            self._crd_gone(arg)
        elif kind == "csr":
            self._sign(arg)

    # ---- helpers ----

    def _type(self, storage_key: str) -> ResourceType | None:
        return self._cluster.registry.preferred_for_storage(storage_key)

    def _lookup(self, ref: tuple[str, str, str]) -> tuple[ResourceType, Stored] | None:
        storage_key, namespace, name = ref
        rt = self._type(storage_key)
        stored = self._cluster.storage.get(storage_key, namespace, name)
        if rt is None or stored is None:
            return None
        return rt, stored

    def _delete(self, rt: ResourceType, stored: Stored, policy: str = "Background") -> None:
        if stored.obj["metadata"].get("deletionTimestamp") and policy == "Background":
            return
        options = DeleteOptions({"propagationPolicy": policy, "preconditions": {"uid": stored.uid}})
        self._cluster.delete(rt, stored.namespace, stored.name, options)

    def _remove_finalizer(self, rt: ResourceType, stored: Stored, finalizer: str) -> None:
        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            obj["metadata"]["finalizers"] = [
                f for f in obj["metadata"].get("finalizers") or () if f != finalizer
            ]
            return obj

        self._cluster.patch_with(rt, stored.namespace, stored.name, edit)

    def _drop_owner_refs(self, rt: ResourceType, stored: Stored, uids: set[str]) -> None:
        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            refs = [r for r in obj["metadata"].get("ownerReferences") or () if r.get("uid") not in uids]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)
            return obj

        self._cluster.patch_with(rt, stored.namespace, stored.name, edit)

    # ---- garbage collector ----

    def _owner_gone(self, uid: str) -> None:
        storage = self._cluster.storage
        if uid in storage.by_uid:
            return
        for ref in sorted(storage.dependents.get(uid, ())):
            found = self._lookup(ref)
            if found is None:
                continue
            rt, stored = found
            owners = stored.obj["metadata"].get("ownerReferences") or ()
            dangling = {o.get("uid", "") for o in owners if o.get("uid") not in storage.by_uid}
            if len(dangling) < len(owners):
                self._drop_owner_refs(rt, stored, dangling)
            else:
                self._delete(rt, stored)

    def _owner_check(self, uid: str) -> None:
        storage = self._cluster.storage
        ref = storage.by_uid.get(uid)
        if ref is None:
            self._owner_gone(uid)
            return
        found = self._lookup(ref)
        if found is None:
            return
        rt, owner = found
        meta = owner.obj["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        finalizers = meta.get("finalizers") or ()
        dependents = [d for d in (self._lookup(r) for r in sorted(storage.dependents.get(uid, ()))) if d]
        if ORPHAN in finalizers:
            for dep_rt, dep in dependents:
                self._drop_owner_refs(dep_rt, dep, {uid})
            self._remove_finalizer(rt, owner, ORPHAN)
        elif FOREGROUND in finalizers:
            blocking = 0
            for dep_rt, dep in dependents:
                refs = dep.obj["metadata"].get("ownerReferences") or ()
                if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                    blocking += 1
                if not dep.obj["metadata"].get("deletionTimestamp"):
                    has_own = dep.uid in storage.dependents
                    self._delete(dep_rt, dep, "Foreground" if has_own else "Background")
            if blocking == 0:
                self._remove_finalizer(rt, owner, FOREGROUND)

    # ---- namespaces ----

    def _namespace_new(self, name: str) -> None:
        cluster = self._cluster
        ns = cluster.storage.get(_NS_KEY, "", name)
        if ns is None or ns.obj["metadata"].get("deletionTimestamp"):
            return
        sa = cluster.registry.get("", "v1", "serviceaccounts")
        if sa is not None and cluster.storage.get(sa.storage_key, name, "default") is None:
            cluster.create(sa, name, {"metadata": {"name": "default"}})
        cm = cluster.registry.get("", "v1", "configmaps")
        if cm is not None and cluster.storage.get(cm.storage_key, name, "kube-root-ca.crt") is None:
            cluster.create(
                cm,
                name,
                {
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "annotations": {"kubernetes.io/description": _CA_DESCRIPTION},
                    },
                    "data": {"ca.crt": self._root_ca()},
                },
            )

    def _root_ca(self) -> str:
        try:
            return self._cluster.certificate_authority.cert_pem.decode()
        except RuntimeError:  # no `cryptography`: a placeholder, as before CSRs were served
            return _FAKE_CA

    # ---- certificate signing ----

    def _sign(self, name: str) -> None:
        from kctl_runtime.clock import format_time

        from . import certificates

        found = self._lookup((_CSR_KEY, "", name))
        if found is None:
            return
        rt, stored = found
        # certificates are checked against real time by TLS peers, whatever clock the fake runs on
        now = datetime.datetime.now(datetime.UTC)
        status = certificates.sign(stored.obj, self._cluster.certificate_authority, now, format_time(now))
        if status is None:
            return
        body = {**stored.obj, "status": status}
        self._cluster.update(rt, "", name, body, subresource="status")

    def _namespace_delete(self, name: str) -> None:
        cluster = self._cluster
        ns = cluster.storage.get(_NS_KEY, "", name)
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp"):
            return
        for storage_key in cluster.storage.namespaces_with_objects(name):
            rt = self._type(storage_key)
            if rt is None or not rt.namespaced:
                continue
            for stored in list(cluster.storage.iter(storage_key, name)):
                self._delete(rt, stored)
        by_resource: dict[str, int] = {}
        by_finalizer: dict[str, int] = {}
        for storage_key in cluster.storage.namespaces_with_objects(name):
            group, _, plural = storage_key.partition("/")
            for stored in cluster.storage.iter(storage_key, name):
                by_resource[f"{plural}.{group}"] = by_resource.get(f"{plural}.{group}", 0) + 1
                for finalizer in stored.obj["metadata"].get("finalizers") or ():
                    by_finalizer[finalizer] = by_finalizer.get(finalizer, 0) + 1
        self._namespace_conditions(name, by_resource, by_finalizer)
        if by_resource:
            return
        finalizers = [f for f in (ns.obj.get("spec") or {}).get("finalizers") or () if f != "kubernetes"]
        cluster.finalize_namespace(name, finalizers)

    def _namespace_conditions(
        self, name: str, by_resource: dict[str, int], by_finalizer: dict[str, int]
    ) -> None:
        """The status conditions the namespace controller reports while it empties a namespace."""
        cluster = self._cluster
        now = cluster.now()
        if by_resource:
            listed = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(by_resource.items()))
            content = ("True", "SomeResourcesRemain", f"Some resources are remaining: {listed}")
        else:
            content = ("False", "ContentRemoved", "All content successfully removed")
        if by_finalizer:
            listed = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(by_finalizer.items()))
            held = (
                "True",
                "SomeFinalizersRemain",
                f"Some content in the namespace has finalizers remaining: {listed}",
            )
        else:
            held = ("False", "ContentHasNoFinalizers", "All content-preserving finalizers finished")
        conditions = [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
            (
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
            ("NamespaceContentRemaining", *content),
            ("NamespaceFinalizersRemaining", *held),
        ]

        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            for type_, status, reason, message in conditions:
                crdlib.set_condition(obj, type_, status, reason, message, now=now)
            return obj

        cluster.patch_with(cluster.namespace_type, "", name, edit, subresource="status")

    # ---- CRDs ----

    def _crd(self, name: str) -> None:
        cluster = self._cluster
        crd_type = cluster.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        stored = cluster.storage.get(_CRD_KEY, "", name)
        if stored is None:
            return
        if stored.obj["metadata"].get("deletionTimestamp"):
            self._crd_cleanup(crd_type, stored)
            return
        types = crdlib.served_types(stored.obj)
        storage_key = f"{stored.obj['spec']['group']}/{stored.obj['spec']['names']['plural']}"
        before = {(rt.version, rt.namespaced) for rt in cluster.registry.versions_of(storage_key)}
        cluster.registry.remove_storage(storage_key)
        preferred = sorted((rt.version for rt in types), key=_version_priority)
        for rt in types:
            cluster.registry.add(rt, preferred=bool(preferred) and rt.version == preferred[0])
        after = {(rt.version, rt.namespaced) for rt in types}
        if before - after:
            cluster.hub.close_all(storage_key)

        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            return crdlib.established(obj, cluster.now())

        cluster.patch_with(crd_type, "", name, edit, subresource="status")

    def _crd_cleanup(self, crd_type: ResourceType, stored: Stored) -> None:
        cluster = self._cluster
        spec = stored.obj["spec"]
        storage_key = f"{spec['group']}/{spec['names']['plural']}"
        rt = self._type(storage_key)
        if rt is not None:
            for obj in list(cluster.storage.iter(storage_key)):
                with contextlib.suppress(ApiError):
                    self._delete(rt, obj)
        if cluster.storage.count(storage_key):
            return
        cluster.registry.remove_storage(storage_key)
        cluster.hub.close_all(storage_key)
        if crdlib.CLEANUP_FINALIZER in (stored.obj["metadata"].get("finalizers") or ()):
            self._remove_finalizer(crd_type, stored, crdlib.CLEANUP_FINALIZER)

    def _crd_gone(self, name: str) -> None:
        group_plural = name.split(".", 1)
        if len(group_plural) != 2:
            return
        storage_key = f"{group_plural[1]}/{group_plural[0]}"
        if self._cluster.storage.get(_CRD_KEY, "", name) is None:
            self._cluster.registry.remove_storage(storage_key)
            self._cluster.hub.close_all(storage_key)


_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)
