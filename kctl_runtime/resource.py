"""API resources: what the informer lists and watches, and how its URLs are built.

Contract
--------
* :class:`Resource` names one REST resource (group, version, plural) together with its ``kind``
  and scope. It is a frozen, hashable value: equal resources share informers in a factory.
* :meth:`Resource.path` builds the URL path exactly as kube-apiserver routes it
  (``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...`` otherwise). Path segments
  are not escaped: Kubernetes names are DNS labels/subdomains and cannot contain ``/``.
* :func:`discover` resolves ``(apiVersion, kind)`` through the server's discovery documents
  (``/api/v1``, ``/apis/<group>/<version>``) and caches the answer per ``ApiClient`` for the
  client's lifetime. NOT guaranteed: a cached answer does not notice a CRD being deleted or its
  scope changing; build a new ``ApiClient`` (or call :func:`forget_discovery`) to re-read.
* :func:`object_key` is client-go's ``MetaNamespaceKeyFunc``: ``"namespace/name"`` for
  namespaced objects, ``"name"`` for cluster-scoped ones. Informer stores are keyed by it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kctl_runtime._http import ACCEPT_JSON, open_get

__all__ = [
    "CERTIFICATESIGNINGREQUESTS",
    "CONFIGMAPS",
    "CORE_EVENTS",
    "CUSTOMRESOURCEDEFINITIONS",
    "DEPLOYMENTS",
    "EVENTS",
    "LEASES",
    "MUTATINGWEBHOOKCONFIGURATIONS",
    "NAMESPACES",
    "PODS",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "VALIDATINGWEBHOOKCONFIGURATIONS",
    "Resource",
    "discover",
    "forget_discovery",
    "object_key",
]


@dataclass(frozen=True)
class Resource:
    """One REST resource: ``group`` is ``""`` for the core group (``v1``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``"v1"`` for the core group, ``"apps/v1"`` otherwise (the objects' ``apiVersion``)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``configmaps`` or ``deployments.apps``: the name used in RBAC and in log lines."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The URL path: a collection (``name=None``), one object, or one object's subresource.

        ``namespace=None`` on a namespaced resource addresses every namespace (list/watch only).
        A namespace given for a cluster-scoped resource is a programming error.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            if not self.namespaced:
                raise ValueError(f"{self.group_resource} is cluster-scoped; got namespace {namespace!r}")
            base = f"{base}/namespaces/{namespace}"
        path = f"{base}/{self.plural}"
        if name is not None:
            path = f"{path}/{name}"
        if subresource is not None:
            if name is None:
                raise ValueError("a subresource needs an object name")
            path = f"{path}/{subresource}"
        return path

    def __str__(self) -> str:
        return f"{self.group_resource}/{self.version}"


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
SERVICES = Resource("", "v1", "services", "Service")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("events.k8s.io", "v1", "events", "Event")
CORE_EVENTS = Resource("", "v1", "events", "Event")
"""core/v1 Events: what client-go's recorder (and :class:`~kctl_runtime.events.EventRecorder`) writes."""
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
CERTIFICATESIGNINGREQUESTS = Resource(
    "certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", namespaced=False
)
CUSTOMRESOURCEDEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
VALIDATINGWEBHOOKCONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)
MUTATINGWEBHOOKCONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)


def object_key(obj: Mapping[str, Any]) -> str:
    """client-go's ``MetaNamespaceKeyFunc``: ``"ns/name"``, or ``"name"`` when cluster-scoped."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


# One discovery cache per ApiClient; the weak key lets a closed client and its cache go together.
_DISCOVERY: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Resource]] = weakref.WeakKeyDictionary()


def forget_discovery(api_client: Any) -> None:
    """Drop the discovery answers cached for ``api_client`` (e.g. after installing a CRD)."""
    _DISCOVERY.pop(api_client, None)


async def discover(api_client: Any, api_version: str, kind: str) -> Resource:
    """Find the resource serving ``kind`` in ``api_version`` through the discovery API.

    Raises :class:`LookupError` when the group/version is served but has no such kind, and the
    client's :class:`~kctl_runtime.errors.ApiError` (``NotFound``) when the group/version is not
    served at all. Subresources (``pods/status``) are never returned.
    """
    cache = _DISCOVERY.setdefault(api_client, {})
    cached = cache.get((api_version, kind))
    if cached is not None:
        return cached
    group, _, version = api_version.rpartition("/")
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    response = await open_get(api_client, path, (), ACCEPT_JSON)
    try:
        body = await response.read()
    finally:
        response.release()
    document = orjson.loads(body)
    found: Resource | None = None
    for entry in document.get("resources", ()):
        name = entry.get("name", "")
        if "/" in name:
            continue
        resource = Resource(group, version, name, entry.get("kind", ""), bool(entry.get("namespaced")))
        cache[(api_version, resource.kind)] = resource
        if resource.kind == kind:
            found = resource
    if found is None:
        raise LookupError(f"{api_version} serves no kind {kind!r} (discovery at {path})")
    return found
