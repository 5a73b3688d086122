"""Services get a cluster IP and, for NodePort, node ports, as the real allocators do."""

from __future__ import annotations

import ipaddress

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import core_api


def service(name: str, type_: str = "ClusterIP") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


async def test_a_service_gets_a_unique_cluster_ip(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    first = await core.create_namespaced_service(kube.namespace, service("one"))
    second = await core.create_namespaced_service(kube.namespace, service("two"))
    for made in (first, second):
        ipaddress.ip_address(made.spec.cluster_ip)
        assert made.spec.cluster_ips == [made.spec.cluster_ip]
        assert made.spec.ports[0].protocol == "TCP"
    assert first.spec.cluster_ip != second.spec.cluster_ip


async def test_a_headless_service_keeps_cluster_ip_none(kube: KubeTarget) -> None:
    body = service("headless")
    body["spec"]["clusterIP"] = "None"  # type: ignore[index]
    made = await core_api(kube.api_client).create_namespaced_service(kube.namespace, body)
    assert made.spec.cluster_ip == "None"


async def test_a_node_port_service_gets_a_port_in_the_node_port_range(kube: KubeTarget) -> None:
    made = await core_api(kube.api_client).create_namespaced_service(
        kube.namespace, service("np", "NodePort")
    )
    assert made.spec.ports[0].node_port in kube.service_node_port_range  # default 30000-32767


async def test_string_data_of_a_secret_is_folded_into_data(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    made = await core.create_namespaced_secret(
        kube.namespace,
        {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}, "data": {"a": "Yg=="}},
    )
    assert made.data == {"a": "Yg==", "password": "aHVudGVyMg=="}
    assert made.string_data is None
    assert made.type == "Opaque"
