"""The LoadTest controller's pure functions: the Job it wants, how a Job's status reads, what is invalid."""

from __future__ import annotations

import json
from typing import Any

from examples.loadtest.controller import (
    DEADLINE_MARGIN_SECONDS,
    GENERATION_ANNOTATION,
    LOAD_IMAGE,
    desired_job,
    job_name,
    progress,
    targets,
    validate_loadtest,
)


def loadtest(name: str = "home", generation: int = 3, **spec: Any) -> dict[str, Any]:
    body = {"service": "frontend", "scheme": "http", "requestsPerSecond": 100, **spec}
    return {
        "apiVersion": "beta.kuar.com/v1",
        "kind": "LoadTest",
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1", "generation": generation},
        "spec": body,
    }


def test_targets_are_json_lines_one_per_path_in_order_defaulting_to_the_root() -> None:
    assert targets({"service": "web.shop.svc", "scheme": "https"}) == [
        '{"method":"GET","url":"https://web.shop.svc/"}'
    ]
    lines = targets({"service": "web", "scheme": "http", "paths": ["/a", '/b?q="x"']})
    assert [json.loads(line)["url"] for line in lines] == ["http://web/a", 'http://web/b?q="x"']


def test_the_job_runs_vegeta_once_with_the_spec_as_data_not_code() -> None:
    job = desired_job(loadtest(durationSeconds=30, paths=["/", "/about"]))
    meta = job["metadata"]
    assert (meta["name"], meta["namespace"]) == ("home-loadtest", "shop")
    assert meta["annotations"] == {GENERATION_ANNOTATION: "3"}
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "beta.kuar.com/v1",
        "kind": "LoadTest",
        "name": "home",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 30 + DEADLINE_MARGIN_SECONDS
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == LOAD_IMAGE
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "TARGETS": '{"method":"GET","url":"http://frontend/"}\n{"method":"GET","url":"http://frontend/about"}',
        "RATE": "100",
        "DURATION": "30",
    }
    # nothing from the spec appears in the command itself
    assert "frontend" not in " ".join(container["command"])
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_the_duration_defaults_to_a_minute_when_the_crd_default_did_not_apply() -> None:
    env = {
        e["name"]: e["value"]
        for e in desired_job(loadtest())["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DURATION"] == "60"


def test_progress_reads_the_jobs_status() -> None:
    assert progress(None)[:3] == ("Pending", False, "JobPending")
    assert progress({"status": {}})[:3] == ("Pending", False, "JobPending")
    assert progress({"status": {"active": 1, "ready": 0}}) == (
        "Pending",
        False,
        "JobPending",
        "1 active Pod(s), none running yet",
    )
    assert progress({"status": {"active": 1, "ready": 1}})[:3] == ("Running", False, "JobRunning")
    done = {"type": "Complete", "status": "True", "message": "Reached expected number of succeeded pods"}
    assert progress({"status": {"succeeded": 1, "conditions": [done]}}) == (
        "Succeeded",
        True,
        "JobComplete",
        "the Job completed: Reached expected number of succeeded pods",
    )
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": ""}
    assert progress({"status": {"failed": 1, "conditions": [failed]}}) == (
        "Failed",
        False,
        "JobFailed",
        "the Job failed: DeadlineExceeded",
    )
    # a condition that is not True does not finish the run
    assert (
        progress({"status": {"active": 1, "ready": 1, "conditions": [{**done, "status": "False"}]}})[0]
        == "Running"
    )


def test_validation_covers_the_webhooks_rules_and_the_job_name() -> None:
    assert validate_loadtest(loadtest()) == []
    assert validate_loadtest({"metadata": {"name": "x"}}) == ["spec is missing"]
    assert validate_loadtest(loadtest(scheme="ftp")) == ["spec.scheme must be http or https, got 'ftp'"]
    longest = "a" * (63 - len("-loadtest"))
    assert validate_loadtest(loadtest(name=longest)) == []
    assert len(job_name(longest)) == 63
    (problem,) = validate_loadtest(loadtest(name=longest + "a"))
    assert "too long to name the Job" in problem
