"""The LoadTest workflow on both tiers: rejected, defaulted, running, finished, replaced, collected.

The webhooks are served locally and called by the API server under test (the fake or
kube-apiserver); the controller runs in a manager; the Job's progress is driven as the tier allows
(see :func:`examples.loadtest.tests.harness.drive_job`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from examples.loadtest.controller import GENERATION_ANNOTATION, LOAD_IMAGE, LOADTESTS, job_name
from examples.loadtest.tests.harness import (
    admission,
    drive_job,
    events_for,
    get_or_none,
    loadtest,
    running_controller,
)
from kctl_runtime._rest import request_json
from kctl_runtime.client import Client
from kctl_runtime.errors import Invalid
from kctl_runtime.resource import JOBS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually


def env_of(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def complete(lt: dict[str, Any]) -> dict[str, Any]:
    """The LoadTest's ``Complete`` condition (``{}`` while it has none)."""
    found = [c for c in (lt.get("status") or {}).get("conditions") or () if c["type"] == "Complete"]
    assert len(found) <= 1, found
    return dict(found[0]) if found else {}


async def test_an_invalid_loadtest_is_rejected_and_never_runs(kube: KubeTarget, tmp_path: Path) -> None:
    api = Client(kube.api_client)
    async with admission(kube, tmp_path) as path, running_controller(kube):
        bad = loadtest("bad", service="Web_Frontend", scheme="ftp", requestsPerSecond=0, paths=["x"])
        try:
            await request_json(kube.api_client, "POST", path, body=bad)
        except Invalid as exc:
            message = str(exc)
        else:
            raise AssertionError("an invalid LoadTest was admitted")
        assert 'admission webhook "validate.loadtests.beta.kuar.com" denied the request' in message
        for problem in ("requestsPerSecond", "spec.scheme", "spec.paths[0]", "spec.service"):
            assert problem in message
        assert await get_or_none(api, "bad", kube.namespace, LOADTESTS) is None
        assert await get_or_none(api, job_name("bad"), kube.namespace) is None


async def test_without_the_webhook_the_controller_refuses_an_invalid_spec(kube: KubeTarget) -> None:
    api = Client(kube.api_client)
    async with running_controller(kube):
        await api.create(
            LOADTESTS,
            loadtest("sneaky", service="web", scheme="gopher", requestsPerSecond=5),
            namespace=kube.namespace,
        )

        async def invalid() -> dict[str, Any]:
            lt = await api.get(LOADTESTS, "sneaky", kube.namespace)
            assert (lt.get("status") or {}).get("phase") == "Invalid", lt.get("status")
            return lt

        lt = await eventually(invalid, timeout=30)
        assert complete(lt)["reason"] == "InvalidSpec"
        assert "spec.scheme must be http or https, got 'gopher'" in complete(lt)["message"]

        async def warned() -> bool:  # the recorder writes events asynchronously
            warnings = [e for e in await events_for(api, kube.namespace, "sneaky") if e["type"] == "Warning"]
            assert [e["reason"] for e in warnings] in ([], ["InvalidSpec"]), warnings
            return bool(warnings)

        await eventually(warned, timeout=30, message="no InvalidSpec warning")
        assert await get_or_none(api, job_name("sneaky"), kube.namespace) is None


