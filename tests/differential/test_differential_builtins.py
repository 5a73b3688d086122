"""Differential scenarios for built-in kinds: CRUD answers, DELETE bodies, validation, immutability, scale."""

from __future__ import annotations

import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._dsl import Req, Scenario, check

NS = "/api/v1/namespaces/{ns}"
APPS = "/apis/apps/v1/namespaces/{ns}"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def _cm(name: str, **extra: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


def _deploy(name: str, app: str | None = None) -> dict[str, object]:
    labels = {"app": app or name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


_KINDS: list[tuple[str, str, dict[str, object]]] = [
    (NS, "configmaps", _cm("x", data={"a": "b"})),
    (NS, "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
    (NS, "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}),
    (
        NS,
        "services",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}},
    ),
    (
        NS,
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
        },
    ),
    (NS, "endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "x"}}),
    (
        NS,
        "events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "x"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "{ns}"},
        },
    ),
    (APPS, "deployments", _deploy("x")),
    (APPS, "replicasets", {**_deploy("x"), "kind": "ReplicaSet"}),
    (
        "/apis/coordination.k8s.io/v1/namespaces/{ns}",
        "leases",
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"}},
    ),
    (
        "/apis/events.k8s.io/v1/namespaces/{ns}",
        "events",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "x"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "a.example.com/c",
            "reportingInstance": "i",
            "action": "Act",
            "reason": "Why",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "{ns}"},
        },
    ),
]

DELETE_BODIES = [
    Scenario(
        f"delete answers like kube-apiserver: {base.split('/')[2]} {plural}",
        (
            Req("POST", f"{base}/{plural}", body, expect=201, compare=("kind",)),
            Req("DELETE", f"{base}/{plural}/x", expect=200, compare=("kind", "status", "details.kind")),
            Req("GET", f"{base}/{plural}/x", expect=404),
        ),
    )
    for base, plural, body in _KINDS
]

_REF = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "uid": "00000000-0000-0000-0000-00000000000",
    "controller": True,
}

