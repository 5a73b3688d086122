"""The Website controller under hostile conditions (issue 10), on the fake and the real API server.

Objects of someone else with a child's name, child writes the server rejects for good, credentials
in the repository URL, and a late status write from a replica that is no longer the leader.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog

from examples.website_controller.api import Website
from examples.website_controller.controller import WEBSITES, WebsiteReconciler
from examples.website_controller.tests.harness import (
    REPO,
    events_for,
    get_or_none,
    install_crd,
    ready_condition,
    running_controller,
    website,
)
from kctl_runtime.client import Client
from kctl_runtime.errors import Conflict, NotFound
from kctl_runtime.reconcile import Request
from kctl_runtime.resource import DEPLOYMENTS, SERVICES, Resource
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

SECRET = "s3cr3t-t0ken"


@pytest.fixture
async def api(kube: KubeTarget) -> Client:
    client = Client(kube.api_client)
    await install_crd(client)
    return client


def someone_elses(kind: str, ns: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment or Service named like the Website ``kubia``'s child, made by another team."""
    labels = labels or {"app": "other-team"}
    meta: dict[str, Any] = {"name": "kubia-website", "namespace": ns, "labels": {"team": "other"}}
    if kind == "Service":
        return {
            "metadata": meta,
            "spec": {"type": "ClusterIP", "ports": [{"port": 8080}], "selector": labels},
        }
    return {
        "metadata": meta,
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


class ListSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))


async def condition_with(api: Client, ns: str, reason: str) -> dict[str, Any]:
    condition = ready_condition(await api.get(WEBSITES, "kubia", ns))
    assert condition is not None, "no Ready condition yet"
    assert (condition["status"], condition["reason"]) == ("False", reason), condition
    return condition


async def warning(api: Client, ns: str, reason: str) -> dict[str, Any]:
    found = [e for e in await events_for(api, ns, "kubia") if e.get("reason") == reason]
    assert found, f"no {reason} event yet"
    assert found[0]["type"] == "Warning"
    return found[0]


@pytest.mark.parametrize("resource", [DEPLOYMENTS, SERVICES], ids=["deployment", "service"])
async def test_an_object_nobody_controls_is_reported_never_taken_over_and_outlives_the_website(
    kube: KubeTarget, api: Client, resource: Resource
) -> None:
    """Regression (issue 10 item 1, data loss): an unowned Service of the child's name was force-applied
    (type, selector, ports changed, ownerReference added) and then garbage-collected with the Website."""
    ns = kube.namespace
    theirs = await api.create(resource, someone_elses(resource.kind, ns))
    async with running_controller(kube):
        await api.create(WEBSITES, website("kubia", ns))
        condition = await eventually(
            lambda: condition_with(api, ns, "ChildConflict"), message="Ready=False reason ChildConflict"
        )
        assert f"{resource.kind} kubia-website already exists and is not controlled" in condition["message"]
        event = await eventually(lambda: warning(api, ns, "ChildConflict"), message="a Warning event")
        assert "delete or rename it" in event["message"]
        await anyio.sleep(1.0)  # conflict_retry_seconds is 0.5 in the harness: it was re-checked
        after = await api.get(resource, "kubia-website", ns)
        # (its resourceVersion may move: the real Deployment controller writes its status)
        managers = {m["manager"] for m in after["metadata"].get("managedFields") or []}
        assert "website-controller" not in managers, managers
        assert after["spec"] == theirs["spec"]
        assert after["metadata"].get("labels") == theirs["metadata"].get("labels")
        assert not after["metadata"].get("ownerReferences")
        other = SERVICES if resource is DEPLOYMENTS else DEPLOYMENTS
        assert await get_or_none(api, other, "kubia-website", ns) is None, "half a Website was created"

        await api.delete(WEBSITES, "kubia", namespace=ns)

        async def website_gone() -> bool:
            with pytest.raises(NotFound):
                await api.get(WEBSITES, "kubia", ns)
            return True

        await eventually(website_gone, message="the Website deleted")
    await anyio.sleep(2.0)  # time for a garbage collector that had a reason to act
    survivor = await api.get(resource, "kubia-website", ns)
    assert survivor["metadata"]["uid"] == theirs["metadata"]["uid"]
    assert survivor["spec"] == after["spec"]


async def test_a_child_write_the_server_rejects_is_reported_and_retried_with_backoff(
    kube: KubeTarget, api: Client
) -> None:
    """Regression (issue 10 item 2): a 422 on a child was retried forever, visible only in the log.

    The Deployment is the Website's (controller ownerReference) but was made by hand with another
    selector; a Deployment's selector is immutable, so every apply fails with 422."""
    ns = kube.namespace
    created = await api.create(WEBSITES, website("kubia", ns))
    hand_made = someone_elses("Deployment", ns)
    hand_made["metadata"]["ownerReferences"] = [
        {
            "apiVersion": WEBSITES.api_version,
            "kind": WEBSITES.kind,
            "name": "kubia",
            "uid": created["metadata"]["uid"],
            "controller": True,
        }
    ]
    await api.create(DEPLOYMENTS, hand_made)
    async with running_controller(kube) as running:
        condition = await eventually(
            lambda: condition_with(api, ns, "ChildRejected"), message="Ready=False reason ChildRejected"
        )
        assert "Deployment kubia-website" in condition["message"]
        assert "immutable" in condition["message"]
        await eventually(lambda: warning(api, ns, "ChildRejected"), message="a Warning event")
        calls = len(running.reconciler.calls)
        await anyio.sleep(3.0)
        retried = len(running.reconciler.calls) - calls
    # 5 ms doubling: a handful of retries in 3 s (a hot loop would make hundreds), but retried.
    assert 1 <= retried <= 12, retried
    rejected = [e for e in await events_for(api, ns, "kubia") if e.get("reason") == "ChildRejected"]
    assert len(rejected) == 1, "one Warning per generation, not one per retry"
    deployment = await api.get(DEPLOYMENTS, "kubia-website", ns)
    assert deployment["spec"]["selector"] == hand_made["spec"]["selector"]