async def test_a_loadtest_is_defaulted_runs_as_an_owned_job_and_reports_its_progress(
    kube: KubeTarget, tmp_path: Path
) -> None:
    api = Client(kube.api_client)
    async with admission(kube, tmp_path) as path, running_controller(kube):
        created = await request_json(
            kube.api_client,
            "POST",
            path,
            body=loadtest(
                "home", service="frontend", requestsPerSecond=100, durationSeconds=30, paths=["/", "/about"]
            ),
        )
        assert created["spec"]["scheme"] == "http"  # defaulted by the mutating webhook

        async def job() -> dict[str, Any]:
            found = await get_or_none(api, job_name("home"), kube.namespace)
            assert found is not None, "no Job yet"
            return found

        made = await eventually(job, timeout=30)
        (owner,) = made["metadata"]["ownerReferences"]
        assert owner["uid"] == created["metadata"]["uid"]
        assert owner["controller"] is True
        assert owner["blockOwnerDeletion"] is True
        assert made["metadata"]["annotations"][GENERATION_ANNOTATION] == "1"
        pod = made["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["containers"][0]["image"] == LOAD_IMAGE
        env = env_of(made)
        assert [json.loads(line) for line in env["TARGETS"].splitlines()] == [
            {"method": "GET", "url": "http://frontend/"},
            {"method": "GET", "url": "http://frontend/about"},
        ]
        assert (env["RATE"], env["DURATION"]) == ("100", "30")
        assert made["spec"]["backoffLimit"] == 0

        async def phase(expected: str) -> dict[str, Any]:
            lt = await api.get(LOADTESTS, "home", kube.namespace)
            assert (lt.get("status") or {}).get("phase") == expected, lt.get("status")
            return lt

        pending = await eventually(lambda: phase("Pending"), timeout=30)
        assert complete(pending)["reason"] == "JobPending"  # no Pod of the Job runs yet
        await drive_job(kube, api, job_name("home"), "running")
        running = await eventually(lambda: phase("Running"), timeout=30)
        assert running["status"]["active"] == 1
        assert running["status"]["job"]["uid"] == made["metadata"]["uid"]
        assert complete(running)["reason"] == "JobRunning"

        await drive_job(kube, api, job_name("home"), "succeeded")
        done = await eventually(lambda: phase("Succeeded"), timeout=30)
        assert done["status"]["succeeded"] == 1
        assert done["status"]["active"] == 0
        assert done["status"]["completionTime"]
        assert complete(done)["status"] == "True"
        assert complete(done)["reason"] == "JobComplete"
        assert done["status"]["observedGeneration"] == 1

        # deleting the LoadTest garbage-collects its Job
        await api.delete(LOADTESTS, "home", namespace=kube.namespace)

        async def collected() -> bool:
            return await get_or_none(api, job_name("home"), kube.namespace) is None

        await eventually(collected, timeout=60, message="the Job was not garbage-collected")


async def test_a_failed_job_fails_the_loadtest_and_a_spec_change_runs_it_again(kube: KubeTarget) -> None:
    api = Client(kube.api_client)
    async with running_controller(kube):
        await api.create(
            LOADTESTS,
            loadtest("flaky", service="web", scheme="https", requestsPerSecond=10, durationSeconds=5),
            namespace=kube.namespace,
        )

        async def job(generation: str) -> dict[str, Any]:
            found = await get_or_none(api, job_name("flaky"), kube.namespace)
            assert found is not None, "no Job yet"
            assert found["metadata"]["annotations"][GENERATION_ANNOTATION] == generation
            return found

        first = await eventually(lambda: job("1"), timeout=30)
        await drive_job(kube, api, job_name("flaky"), "failed")

        async def failed() -> dict[str, Any]:
            lt = await api.get(LOADTESTS, "flaky", kube.namespace)
            assert (lt.get("status") or {}).get("phase") == "Failed", lt.get("status")
            return lt

        lt = await eventually(failed, timeout=30)
        assert complete(lt)["reason"] == "JobFailed"
        assert lt["status"]["failed"] == 1

        await api.patch(LOADTESTS, "flaky", {"spec": {"requestsPerSecond": 20}}, namespace=kube.namespace)
        second = await eventually(lambda: job("2"), timeout=60)
        assert second["metadata"]["uid"] != first["metadata"]["uid"]
        assert env_of(second)["RATE"] == "20"

        async def restarted() -> bool:  # the recorder writes events asynchronously
            found = [e for e in await events_for(api, kube.namespace, "flaky") if e["reason"] == "Restarted"]
            assert len(found) <= 1, found
            return len(found) == 1

        await eventually(restarted, timeout=30, message="no Restarted event")


async def test_a_job_the_loadtest_does_not_control_is_left_alone(kube: KubeTarget) -> None:
    api = Client(kube.api_client)
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name("taken"), "namespace": kube.namespace},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}
            },
        },
    }
    before = await api.create(JOBS, foreign)
    async with running_controller(kube):
        await api.create(
            LOADTESTS,
            loadtest("taken", service="web", scheme="http", requestsPerSecond=1),
            namespace=kube.namespace,
        )

        async def conflict() -> dict[str, Any]:
            lt = await api.get(LOADTESTS, "taken", kube.namespace)
            assert complete(lt).get("reason") == "ChildConflict", lt.get("status")
            return lt

        lt = await eventually(conflict, timeout=30)
        assert "is not controlled by this LoadTest" in complete(lt)["message"]
    after = await api.get(JOBS, job_name("taken"), kube.namespace)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert "ownerReferences" not in after["metadata"]
    assert GENERATION_ANNOTATION not in (after["metadata"].get("annotations") or {})


async def test_drift_of_our_job_is_repaired_in_place_without_restarting_the_run(kube: KubeTarget) -> None:
    api = Client(kube.api_client)
    async with running_controller(kube):
        await api.create(
            LOADTESTS,
            loadtest("drift", service="web", scheme="http", requestsPerSecond=3),
            namespace=kube.namespace,
        )

        async def job() -> dict[str, Any]:
            found = await get_or_none(api, job_name("drift"), kube.namespace)
            assert found is not None, "no Job yet"
            return found

        made = await eventually(job, timeout=30)
        assert made["metadata"]["labels"]["app.kubernetes.io/instance"] == "drift"
        # someone removes a label the controller set, and changes a mutable field it manages
        await api.patch(
            JOBS,
            job_name("drift"),
            {
                "metadata": {"labels": {"app.kubernetes.io/instance": None}},
                "spec": {"activeDeadlineSeconds": 3600},
            },
            namespace=kube.namespace,
        )

        async def repaired() -> dict[str, Any]:
            found = await job()
            assert found["metadata"]["labels"].get("app.kubernetes.io/instance") == "drift", found["metadata"]
            assert found["spec"]["activeDeadlineSeconds"] == 60 + 120
            return found

        fixed = await eventually(repaired, timeout=30, message="drift not repaired")
        assert fixed["metadata"]["uid"] == made["metadata"]["uid"]  # the same run, not a new Job

        async def reported() -> bool:  # the recorder writes events asynchronously
            return any(e["reason"] == "Updated" for e in await events_for(api, kube.namespace, "drift"))

        await eventually(reported, timeout=30, message="no Updated event")
