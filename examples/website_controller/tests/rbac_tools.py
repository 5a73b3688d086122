"""RBAC test tools shared by the examples' tests.

* :func:`recording_proxy` -- a recording HTTP proxy in front of an API server: which API calls does a
  controller really make? Run the controller through it, then compare the ``(api group, resource,
  verb)`` triples it used with the rules in its ``rbac.yaml``. It speaks plain HTTP upstream (the
  fake API server) and streams responses, so watches work through it.
* :func:`as_service_account` -- on a real API server (which enforces RBAC): a kubeconfig for a fresh
  service account holding exactly the manifests' RBAC, so the controller can be run with nothing
  more than it is granted in production.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

from kctl_runtime.client import Client
from kctl_runtime.resource import SERVICEACCOUNTS, Resource
from kctl_runtime.testing.proxy import CountingProxy
from kctl_runtime.testing.pytest_plugin import KubeTarget

Call = tuple[str, str, str]
"""``(api group, resource[/subresource], verb)`` as RBAC names them (core group is ``""``)."""


def rbac_call(method: str, path: str, query: Mapping[str, str]) -> Call | None:
    """The RBAC view of one request; ``None`` for non-resource paths (discovery, /version, ...)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    name: str | None = None
    sub: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]  # a namespaced resource: skip namespaces/NS
    resource = rest[0]
    if len(rest) >= 2:
        name = rest[1]
    if len(rest) >= 3:
        sub = rest[2]
    watching = query.get("watch") in ("1", "true")
    verb = {
        "GET": "watch" if watching else ("get" if name else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return group, f"{resource}/{sub}" if sub else resource, verb


def granted(documents: Iterable[Mapping[str, Any]]) -> set[Call]:
    """Every ``(group, resource, verb)`` the ClusterRoles and Roles in ``documents`` allow."""
    out: set[Call] = set()
    for doc in documents:
        if doc.get("kind") not in ("ClusterRole", "Role"):
            continue
        for rule in doc.get("rules") or ():
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule.get("verbs") or ():
                        out.add((group, resource, verb))
    return out


def load_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every YAML document in ``folder`` (kustomization files excluded)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


@dataclass
class Recorder:
    """The proxy's state: where it listens, and the calls it has seen."""

    proxy: CountingProxy

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def calls(self) -> set[Call]:
        """The RBAC view of every request the proxy has relayed so far."""
        seen = (
            rbac_call(method, path, dict(parse_qsl(query))) for method, path, query in self.proxy.requests
        )
        return {call for call in seen if call is not None}

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
                    "users": [{"name": "proxy", "user": {}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
                    "current-context": "proxy",
                }
            )
        )
        return path


@contextlib.asynccontextmanager
async def recording_proxy(upstream: str) -> AsyncIterator[Recorder]:
    """Serve a proxy to ``upstream`` (``http://host:port``) on a free loopback port
    (:class:`~kctl_runtime.testing.proxy.CountingProxy`, read through :func:`rbac_call`)."""
    async with CountingProxy(upstream).running() as proxy:
        yield Recorder(proxy)


# ----------------------------------------------------------------- running as the controller's account

_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"
_KINDS: dict[str, Resource] = {
    "ClusterRole": Resource(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False),
    "ClusterRoleBinding": Resource(
        _RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
    ),
    "Role": Resource(_RBAC, "v1", "roles", "Role"),
    "RoleBinding": Resource(_RBAC, "v1", "rolebindings", "RoleBinding"),
    "ValidatingAdmissionPolicy": Resource(
        _ADMISSION, "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", namespaced=False
    ),
    "ValidatingAdmissionPolicyBinding": Resource(
        _ADMISSION,
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        namespaced=False,
    ),
}


def relocate(
    documents: Iterable[Mapping[str, Any]], *, namespace: str, service_account: str, suffix: str
) -> list[dict[str, Any]]:
    """The RBAC and admission documents, moved into a test: namespaced objects (and subjects) into
    ``namespace``, cluster-scoped names made unique with ``suffix``, and the controller's username in
    admission expressions replaced by that of ``namespace/service_account``. Rules are untouched."""
    out: list[dict[str, Any]] = []
    user = f"system:serviceaccount:{namespace}:{service_account}"
    for original in documents:
        kind = original.get("kind")
        if kind not in _KINDS:
            continue
        doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(original)))
        meta = doc["metadata"]
        if _KINDS[kind].namespaced:
            meta["namespace"] = namespace
        else:
            meta["name"] = f"{meta['name']}-{suffix}"
        for subject in doc.get("subjects") or ():
            subject["namespace"] = namespace
            subject["name"] = service_account
        if kind == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{suffix}"
        if kind == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["policyName"] = f"{doc['spec']['policyName']}-{suffix}"
        if kind == "ValidatingAdmissionPolicy":
            for condition in doc["spec"].get("matchConditions") or ():
                condition["expression"] = re.sub(
                    r"system:serviceaccount:[a-z0-9-]+:[a-z0-9-]+", user, condition["expression"]
                )
        out.append(doc)
    return out


@contextlib.asynccontextmanager
async def as_service_account(
    kube: KubeTarget, documents: Iterable[Mapping[str, Any]], *, service_account: str, tmp_path: Path
) -> AsyncIterator[Path]:
    """A kubeconfig that authenticates as ``service_account`` in the test's namespace, holding exactly
    the RBAC (and admission policies) of ``documents``; everything is deleted afterwards."""
    api = Client(kube.api_client)
    namespace = kube.namespace
    await api.create(SERVICEACCOUNTS, {"metadata": {"name": service_account, "namespace": namespace}})
    created: list[tuple[Resource, dict[str, Any]]] = []
    suffix = namespace
    try:
        for doc in relocate(documents, namespace=namespace, service_account=service_account, suffix=suffix):
            resource = _KINDS[doc["kind"]]
            created.append((resource, await api.create(resource, doc)))
        from kubernetes_asyncio import client as k8s

        core = k8s.CoreV1Api(kube.api_client)
        body = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        )
        request = await core.create_namespaced_service_account_token(service_account, namespace, body)
        config = yaml.safe_load(kube.kubeconfig.read_text())
        for entry in config["users"]:
            entry["user"] = {"token": request.status.token}
        path = tmp_path / f"{service_account}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield path
    finally:
        for resource, obj in reversed(created):
            meta = obj["metadata"]
            await api.delete(resource, meta["name"], namespace=meta.get("namespace"), ignore_not_found=True)
