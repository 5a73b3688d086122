"""The Website workflow end to end, on the fake API server and on a real kube-apiserver.

Create, update, drift repair, invalid input, deletion (garbage collection), restart and leader
election: each test runs the real controller in a Manager against the `kube` fixture's server.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from examples.website_controller.controller import GIT_SYNC_IMAGE, WEBSITES, WebsiteReconciler
from examples.website_controller.tests.harness import (
    env,
    events_for,
    get_or_none,
    install_crd,
    make_available,
    ready_condition,
    running_controller,
    website,
)
from kctl_runtime.client import Client
from kctl_runtime.errors import Invalid
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.reconcile import Request
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS, SERVICES
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name


@pytest.fixture
async def api(kube: KubeTarget) -> Client:
    client = Client(kube.api_client)
    await install_crd(client)
    return client


async def children(api: Client, ns: str, name: str = "kubia") -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = await get_or_none(api, DEPLOYMENTS, f"{name}-website", ns)
    service = await get_or_none(api, SERVICES, f"{name}-website", ns)
    assert deployment is not None, "no Deployment yet"
    assert service is not None, "no Service yet"
    return deployment, service


async def test_a_new_website_gets_a_deployment_and_a_service_it_owns(kube: KubeTarget, api: Client) -> None:
    ns = kube.namespace
    async with running_controller(kube):
        created = await api.create(WEBSITES, website("kubia", ns))
        deployment, service = await eventually(lambda: children(api, ns), message="children created")

    uid = created["metadata"]["uid"]
    for child in (deployment, service):
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == uid
        assert ref["controller"] is True
        assert ref["blockOwnerDeletion"] is True
    assert env(deployment)["GITSYNC_REPO"] == created["spec"]["gitRepo"]
    assert env(deployment)["GITSYNC_REF"] == "main"  # the CRD's default
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images["git-sync"] == GIT_SYNC_IMAGE
    assert deployment["spec"]["template"]["metadata"]["labels"]["website"] == "kubia"
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"]["website"] == "kubia"
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["nodePort"] in kube.service_node_port_range
    for child in (deployment, service):  # created (never applied: no takeover) by our field manager
        managers = {(m["manager"], m["operation"]) for m in child["metadata"].get("managedFields") or []}
        assert ("website-controller", "Update") in managers, managers


async def test_status_reports_the_address_and_ready_follows_available_replicas(
    kube: KubeTarget, api: Client
) -> None:
    ns = kube.namespace
    async with running_controller(kube):
        created = await api.create(WEBSITES, website("kubia", ns, replicas=1))
        _, service = await eventually(lambda: children(api, ns), message="children created")

        async def progressing() -> dict[str, Any]:
            current = await api.get(WEBSITES, "kubia", ns)
            condition = ready_condition(current)
            assert condition is not None, "no Ready condition yet"
            assert condition["status"] == "False"
            assert condition["reason"] == "DeploymentProgressing"
            assert current["status"].get("observedGeneration") == created["metadata"]["generation"]
            assert current["status"].get("nodePort") == service["spec"]["ports"][0]["nodePort"]
            return current

        current = await eventually(progressing, message="Ready=False while no pod is available")
        ip = service["spec"]["clusterIP"]
        assert current["status"]["clusterIP"] == ip
        assert current["status"]["url"] == f"http://{ip}:80"

        await make_available(kube, api, "kubia-website", replicas=1)

        async def ready() -> bool:
            condition = ready_condition(await api.get(WEBSITES, "kubia", ns))
            assert condition is not None
            assert (condition["status"], condition["reason"]) == ("True", "DeploymentAvailable"), condition
            return True

        await eventually(ready, timeout=30, message="Ready=True once the Deployment reports 1 available")


async def test_changing_the_spec_updates_the_children(kube: KubeTarget, api: Client) -> None:
    ns = kube.namespace
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns, branch="main", replicas=1))
        await eventually(lambda: children(api, ns), message="children created")
        await api.patch(WEBSITES, "kubia", {"spec": {"branch": "gh-pages", "replicas": 3}}, namespace=ns)

        async def updated() -> bool:
            deployment, _ = await children(api, ns)
            assert env(deployment)["GITSYNC_REF"] == "gh-pages"
            assert deployment["spec"]["replicas"] == 3
            return True

        await eventually(updated, message="Deployment follows the new branch and replicas")


@pytest.mark.parametrize("child", ["Deployment", "Service"])
async def test_a_child_deleted_by_hand_is_recreated(kube: KubeTarget, api: Client, child: str) -> None:
    ns = kube.namespace
    resource = DEPLOYMENTS if child == "Deployment" else SERVICES
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns))
        deployment, service = await eventually(lambda: children(api, ns), message="children created")
        old_uid = (deployment if child == "Deployment" else service)["metadata"]["uid"]
        await api.delete(resource, "kubia-website", namespace=ns)

        async def recreated() -> bool:
            current = await get_or_none(api, resource, "kubia-website", ns)
            assert current is not None, f"{child} not recreated yet"
            assert current["metadata"]["uid"] != old_uid, "still the old object"
            assert not current["metadata"].get("deletionTimestamp")
            return True

        await eventually(recreated, timeout=20, message=f"{child} recreated")


async def test_a_hand_edit_of_a_managed_field_is_reverted_and_other_fields_are_kept(
    kube: KubeTarget, api: Client
) -> None:
    ns = kube.namespace
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns, replicas=2))
        await eventually(lambda: children(api, ns), message="children created")
        await api.patch(
            DEPLOYMENTS,
            "kubia-website",
            {"metadata": {"labels": {"team": "web"}}, "spec": {"replicas": 7}},
            namespace=ns,
        )
        await api.patch(SERVICES, "kubia-website", {"spec": {"type": "ClusterIP"}}, namespace=ns)

        async def repaired() -> bool:
            deployment, service = await children(api, ns)
            assert deployment["spec"]["replicas"] == 2
            assert service["spec"]["type"] == "NodePort"
            assert deployment["metadata"]["labels"].get("team") == "web", "a label we do not manage was lost"
            return True

        await eventually(repaired, timeout=20, message="managed fields repaired")


async def test_the_crd_schema_rejects_a_website_without_a_git_url(kube: KubeTarget, api: Client) -> None:
    with pytest.raises(Invalid):
        await api.create(WEBSITES, website("kubia", kube.namespace, gitRepo="not a url"))
    with pytest.raises(Invalid):
        await api.create(WEBSITES, website("kubia", kube.namespace, replicas=11))


async def test_an_invalid_spec_is_reported_once_and_not_retried(kube: KubeTarget, api: Client) -> None:
    ns = kube.namespace
    async with running_controller(kube) as running:
        # Passes the schema (an http URL), fails the controller's check (https only).
        await api.create(WEBSITES, website("kubia", ns, gitRepo="http://example.com/site.git"))

        async def invalid() -> dict[str, Any]:
            condition = ready_condition(await api.get(WEBSITES, "kubia", ns))
            assert condition is not None
            assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
            assert "https" in condition["message"]
            return condition

        await eventually(invalid, message="Ready=False reason InvalidSpec")

        async def warned() -> list[dict[str, Any]]:
            found = [e for e in await events_for(api, ns, "kubia") if e.get("reason") == "InvalidSpec"]
            assert found, "no InvalidSpec event yet"
            return found

        (event,) = await eventually(warned, message="a Warning event")
        assert event["type"] == "Warning"
        calls = len(running.reconciler.calls)
        await anyio.sleep(1.5)
        assert len(running.reconciler.calls) == calls, "a terminal error must not be retried (hot loop)"
        assert await get_or_none(api, DEPLOYMENTS, "kubia-website", ns) is None

        # Fixing the spec is the change that brings it back.
        await api.patch(
            WEBSITES, "kubia", {"spec": {"gitRepo": "https://example.com/site.git"}}, namespace=ns
        )
        await eventually(lambda: children(api, ns), message="children once the spec is valid")


async def test_deleting_the_website_deletes_its_children(kube: KubeTarget, api: Client) -> None:
    ns = kube.namespace
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns))
        await eventually(lambda: children(api, ns), message="children created")
        await api.delete(WEBSITES, "kubia", namespace=ns)

        async def collected() -> bool:
            for resource in (DEPLOYMENTS, SERVICES):
                leftover = await get_or_none(api, resource, "kubia-website", ns)
                assert leftover is None, f"{resource.kind} still there"
            return True

        await eventually(collected, timeout=30, message="garbage collection of the children")


async def test_a_restarted_controller_converges_on_what_changed_while_it_was_down(
    kube: KubeTarget, api: Client
) -> None:
    ns = kube.namespace
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns))
        await api.create(WEBSITES, website("other", ns))
        await eventually(lambda: children(api, ns), message="children created")
        await eventually(lambda: children(api, ns, "other"), message="children created")
    # Down: the spec changes, a child disappears, a new Website arrives.
    await api.patch(WEBSITES, "kubia", {"spec": {"branch": "release"}}, namespace=ns)
    await api.delete(SERVICES, "other-website", namespace=ns)
    await api.create(WEBSITES, website("late", ns))
    await anyio.sleep(0.5)
    assert env((await children(api, ns))[0])["GITSYNC_REF"] == "main", "nothing runs while it is down"
    async with running_controller(kube):

        async def converged() -> bool:
            assert env((await children(api, ns))[0])["GITSYNC_REF"] == "release"
            await children(api, ns, "other")
            await children(api, ns, "late")
            return True

        await eventually(converged, timeout=20, message="convergence after restart")


async def test_with_two_replicas_only_the_leader_reconciles_and_stopping_it_hands_over(
    kube: KubeTarget, api: Client
) -> None:
    ns = kube.namespace
    lease = unique_name("website-lease")

    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(
            lease_name=lease,
            lease_namespace=ns,
            identity=identity,
            lease_duration=6.0,
            renew_deadline=4.0,
            retry_period=0.5,
        )

    async with (
        running_controller(kube, leader_election=config("replica-a")) as a,
        running_controller(kube, leader_election=config("replica-b"), wait_leading=False) as b,
    ):
        await api.create(WEBSITES, website("kubia", ns))
        await eventually(lambda: children(api, ns), message="children created by the leader")
        await anyio.sleep(1.0)
        assert a.manager.is_leader
        assert not b.manager.is_leader
        assert a.reconciler.calls, "the leader reconciled"
        assert b.reconciler.calls == [], "the standby must not reconcile"

        a.manager.stop()  # graceful: releases the Lease

        async def b_leads() -> bool:
            return b.manager.is_leader

        await eventually(b_leads, timeout=15, message="the standby takes over")
        calls_of_a = len(a.reconciler.calls)
        await api.patch(WEBSITES, "kubia", {"spec": {"branch": "after-failover"}}, namespace=ns)

        async def updated_by_b() -> bool:
            deployment, _ = await children(api, ns)
            assert env(deployment)["GITSYNC_REF"] == "after-failover"
            return True

        await eventually(updated_by_b, timeout=15, message="the new leader reconciles")
        assert b.reconciler.calls
        assert len(a.reconciler.calls) == calls_of_a, "the old leader reconciled after stopping"


class ListSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))


async def test_a_converged_website_costs_no_write(kube: KubeTarget, api: Client) -> None:
    """What the server defaults or adds must not look like drift, or every reconcile would write."""
    ns = kube.namespace
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns, branch="gh-pages", replicas=2))
        await eventually(lambda: children(api, ns), message="children created")

        async def settled() -> bool:
            status = (await api.get(WEBSITES, "kubia", ns)).get("status") or {}
            assert status.get("url"), status
            return True

        await eventually(settled, message="status written")
    sink = ListSink()
    reconciler = WebsiteReconciler(api, sink)
    # The first pass may still record a status change the real Deployment controller made after the
    # manager stopped (it observed the new generation); it must not touch a child.
    assert await reconciler.reconcile(Request("kubia", ns)) is None
    before = await api.get(WEBSITES, "kubia", ns)
    assert await reconciler.reconcile(Request("kubia", ns)) is None
    assert sink.events == [], "a converged Website's children were written again"
    after = await api.get(WEBSITES, "kubia", ns)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "status rewritten"


async def test_a_child_name_taken_by_another_controller_is_a_conflict_until_it_goes_away(
    kube: KubeTarget, api: Client
) -> None:
    ns = kube.namespace
    owner = await api.create(CONFIGMAPS, {"metadata": {"name": "someone-else", "namespace": ns}})
    foreign = {
        "metadata": {
            "name": "kubia-website",
            "namespace": ns,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "someone-else",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"type": "ClusterIP", "ports": [{"port": 8080}], "selector": {"app": "other"}},
    }
    await api.create(SERVICES, foreign)
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns))

        async def conflict() -> bool:
            condition = ready_condition(await api.get(WEBSITES, "kubia", ns))
            assert condition is not None
            assert (condition["status"], condition["reason"]) == ("False", "ChildConflict"), condition
            return True

        await eventually(conflict, message="Ready=False reason ChildConflict")
        service = await api.get(SERVICES, "kubia-website", ns)
        assert service["spec"]["type"] == "ClusterIP", "took over another controller's Service"
        await api.delete(SERVICES, "kubia-website", namespace=ns)

        async def ours() -> bool:
            _, service = await children(api, ns)
            assert service["spec"]["type"] == "NodePort"
            return True

        await eventually(ours, timeout=20, message="the Website's own Service once the other is gone")