VALIDATION = [
    Scenario(
        "an object has at most one controller ownerReference",
        (
            Req(
                "POST",
                f"{NS}/configmaps",
                _cm("x", metadata={"name": "x", "ownerReferences": [{**_REF, "name": n} for n in "ab"]}),
                expect=422,
                compare=("message",),
            ),
        ),
    ),
    Scenario(
        "a wrongly typed ConfigMap field is a 400",
        (Req("POST", f"{NS}/configmaps", _cm("x", data={"a": 1}), expect=400),),
    ),
    Scenario(
        "a wrongly typed Deployment field is a 400",
        (
            Req(
                "POST",
                f"{APPS}/deployments",
                {**_deploy("x"), "spec": {**_deploy("x")["spec"], "replicas": "two"}},  # type: ignore[dict-item]
                expect=400,
            ),
        ),
    ),
    Scenario(
        "a Deployment spec or ConfigMap data that is not an object is a 400 (the fuzz test found a 500)",
        (
            Req("POST", f"{APPS}/deployments", {**_deploy("x"), "spec": 5}, expect=400, compare=("message",)),
            Req("POST", f"{NS}/configmaps", {**_cm("y"), "data": [1]}, expect=400, compare=("message",)),
            Req(
                "POST", f"{NS}/configmaps", {**_cm("z"), "binaryData": "x"}, expect=400, compare=("message",)
            ),
        ),
    ),
    Scenario(
        "a wrongly typed field in a merge patch is a 422... or what the real one says",
        (
            Req("POST", f"{NS}/configmaps", _cm("x", data={"a": "b"}), expect=201),
            Req("PATCH", f"{NS}/configmaps/x", {"data": {"a": 5}}, content_type=MERGE),
        ),
    ),
    Scenario(
        "Secret data that is not base64 is a 400",
        (
            Req(
                "POST",
                f"{NS}/secrets",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "x"},
                    "data": {"k": "not base64!"},
                },
                expect=400,
            ),
        ),
    ),
    Scenario(
        "an immutable ConfigMap refuses data changes and un-immutabling",
        (
            Req("POST", f"{NS}/configmaps", _cm("x", data={"a": "b"}, immutable=True), expect=201),
            Req("PATCH", f"{NS}/configmaps/x", {"data": {"a": "c"}}, content_type=MERGE, expect=422),
            Req("PATCH", f"{NS}/configmaps/x", {"immutable": False}, content_type=MERGE, expect=422),
            Req("PATCH", f"{NS}/configmaps/x", {"metadata": {"labels": {"l": "v"}}}, content_type=MERGE),
        ),
    ),
    Scenario(
        "an immutable Secret refuses data changes",
        (
            Req(
                "POST",
                f"{NS}/secrets",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "x"},
                    "data": {"k": "dg=="},
                    "immutable": True,
                },
                expect=201,
            ),
            Req("PATCH", f"{NS}/secrets/x", {"stringData": {"k": "w"}}, content_type=MERGE, expect=422),
        ),
    ),
    Scenario(
        "a Deployment's selector is immutable",
        (
            Req("POST", f"{APPS}/deployments", _deploy("x"), expect=201),
            Req("PUT", f"{APPS}/deployments/x", _deploy("x", app="y"), expect=422),
        ),
    ),
    Scenario(
        "resourceVersion set on create is refused",
        (
            Req(
                "POST",
                f"{NS}/configmaps",
                {**_cm("x"), "metadata": {"name": "x", "resourceVersion": "5"}},
                compare=("message",),
            ),
        ),
    ),
    Scenario(
        "an apply body without apiVersion or kind is refused",
        (
            Req(
                "PATCH",
                f"{NS}/configmaps/x",
                '{"metadata": {"name": "x"}, "data": {"a": "b"}}',
                query=(("fieldManager", "m"),),
                content_type=APPLY,
            ),
            Req(
                "PATCH",
                f"{NS}/configmaps/x",
                '{"apiVersion": "v1", "metadata": {"name": "x"}, "data": {"a": "b"}}',
                query=(("fieldManager", "m"),),
                content_type=APPLY,
            ),
        ),
    ),
    Scenario(
        "empty maps are dropped where the real server drops them",
        (
            Req(
                "POST",
                f"{NS}/configmaps",
                {
                    **_cm("x", data={}, binaryData={}),
                    "metadata": {"name": "x", "labels": {}, "annotations": {}},
                },
                expect=201,
                compare=("?data", "?binaryData", "?metadata.labels", "?metadata.annotations"),
            ),
            Req(
                "GET",
                f"{NS}/configmaps/x",
                compare=("?data", "?binaryData", "?metadata.labels", "?metadata.annotations"),
            ),
        ),
    ),
    Scenario(
        "too many annotation bytes are a 422",
        (
            Req(
                "POST",
                f"{NS}/configmaps",
                {**_cm("x"), "metadata": {"name": "x", "annotations": {"a": "v" * (256 * 1024 + 1)}}},
                expect=422,
            ),
        ),
    ),
    Scenario(
        "a ConfigMap over 1 MiB is a 422",
        (Req("POST", f"{NS}/configmaps", _cm("x", data={"a": "v" * (1024 * 1024 + 1)}), expect=422),),
    ),
]

# --8<-- [start:scenario]
SCALE = [
    Scenario(
        "the Deployment scale subresource reports status.selector and credits the writer",
        (
            Req("POST", f"{APPS}/deployments", _deploy("x"), expect=201),
            # status.replicas is the Deployment controller's (real tier only): compare the selector
            Req(
                "GET",
                f"{APPS}/deployments/x/scale",
                compare=("kind", "apiVersion", "spec", "status.selector"),
            ),
            Req(
                "PATCH",
                f"{APPS}/deployments/x/scale",
                {"spec": {"replicas": 3}},
                query=(("fieldManager", "scaler"),),
                content_type=MERGE,
                expect=200,
                compare=("spec",),
            ),
            Req("GET", f"{APPS}/deployments/x", compare=("spec.replicas", "@writers")),
        ),
    ),
    Scenario(
        "a scale body whose spec or replicas has the wrong JSON type is a 400 (the fuzz test found a 500)",
        (
            Req("POST", f"{APPS}/deployments", _deploy("x"), expect=201),
            *(
                Req("PUT", f"{APPS}/deployments/x/scale", scale, expect=400, compare=("message",))
                for scale in (
                    {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "x"}, "spec": 5},
                    {
                        "apiVersion": "autoscaling/v1",
                        "kind": "Scale",
                        "metadata": {"name": "x"},
                        "spec": {"replicas": "2"},
                    },
                )
            ),
        ),
    ),
]


# --8<-- [end:scenario]


@pytest.mark.parametrize("scenario", DELETE_BODIES + VALIDATION + SCALE, ids=lambda s: s.name)
async def test_builtin_scenario(scenario: Scenario, kube_pair: tuple[KubeTarget, KubeTarget | None]) -> None:
    await check(scenario, kube_pair)
