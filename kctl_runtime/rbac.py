"""RBAC from declarations: least-privilege rules from what controllers watch plus what they say they write.

Contract
--------
* Reads come from the controllers themselves: every informer a :class:`~kctl_runtime.controller.Controller`
  starts (``for_``, ``owns``, ``watches``; :meth:`~kctl_runtime.controller.Controller.sources`) needs
  ``list`` and ``watch``, and ``get`` (the client reads from the API until the cache has synced).
* Writes cannot be read off a reconciler, so they are declared: a :class:`Grant` per resource (and
  subresource) with its verbs. :data:`EVENT_RECORDER` is what an
  :class:`~kctl_runtime.events.EventRecorder` needs; :data:`LEADER_ELECTION` what the elector needs
  (always granted by a Role in the controller's own namespace, never cluster-wide).
* :func:`rules` merges everything into one rule per (API group, resource), verbs in a fixed order,
  rules in order of first declaration; no wildcard is ever produced. :func:`manifests` wraps them in a
  ClusterRole + ClusterRoleBinding (or, with ``watch_namespace``, a Role + RoleBinding there) bound to
  the controller's ServiceAccount, plus the leader-election Role + RoleBinding.
* ``sharded=True`` gives instead the kustomize overlay for running the controllers sharded
  (:mod:`kctl_runtime.sharding`): what sharding adds to those manifests and nothing they already
  grant -- ``patch`` on every controller's primary and owned resources (the sharder's label writes,
  a shard's drain acknowledgements) in a ClusterRole ``<name>-sharding``, and :data:`SHARDING_LEASES`
  (the sharder watches the ring's Leases; the shard and sharder Leases themselves need
  :data:`LEADER_ELECTION`, added here only without ``leader_election``) in a Role of the same name
  in the controller's namespace.
* ``python -m kctl_runtime rbac MODULE:FACTORY [--watch-namespace NS | --sharded]`` prints
  :func:`manifests` for the :class:`Permissions` at ``MODULE:FACTORY`` (the object, or a zero-argument
  callable returning one).

Not inferred: writes (declare them), non-resource URLs, and ``resourceNames`` restrictions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kctl_runtime.controller import Controller
from kctl_runtime.generated import dump_yaml
from kctl_runtime.resource import CORE_EVENTS, LEASES, Resource

__all__ = [
    "EVENT_RECORDER",
    "LEADER_ELECTION",
    "READ_VERBS",
    "SHARDING_LEASES",
    "Grant",
    "Permissions",
    "manifests",
    "rbac_yaml",
    "rules",
]

_VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")
"""What an informer-backed read needs."""

_RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class Grant:
    """``verbs`` on ``resource`` (or on its ``subresource``, e.g. ``"status"``)."""

    resource: Resource
    verbs: Sequence[str]
    subresource: str | None = None

    def __post_init__(self) -> None:
        unknown = [v for v in self.verbs if v not in _VERB_ORDER]
        if unknown or not self.verbs:
            raise ValueError(f"Grant verbs must be some of {', '.join(_VERB_ORDER)}; got {list(self.verbs)}")

    @property
    def resource_name(self) -> str:
        return f"{self.resource.plural}/{self.subresource}" if self.subresource else self.resource.plural


EVENT_RECORDER = Grant(CORE_EVENTS, ("create", "patch"))
"""An event recorder creates events and patches them when they repeat."""

LEADER_ELECTION = Grant(LEASES, ("get", "create", "update"))
"""The leader elector's Lease calls (granted in the controller's namespace only)."""

SHARDING_LEASES = Grant(LEASES, ("list", "watch"))
"""What sharding adds on Leases: the sharder's informer on the ring's Leases (controller's namespace)."""


@dataclass(frozen=True)
class Permissions:
    """Everything RBAC generation needs to know about one controller program.

    name: the ClusterRole/Role, binding and (default) ServiceAccount name. namespace: where the
    controller runs (its ServiceAccount and Lease live there). controllers: inspected for their
    informers. grants: the writes the program makes (add :data:`EVENT_RECORDER` if it records events).
    leader_election: add the Lease Role. service_account: defaults to ``name``.
    """

    name: str
    namespace: str
    controllers: Sequence[Controller]
    grants: Sequence[Grant] = ()
    leader_election: bool = True
    service_account: str | None = None


def rules(controllers: Iterable[Controller], grants: Iterable[Grant] = ()) -> list[dict[str, Any]]:
    """One rule per (group, resource): informer reads of ``controllers`` plus ``grants`` (module doc)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for controller in controllers:
        for resource, _namespace, _selector in controller.sources():
            wanted.setdefault((resource.group, resource.plural), set()).update(READ_VERBS)
    for grant in grants:
        wanted.setdefault((grant.resource.group, grant.resource_name), set()).update(grant.verbs)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": [v for v in _VERB_ORDER if v in verbs]}
        for (group, resource), verbs in wanted.items()
    ]


def _binding(
    kind: str, name: str, namespace: str | None, role_kind: str, subject: dict[str, str]
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": _RBAC_API,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [subject],
    }


def manifests(
    permissions: Permissions, *, watch_namespace: str | None = None, sharded: bool = False
) -> list[dict[str, Any]]:
    """The RBAC documents for ``permissions`` (module doc).

    With ``watch_namespace`` the controller's rules are a Role (and RoleBinding) in that namespace,
    preceded by the Namespace itself, and the leader-election Role is left out (the cluster-wide
    variant's is reused): the namespace-scoped overlay of a kustomize base. With ``sharded`` they are
    the sharding overlay of the cluster-wide base (module doc); the two do not combine.
    """
    p = permissions
    subject = {"kind": "ServiceAccount", "name": p.service_account or p.name, "namespace": p.namespace}
    grants = [g for g in p.grants if g != LEADER_ELECTION]
    controller_rules = rules(p.controllers, grants)
    if sharded:
        if watch_namespace is not None:
            raise ValueError("sharded and watch_namespace do not combine: one overlay at a time")
        return _sharding_overlay(p, controller_rules, subject)
    if watch_namespace is not None:
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": watch_namespace}},
            {
                "apiVersion": _RBAC_API,
                "kind": "Role",
                "metadata": {"name": p.name, "namespace": watch_namespace},
                "rules": controller_rules,
            },
            _binding("RoleBinding", p.name, watch_namespace, "Role", subject),
        ]
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": _RBAC_API,
            "kind": "ClusterRole",
            "metadata": {"name": p.name},
            "rules": controller_rules,
        },
        _binding("ClusterRoleBinding", p.name, None, "ClusterRole", subject),
    ]
    if p.leader_election:
        election = f"{p.name}-leader-election"
        docs.append(
            {
                "apiVersion": _RBAC_API,
                "kind": "Role",
                "metadata": {"name": election, "namespace": p.namespace},
                "rules": rules((), [LEADER_ELECTION]),
            }
        )
        docs.append(_binding("RoleBinding", election, p.namespace, "Role", subject))
    return docs


def _sharding_overlay(
    p: Permissions, base_rules: list[dict[str, Any]], subject: dict[str, str]
) -> list[dict[str, Any]]:
    granted = {(r["apiGroups"][0], r["resources"][0], v) for r in base_rules for v in r["verbs"]}
    labelled: list[Resource] = []
    for controller in p.controllers:
        for resource in (controller.for_, *(o.resource for o in controller.owns)):
            if (resource.group, resource.plural, "patch") not in granted and resource not in labelled:
                labelled.append(resource)
    name = f"{p.name}-sharding"
    docs: list[dict[str, Any]] = []
    if labelled:
        docs.append(
            {
                "apiVersion": _RBAC_API,
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": rules((), [Grant(r, ("patch",)) for r in labelled]),
            }
        )
        docs.append(_binding("ClusterRoleBinding", name, None, "ClusterRole", subject))
    leases = [SHARDING_LEASES] if p.leader_election else [LEADER_ELECTION, SHARDING_LEASES]
    docs.append(
        {
            "apiVersion": _RBAC_API,
            "kind": "Role",
            "metadata": {"name": name, "namespace": p.namespace},
            "rules": rules((), leases),
        }
    )
    docs.append(_binding("RoleBinding", name, p.namespace, "Role", subject))
    return docs


def rbac_yaml(
    permissions: Permissions, *, source: str, watch_namespace: str | None = None, sharded: bool = False
) -> str:
    """:func:`manifests` as YAML, with a header naming ``source`` (``MODULE:FACTORY``) and the command."""
    options = f" --watch-namespace {watch_namespace}" if watch_namespace else ""
    options += " --sharded" if sharded else ""
    command = f"python -m kctl_runtime rbac {source}{options}"
    header = f"# Generated by `{command}`: edit the declarations, not this file.\n"
    return header + dump_yaml(manifests(permissions, watch_namespace=watch_namespace, sharded=sharded))