async def test_credentials_in_the_git_url_never_reach_status_events_or_logs(
    kube: KubeTarget, api: Client
) -> None:
    """Regression (issue 10 item 7): a token in an otherwise invalid URL was echoed everywhere."""
    ns = kube.namespace
    url = f"http://user:{SECRET}@example.com:99999/site.git"  # passes the CRD's pattern
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with running_controller(kube):
            await api.create(WEBSITES, website("kubia", ns, gitRepo=url))
            condition = await eventually(
                lambda: condition_with(api, ns, "InvalidSpec"), message="Ready=False reason InvalidSpec"
            )
            event = await eventually(lambda: warning(api, ns, "InvalidSpec"), message="a Warning event")
    assert "http://***@example.com" in condition["message"]
    assert SECRET not in condition["message"]
    assert SECRET not in event["message"]
    assert logs, "nothing logged"
    assert not [entry for entry in logs if SECRET in repr(entry)]
    assert await get_or_none(api, DEPLOYMENTS, "kubia-website", ns) is None


async def test_a_late_status_write_from_an_ex_leader_is_refused(kube: KubeTarget, api: Client) -> None:
    """Issue 10 item 9: status writes are conditional on the resourceVersion the writer read.

    The ex-leader read the Website, then lost its lease; the new leader reconciled and wrote status;
    the ex-leader's write, sent late, must not replace it."""
    ns = kube.namespace
    await api.create(WEBSITES, website("kubia", ns))
    seen_by_old_leader = await api.get(WEBSITES, "kubia", ns)
    new_leader = WebsiteReconciler(api, ListSink())
    await new_leader.reconcile(Request("kubia", ns))
    written = await api.get(WEBSITES, "kubia", ns)
    assert ready_condition(written) is not None

    ex_leader = WebsiteReconciler(api, ListSink())
    with pytest.raises(Conflict):
        await ex_leader._not_ready(
            Website.from_object(seen_by_old_leader), "InvalidSpec", "a verdict on a stale read"
        )
    after = await api.get(WEBSITES, "kubia", ns)
    assert after["status"] == written["status"], "the stale write replaced the new leader's status"


async def test_a_website_the_model_rejects_is_reported_once_and_never_crashes_or_loops(
    kube: KubeTarget, api: Client
) -> None:
    """Issue 12 item 6: a Website that passed the API server's schema but does not parse into the model.

    The CRD's pattern forbids whitespace in ``spec.gitRepo``; kube-apiserver matches it with Go's
    regexp, whose ``\\s`` is ASCII-only, so a non-breaking space gets through, and the model (Unicode
    ``\\s``) rejects it. The reconciler must report it on the object and in one log line, go on with
    other Websites, not retry it, and pick it up again once it is fixed."""
    ns = kube.namespace
    bad_url = "https://github.com/luksa/kubia\u00a0website.git"
    with structlog.testing.capture_logs() as logs:
        async with running_controller(kube) as running:
            await api.create(WEBSITES, website("kubia", ns, gitRepo=bad_url))  # the server accepts it
            await api.create(WEBSITES, website("good", ns))
            condition = await eventually(
                lambda: condition_with(api, ns, "InvalidSpec"), message="Ready=False reason InvalidSpec"
            )
            assert condition["message"].startswith("the Website does not match its model: spec.gitRepo:")
            assert condition["observedGeneration"] == 1
            await eventually(lambda: warning(api, ns, "InvalidSpec"), message="a Warning event")
            await eventually(
                lambda: get_or_none(api, DEPLOYMENTS, "good-website", ns), message="the good Website served"
            )
            await anyio.sleep(2.0)  # room for a requeue storm, or a second event
            kubia_calls = [r for r in running.reconciler.calls if r.name == "kubia"]
            assert 1 <= len(kubia_calls) <= 2, kubia_calls  # not retried: terminal
            assert await get_or_none(api, DEPLOYMENTS, "kubia-website", ns) is None
            warnings = [e for e in await events_for(api, ns, "kubia") if e.get("reason") == "InvalidSpec"]
            assert len(warnings) == 1, warnings
            # fixed by its owner: a new generation, reconciled again, served
            await api.patch(WEBSITES, "kubia", {"spec": {"gitRepo": REPO}}, namespace=ns)
            await eventually(
                lambda: get_or_none(api, DEPLOYMENTS, "kubia-website", ns), message="the fixed Website served"
            )
    terminal = [e for e in logs if "does not match its model" in str(e.get("error", ""))]
    assert len(terminal) == 1, terminal
    assert terminal[0]["log_level"] == "warning"
    assert "exc_info" not in terminal[0], "a parse failure is no bug: no traceback"
    assert terminal[0]["error"].startswith(f"Website {ns}/kubia does not match its model: spec.gitRepo:")
