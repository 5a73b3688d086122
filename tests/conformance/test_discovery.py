"""Discovery: /version, /api, /apis, resource lists, aggregated discovery and OpenAPI v3."""

from __future__ import annotations

import json

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import apis_api, apps_api, core_api, raw, version_api

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


async def test_version_reports_major_and_minor(kube: KubeTarget) -> None:
    info = await version_api(kube.api_client).get_code()
    assert info.major == "1"
    assert int(info.minor.rstrip("+")) >= 28
    assert info.git_version.startswith("v1.")


async def test_the_core_group_lists_v1(kube: KubeTarget) -> None:
    status, _, body = await raw(kube.api_client, "GET", "/api")
    assert status == 200
    assert body["kind"] == "APIVersions"
    assert body["versions"] == ["v1"]


async def test_core_v1_resources_carry_verbs_scope_and_short_names(kube: KubeTarget) -> None:
    resources = await core_api(kube.api_client).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert resources.group_version == "v1"
    assert by_name["configmaps"].namespaced is True
    assert by_name["configmaps"].kind == "ConfigMap"
    assert by_name["configmaps"].short_names == ["cm"]
    assert "watch" in by_name["configmaps"].verbs
    assert by_name["namespaces"].namespaced is False
    assert "namespaces/status" in by_name
    assert "pods/status" in by_name
    assert by_name["services"].short_names == ["svc"]


async def test_apps_v1_lists_deployments_with_status_and_scale(kube: KubeTarget) -> None:
    resources = await apps_api(kube.api_client).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert by_name["deployments"].short_names == ["deploy"]
    assert "all" in by_name["deployments"].categories
    assert "deployments/status" in by_name
    assert by_name["deployments/scale"].kind == "Scale"
    assert by_name["deployments/scale"].group == "autoscaling"


async def test_the_group_list_names_the_built_in_groups_with_preferred_versions(kube: KubeTarget) -> None:
    groups = await apis_api(kube.api_client).get_api_versions()
    by_name = {g.name: g for g in groups.groups}
    for name in ("apps", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io"):
        assert by_name[name].preferred_version.version == "v1"
    status, _, group = await raw(kube.api_client, "GET", "/apis/coordination.k8s.io")
    assert status == 200
    assert group["kind"] == "APIGroup"
    assert group["preferredVersion"] == {"groupVersion": "coordination.k8s.io/v1", "version": "v1"}


async def test_an_unknown_group_is_not_found(kube: KubeTarget) -> None:
    # no API group serves it, so the HTTP mux answers in plain text
    status, headers, body = await raw(kube.api_client, "GET", "/apis/nope.kctl.example.com/v1")
    assert status == 404
    assert headers["Content-Type"].startswith("text/plain")
    assert body == "404 page not found\n"


async def test_an_unknown_resource_of_a_built_in_group_is_a_not_found_status(kube: KubeTarget) -> None:
    status, _, body = await raw(kube.api_client, "GET", "/apis/apps/v1/gizmos")
    assert status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == "the server could not find the requested resource"


async def test_aggregated_discovery_is_served_when_asked_for(kube: KubeTarget) -> None:
    status, headers, body = await raw(kube.api_client, "GET", "/apis", headers={"Accept": AGGREGATED})
    assert status == 200
    assert body["kind"] == "APIGroupDiscoveryList"
    assert "apidiscovery.k8s.io" in headers["Content-Type"]
    apps = next(item for item in body["items"] if item["metadata"]["name"] == "apps")
    v1 = next(v for v in apps["versions"] if v["version"] == "v1")
    deployments = next(r for r in v1["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced"
    assert deployments["responseKind"] == {"group": "", "version": "", "kind": "Deployment"}
    subresources = {s["subresource"]: s["responseKind"] for s in deployments["subresources"]}
    assert subresources["status"] == {"group": "", "version": "", "kind": "Deployment"}
    assert subresources["scale"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    status, _, core = await raw(kube.api_client, "GET", "/api", headers={"Accept": AGGREGATED})
    assert status == 200
    assert core["kind"] == "APIGroupDiscoveryList"
    assert any(r["resource"] == "configmaps" for r in core["items"][0]["versions"][0]["resources"])


async def test_openapi_v3_indexes_every_group_version(kube: KubeTarget) -> None:
    status, _, body = await raw(kube.api_client, "GET", "/openapi/v3")
    assert status == 200
    index = json.loads(body)  # JSON, though kube-apiserver labels it text/plain
    assert "api/v1" in index["paths"]
    assert "apis/apps/v1" in index["paths"]
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, _, doc = await raw(kube.api_client, "GET", url.split("?")[0])
    assert status == 200
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    # kube-apiserver may inline the parameter or refer to a shared one
    assert any("fieldValidation" in (p.get("name") or p.get("$ref", "")) for p in patch["parameters"])


async def test_built_in_tables_name_their_columns_like_kube_apiserver(kube: KubeTarget) -> None:
    table = "application/json;as=Table;v=v1;g=meta.k8s.io"
    expected = {
        f"/api/v1/namespaces/{kube.namespace}/configmaps": ["Name", "Data", "Age"],
        f"/api/v1/namespaces/{kube.namespace}/secrets": ["Name", "Type", "Data", "Age"],
        f"/api/v1/namespaces/{kube.namespace}/services": [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector",
        ],
        f"/api/v1/namespaces/{kube.namespace}/pods": [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates",
        ],
        f"/apis/apps/v1/namespaces/{kube.namespace}/deployments": [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector",
        ],
        "/api/v1/namespaces": ["Name", "Status", "Age"],
    }
    for path, columns in expected.items():
        status, _, body = await raw(kube.api_client, "GET", path, headers={"Accept": table})
        assert status == 200
        assert [c["name"] for c in body["columnDefinitions"]] == columns, path
