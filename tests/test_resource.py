"""Resource paths, keys and discovery (discovery talks HTTP to the API server)."""

from __future__ import annotations

import pytest

from kctl_runtime.resource import (
    CONFIGMAPS,
    CUSTOMRESOURCEDEFINITIONS,
    DEPLOYMENTS,
    NAMESPACES,
    Resource,
    discover,
    object_key,
)
from kctl_runtime.testing.pytest_plugin import KubeTarget


def test_core_resources_live_under_api_and_others_under_apis() -> None:
    assert CONFIGMAPS.path() == "/api/v1/configmaps"
    assert CONFIGMAPS.path("ns") == "/api/v1/namespaces/ns/configmaps"
    assert CONFIGMAPS.path("ns", "x", "status") == "/api/v1/namespaces/ns/configmaps/x/status"
    assert DEPLOYMENTS.path("ns", "web") == "/apis/apps/v1/namespaces/ns/deployments/web"
    assert NAMESPACES.path(name="default") == "/api/v1/namespaces/default"
    assert CUSTOMRESOURCEDEFINITIONS.path() == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def test_api_version_omits_the_empty_core_group() -> None:
    assert CONFIGMAPS.api_version == "v1"
    assert DEPLOYMENTS.api_version == "apps/v1"


def test_a_namespace_for_a_cluster_scoped_resource_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        NAMESPACES.path("ns")


def test_a_subresource_without_a_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="subresource"):
        CONFIGMAPS.path("ns", subresource="status")


def test_object_keys_are_namespace_slash_name_or_just_the_name() -> None:
    assert object_key({"metadata": {"namespace": "ns", "name": "a"}}) == "ns/a"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"


def test_resources_are_hashable_values() -> None:
    again = Resource("", "v1", "configmaps", "ConfigMap")
    assert again == CONFIGMAPS
    assert len({again, CONFIGMAPS}) == 1


async def test_discovery_finds_core_and_group_resources(kube: KubeTarget) -> None:
    assert await discover(kube.api_client, "v1", "ConfigMap") == CONFIGMAPS
    assert await discover(kube.api_client, "v1", "Namespace") == NAMESPACES
    assert await discover(kube.api_client, "apps/v1", "Deployment") == DEPLOYMENTS


async def test_discovery_of_an_unknown_kind_raises_lookup_error(kube: KubeTarget) -> None:
    with pytest.raises(LookupError, match="NoSuchKind"):
        await discover(kube.api_client, "v1", "NoSuchKind")
