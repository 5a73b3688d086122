"""The registry of served resources and the discovery documents built from it.

Contract
--------
:class:`Registry` knows every resource the fake server serves — built-ins at start, custom resources
as their CRDs become established — keyed by ``(group, version, plural)``. One *storage identity*
(``group/plural``) may be served under several versions (CRDs); objects are stored once and their
``apiVersion`` rewritten on the way out (the real server's ``None`` conversion strategy).

Discovery documents (``/api``, ``/api/v1``, ``/apis``, ``/apis/G``, ``/apis/G/V``) are rebuilt from
the registry on every request, so they are never stale. Aggregated discovery (``apidiscovery.k8s.io/v2``)
is served when the client asks for it in ``Accept``; otherwise the legacy documents are returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PrinterColumn", "Registry", "ResourceType"]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """One table column: ``json_path`` is a simple ``.a.b`` path, or ``None`` for computed cells."""

    name: str
    type: str = "string"
    json_path: str | None = None
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass
class ResourceType:
    """One served ``group/version/plural`` and how it behaves."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale_subresource: dict[str, Any] | None = None
    #: further subresources served as the object itself (``get``/``update``/``patch``), e.g. ``approval``
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    tracks_generation: bool = False
    custom: bool = False
    return_deleted_object: bool = False
    printer_columns: tuple[PrinterColumn, ...] = ()
    schema: dict[str, Any] | None = None
    preserve_unknown: bool = True
    storage_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Objects of every served version of one resource share this storage identity."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def discovery_entry(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in self.subresources:
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.scale_subresource is not None:
            entries.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
        return sorted(entries, key=lambda e: str(e["name"]))


class Registry:
    """Resources currently served, with lookup by plural, kind, short name and storage identity."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._preferred: dict[str, str] = {}

    def add(self, rt: ResourceType, *, preferred: bool = False) -> None:
        self._by_gvr[(rt.group, rt.version, rt.plural)] = rt
        if preferred or rt.group not in self._preferred:
            self._preferred[rt.group] = rt.version

    def remove_storage(self, storage_key: str) -> list[ResourceType]:
        gone = [rt for rt in self._by_gvr.values() if rt.storage_key == storage_key]
        for rt in gone:
            del self._by_gvr[(rt.group, rt.version, rt.plural)]
        groups = {rt.group for rt in self._by_gvr.values()}
        for group in list(self._preferred):
            if group not in groups:
                del self._preferred[group]
            elif not any(g == group and v == self._preferred[group] for (g, v, _) in self._by_gvr):
                self._preferred[group] = sorted(v for (g, v, _) in self._by_gvr if g == group)[0]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def versions_of(self, storage_key: str) -> list[ResourceType]:
        return [rt for rt in self._by_gvr.values() if rt.storage_key == storage_key]

    def preferred_for_storage(self, storage_key: str) -> ResourceType | None:
        versions = self.versions_of(storage_key)
        for rt in versions:
            if rt.version == self._preferred.get(rt.group):
                return rt
        return versions[0] if versions else None

    def find_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._by_gvr.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def all(self) -> list[ResourceType]:
        return list(self._by_gvr.values())

    def group_versions(self, group: str) -> list[str]:
        versions = sorted({v for (g, v, _) in self._by_gvr if g == group}, key=_version_priority)
        return versions

    def has_group_version(self, group: str, version: str) -> bool:
        return any(g == group and v == version for (g, v, _) in self._by_gvr)

    def groups(self) -> list[str]:
        return sorted({g for (g, _, _) in self._by_gvr if g}, key=_group_order)

    def preferred_version(self, group: str) -> str:
        return self._preferred.get(group) or self.group_versions(group)[0]

    # ---- legacy discovery documents ----

    def api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for rt in sorted(
            (rt for rt in self._by_gvr.values() if rt.group == group and rt.version == version),
            key=lambda r: r.plural,
        ):
            resources.extend(rt.discovery_entry())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def api_group(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.group_versions(group)]
        preferred = self.preferred_version(group)
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": versions,
            "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group in self.groups():
            doc = self.api_group(group)
            del doc["kind"], doc["apiVersion"]
            groups.append(doc)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    # ---- aggregated discovery (apidiscovery.k8s.io/v2) ----

    def aggregated(self, *, legacy: bool) -> dict[str, Any]:
        groups = [""] if legacy else self.groups()
        items = []
        for group in groups:
            versions = []
            for version in self.group_versions(group):
                resources = []
                for rt in sorted(
                    (r for r in self._by_gvr.values() if r.group == group and r.version == version),
                    key=lambda r: r.plural,
                ):
                    # responseKind leaves group and version empty when they are the resource's own
                    own_kind = {"group": "", "version": "", "kind": rt.kind}
                    entry: dict[str, Any] = {
                        "resource": rt.plural,
                        "responseKind": own_kind,
                        "scope": "Namespaced" if rt.namespaced else "Cluster",
                        "singularResource": rt.singular,
                        "verbs": list(rt.verbs),
                    }
                    if rt.short_names:
                        entry["shortNames"] = list(rt.short_names)
                    if rt.categories:
                        entry["categories"] = list(rt.categories)
                    subs = []
                    if rt.status_subresource:
                        subs.append(
                            {
                                "subresource": "status",
                                "responseKind": own_kind,
                                "verbs": ["get", "patch", "update"],
                            }
                        )
                    subs += [
                        {"subresource": sub, "responseKind": own_kind, "verbs": ["get", "patch", "update"]}
                        for sub in rt.subresources
                    ]
                    if rt.scale_subresource is not None:
                        subs.append(
                            {
                                "subresource": "scale",
                                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                                "verbs": ["get", "patch", "update"],
                            }
                        )
                    if subs:
                        entry["subresources"] = sorted(subs, key=lambda s: str(s["subresource"]))
                    resources.append(entry)
                versions.append({"version": version, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": group} if group else {}, "versions": versions})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major = int(match.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor)


def _group_order(group: str) -> tuple[int, str]:
    builtin = ("apps", "events.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io")
    return (0, f"{builtin.index(group):03d}") if group in builtin else (1, group)
