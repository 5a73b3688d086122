"""Tests for the test kit's helpers (kctl_runtime.testing.helpers), on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from kctl_runtime.client import Client
from kctl_runtime.controller import Controller
from kctl_runtime.manager import Manager
from kctl_runtime.reconcile import Request, Result
from kctl_runtime.resource import CONFIGMAPS, CUSTOMRESOURCEDEFINITIONS, Resource
from kctl_runtime.testing.helpers import crd_resource, install_crd, running_manager
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name


def gadget_crd(group: str, *, scope: str = "Namespaced") -> dict[str, Any]:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [
                {"name": "v1alpha1", "served": True, "storage": False, "schema": {"openAPIV3Schema": schema}},
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}},
            ],
        },
    }


def test_crd_resource_names_the_storage_version_and_scope() -> None:
    assert crd_resource(gadget_crd("a.example.com")) == Resource("a.example.com", "v1", "gadgets", "Gadget")
    cluster = crd_resource(gadget_crd("b.example.com", scope="Cluster"))
    assert cluster.namespaced is False


async def test_install_crd_returns_a_resource_that_is_served_at_once(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    crd = gadget_crd(f"{unique_name('g')}.example.com")
    resource = await install_crd(client, crd)
    try:
        created = await client.create(
            resource,
            {"apiVersion": resource.api_version, "kind": "Gadget", "metadata": {"name": "x"}},
            namespace=kube.namespace,
        )
        assert created["metadata"]["name"] == "x"
        # installing again (a shared real tier) is fine
        assert await install_crd(client, crd) == resource
    finally:
        await client.delete(CUSTOMRESOURCEDEFINITIONS, crd["metadata"]["name"])


@pytest.mark.fake_only
async def test_install_crd_times_out_with_the_crd_name_when_it_is_never_served(fake_kube: KubeTarget) -> None:
    client = Client(fake_kube.api_client)
    crd = gadget_crd(f"{unique_name('g')}.example.com")
    assert fake_kube.fake is not None
    fake_kube.fake.faults.fail_next(1000, status=503, verb="list", resource="gadgets")
    with pytest.raises(TimeoutError, match=crd["metadata"]["name"]):
        await install_crd(client, crd, timeout=0.5)


async def test_running_manager_runs_controllers_inside_the_block_and_stops_after(kube: KubeTarget) -> None:
    seen: list[Request] = []

    async def reconcile(request: Request) -> Result:
        seen.append(request)
        return None

    client = Client(kube.api_client)
    name = unique_name("cm")
    await client.create(CONFIGMAPS, {"metadata": {"name": name}}, namespace=kube.namespace)
    manager = Manager(
        await kube.new_api_client(),
        namespace=kube.namespace,
        health_bind=None,
        metrics_bind=None,
        handle_signals=False,
        freeze_gc=False,
    )
    manager.add(Controller(unique_name("helper"), for_=CONFIGMAPS, reconciler=reconcile))
    async with running_manager(manager) as running:
        assert running is manager
        assert manager.ready

        async def reconciled() -> bool:
            return Request(name, kube.namespace) in seen

        await eventually(reconciled, message="reconciled inside the block")
    assert not manager.ready
