"""batch/v1 Jobs: what the registry defaults and refuses, the same on the fake and on kube-apiserver.

The real tier also runs kube-controller-manager's Job controller, which writes a Job's status from
the Pods it creates; these scenarios read only what the API server itself decides (defaults,
validation answers), so that controller cannot change their outcome.
"""

from __future__ import annotations

from typing import Any

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

from ._support import raw


def job(name: str, *, restart_policy: str | None = "Never", **spec: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "work", "image": "busybox:1.36", "command": ["true"]}]}
    if restart_policy is not None:
        pod["restartPolicy"] = restart_policy
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod}, **spec},
    }


def jobs_path(kube: KubeTarget, name: str = "") -> str:
    base = f"/apis/batch/v1/namespaces/{kube.namespace}/jobs"
    return f"{base}/{name}" if name else base


def causes(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c.get("field", ""), c.get("message", "")) for c in body["details"]["causes"]}


async def test_a_new_job_gets_the_registry_defaults_labels_and_selector(kube: KubeTarget) -> None:
    status, _, made = await raw(kube.api_client, "POST", jobs_path(kube), body=job("defaults"))
    assert status == 201, made
    uid = made["metadata"]["uid"]
    generated = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "defaults",
        "controller-uid": uid,
        "job-name": "defaults",
    }
    assert made["metadata"]["labels"] == generated
    assert made["metadata"]["generation"] == 1
    spec = made["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert spec["template"]["metadata"]["labels"] == generated
    for key, value in {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "manualSelector": False,
        "podReplacementPolicy": "TerminatingOrFailed",
        "suspend": False,
    }.items():
        assert spec[key] == value, key
    pod = spec["template"]["spec"]
    assert pod["dnsPolicy"] == "ClusterFirst"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert made.get("status") in (None, {})


async def test_own_labels_of_a_job_are_kept(kube: KubeTarget) -> None:
    body = job("labelled")
    body["metadata"]["labels"] = {"app": "load"}
    status, _, made = await raw(kube.api_client, "POST", jobs_path(kube), body=body)
    assert status == 201, made
    assert made["metadata"]["labels"] == {"app": "load"}
    assert made["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "labelled"


async def test_an_invalid_job_spec_is_422_with_the_real_causes(kube: KubeTarget) -> None:
    status, _, body = await raw(
        kube.api_client, "POST", jobs_path(kube), body=job("bad", restart_policy="Always", backoffLimit=-1)
    )
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert causes(body) == {
        ("spec.backoffLimit", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"'),
    }
    status, _, body = await raw(
        kube.api_client, "POST", jobs_path(kube), body=job("none", restart_policy=None)
    )
    assert status == 422
    assert (
        "spec.template.spec.restartPolicy",
        'Required value: valid values: "OnFailure", "Never"',
    ) in causes(body)


async def test_a_job_template_is_immutable_but_parallelism_is_not(kube: KubeTarget) -> None:
    status, _, made = await raw(kube.api_client, "POST", jobs_path(kube), body=job("immutable"))
    assert status == 201, made
    merge = {"Content-Type": "application/merge-patch+json"}
    status, _, body = await raw(
        kube.api_client,
        "PATCH",
        jobs_path(kube, "immutable"),
        body={"spec": {"template": {"spec": {"containers": [{"name": "work", "image": "busybox:1.37"}]}}}},
        headers=merge,
    )
    assert status == 422, body
    [(field, message)] = causes(body)
    assert field == "spec.template"
    assert message.endswith(": field is immutable")
    status, _, body = await raw(
        kube.api_client,
        "PATCH",
        jobs_path(kube, "immutable"),
        body={"spec": {"completions": 3}},
        headers=merge,
    )
    assert status == 422
    assert causes(body) == {("spec.completions", "Invalid value: 3: field is immutable")}
    status, _, body = await raw(
        kube.api_client,
        "PATCH",
        jobs_path(kube, "immutable"),
        body={"spec": {"parallelism": 2, "activeDeadlineSeconds": 600}},
        headers=merge,
    )
    assert status == 200, body
    assert body["spec"]["parallelism"] == 2
    assert body["metadata"]["generation"] == 2


async def test_job_status_writes_are_validated_like_the_real_registry(kube: KubeTarget) -> None:
    status, _, made = await raw(kube.api_client, "POST", jobs_path(kube), body=job("status", suspend=True))
    assert status == 201, made
    path = jobs_path(kube, "status") + "/status"
    merge = {"Content-Type": "application/merge-patch+json"}
    bad: list[tuple[dict[str, Any], tuple[str, str]]] = [
        (
            {
                "conditions": [{"type": "Complete", "status": "True"}],
                "completionTime": "2026-01-01T00:00:00Z",
            },
            (
                "status.conditions",
                "Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true "
                "condition",
            ),
        ),
        (
            {"completionTime": "2026-01-01T00:00:00Z"},
            (
                "status.completionTime",
                'Invalid value: "2026-01-01T00:00:00Z": cannot set completionTime when there is no '
                "Complete=True condition",
            ),
        ),
        ({"active": -1}, ("status.active", "Invalid value: -1: must be greater than or equal to 0")),
    ]
    for patch, cause in bad:
        status, _, body = await raw(kube.api_client, "PATCH", path, body={"status": patch}, headers=merge)
        assert status == 422, (patch, body)
        assert cause in causes(body), (patch, body)
    finished = {
        "startTime": "2026-01-01T00:00:00Z",
        "completionTime": "2026-01-01T00:01:00Z",
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
        ],
    }
    status, _, body = await raw(kube.api_client, "PATCH", path, body={"status": finished}, headers=merge)
    assert status == 200, body
    assert body["status"]["succeeded"] == 1
    status, _, body = await raw(
        kube.api_client, "PATCH", path, body={"status": {"succeeded": 0}}, headers=merge
    )
    assert status == 422
    assert ("status.succeeded", "Invalid value: 0: cannot decrease the succeeded counter") in causes(body)


async def test_deleting_a_job_orphans_its_pods_by_default_with_the_real_warning(kube: KubeTarget) -> None:
    for name in ("orphaning", "background"):
        status, _, made = await raw(kube.api_client, "POST", jobs_path(kube), body=job(name, suspend=True))
        assert status == 201, made
    status, headers, body = await raw(kube.api_client, "DELETE", jobs_path(kube, "orphaning"))
    assert status == 200, body
    assert "child pods are preserved by default when jobs are deleted" in headers.get("Warning", "")
    assert body["metadata"]["finalizers"] == ["orphan"]
    assert body["metadata"]["deletionTimestamp"]
    status, headers, body = await raw(
        kube.api_client,
        "DELETE",
        jobs_path(kube, "background"),
        body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    assert status == 200, body
    assert "Warning" not in headers

    async def both_gone() -> bool:
        gone = [
            (await raw(kube.api_client, "GET", jobs_path(kube, n)))[0] == 404
            for n in ("orphaning", "background")
        ]
        return all(gone)

    await eventually(both_gone, timeout=30)
