"""metadata.generation and the status subresource: which writes change what."""

from __future__ import annotations

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import apps_api, custom_api, deployment, raw
from .conftest import CrdFactory


async def test_a_deployment_starts_at_generation_one(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    created = await apps.create_namespaced_deployment(kube.namespace, deployment("gen"))
    assert created.metadata.generation == 1


async def test_a_spec_change_bumps_generation(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    await apps.create_namespaced_deployment(kube.namespace, deployment("gen"))
    patched = await apps.patch_namespaced_deployment("gen", kube.namespace, {"spec": {"replicas": 3}})
    assert patched.metadata.generation == 2


async def test_a_label_change_keeps_generation(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    created = await apps.create_namespaced_deployment(kube.namespace, deployment("gen"))
    patched = await apps.patch_namespaced_deployment(
        "gen", kube.namespace, {"metadata": {"labels": {"new": "label"}}}
    )
    assert patched.metadata.generation == 1
    assert patched.metadata.resource_version != created.metadata.resource_version


async def test_an_annotation_change_bumps_a_deployments_generation(kube: KubeTarget) -> None:
    # apps/v1 Deployments count annotations as spec: they are copied to the ReplicaSets
    apps = apps_api(kube.api_client)
    await apps.create_namespaced_deployment(kube.namespace, deployment("gen"))
    patched = await apps.patch_namespaced_deployment(
        "gen", kube.namespace, {"metadata": {"annotations": {"a": "b"}}}
    )
    assert patched.metadata.generation == 2


async def test_an_annotation_change_keeps_a_custom_resources_generation(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    body = {"apiVersion": crd.api_version, "kind": crd.kind, "metadata": {"name": "g"}, "spec": {"size": 1}}
    await custom.create_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, body)
    patched = await custom.patch_namespaced_custom_object(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "g",
        {"metadata": {"annotations": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )
    assert patched["metadata"]["generation"] == 1


async def test_a_status_write_keeps_generation_and_spec(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    await apps.create_namespaced_deployment(kube.namespace, deployment("gen"))
    patched = await apps.patch_namespaced_deployment_status(
        "gen", kube.namespace, {"spec": {"replicas": 7}, "status": {"observedGeneration": 1, "replicas": 1}}
    )
    assert patched.metadata.generation == 1
    assert patched.status.observed_generation == 1
    assert patched.spec.replicas == 1


async def test_writes_to_the_main_resource_ignore_status(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    await apps.create_namespaced_deployment(kube.namespace, deployment("split"))
    await apps.patch_namespaced_deployment_status("split", kube.namespace, {"status": {"replicas": 1}})
    patched = await apps.patch_namespaced_deployment(
        "split", kube.namespace, {"spec": {"replicas": 2}, "status": {"replicas": 99}}
    )
    assert patched.spec.replicas == 2
    assert patched.status.replicas != 99  # (the real deployment controller may have written status)


async def test_status_given_at_create_is_dropped(kube: KubeTarget) -> None:
    body = deployment("created-with-status")
    body["status"] = {"replicas": 5, "observedGeneration": 9}
    status, _, answer = await raw(
        kube.api_client, "POST", f"/apis/apps/v1/namespaces/{kube.namespace}/deployments", body=body
    )
    assert status == 201
    assert (answer.get("status") or {}).get("replicas") is None
    assert (answer.get("status") or {}).get("observedGeneration") is None


async def test_a_status_put_changes_only_status(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    created = await apps.create_namespaced_deployment(kube.namespace, deployment("put"))
    body = created.to_dict()
    status, _, current = await raw(
        kube.api_client, "GET", f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/put"
    )
    assert status == 200
    del current["metadata"]["resourceVersion"]  # the deployment controller may write status meanwhile
    current["status"] = {"replicas": 4}
    current["metadata"]["labels"] = {"ignored": "yes"}
    current["spec"]["replicas"] = 9
    status, _, answer = await raw(
        kube.api_client,
        "PUT",
        f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/put/status",
        body=current,
    )
    assert status == 200
    assert answer["status"]["replicas"] == 4
    assert answer["spec"]["replicas"] == body["spec"]["replicas"]
    assert answer["metadata"]["generation"] == 1


async def test_configmaps_carry_no_generation(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client,
        "POST",
        f"/api/v1/namespaces/{kube.namespace}/configmaps",
        body={"metadata": {"name": "nogen"}, "data": {"a": "b"}},
    )
    assert status == 201
    assert "generation" not in answer["metadata"]
