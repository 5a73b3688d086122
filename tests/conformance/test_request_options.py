"""Malformed requests: bad bodies, query options and resource versions, answered as the real server does."""

from __future__ import annotations

import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import configmap, raw


def _cms(kube: KubeTarget) -> str:
    return f"/api/v1/namespaces/{kube.namespace}/configmaps"


async def test_a_body_of_another_kind_cannot_be_handled(kube: KubeTarget) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}}
    status, _, answer = await raw(kube.api_client, "POST", _cms(kube), body=body)
    assert status == 400
    assert answer["message"] == (
        'Secret in version "v1" cannot be handled as a ConfigMap: '
        "converting (v1.Secret) to (core.ConfigMap): unknown conversion"
    )


async def test_a_body_of_an_unknown_version_cannot_be_handled(kube: KubeTarget) -> None:
    body = {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "k"}}
    status, _, answer = await raw(kube.api_client, "POST", _cms(kube), body=body)
    assert status == 400
    assert answer["message"] == (
        'ConfigMap in version "v2" cannot be handled as a ConfigMap: no kind "ConfigMap" is registered '
        'for version "v2" in scheme "pkg/runtime/scheme.go:111"'
    )


async def test_a_body_that_is_not_json_is_bad_request(kube: KubeTarget) -> None:
    status, _, answer = await raw(kube.api_client, "POST", _cms(kube), body=b"{not json")
    assert status == 400
    assert answer["reason"] == "BadRequest"
    assert answer["message"].startswith(
        "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
        "json parse error: "
    )


@pytest.mark.parametrize(("verb", "options"), [("POST", "CreateOptions"), ("DELETE", "DeleteOptions")])
async def test_an_unknown_dry_run_value_is_invalid(kube: KubeTarget, verb: str, options: str) -> None:
    await raw(kube.api_client, "POST", _cms(kube), body=configmap("dry"))
    path = _cms(kube) if verb == "POST" else f"{_cms(kube)}/dry"
    body = configmap("other") if verb == "POST" else None
    status, _, answer = await raw(kube.api_client, verb, path, query=[("dryRun", "Foo")], body=body)
    assert status == 422
    assert answer["message"] == (
        f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Foo"]: supported values: "All"'
    )
    assert answer["details"]["kind"] == options
    assert answer["details"]["group"] == "meta.k8s.io"


async def test_an_unknown_field_validation_value_is_invalid(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client, "POST", _cms(kube), query=[("fieldValidation", "Bogus")], body=configmap("fv")
    )
    assert status == 422
    assert answer["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Bogus": '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )


async def test_an_unknown_propagation_policy_is_invalid(kube: KubeTarget) -> None:
    await raw(kube.api_client, "POST", _cms(kube), body=configmap("pp"))
    status, _, answer = await raw(
        kube.api_client, "DELETE", f"{_cms(kube)}/pp", query=[("propagationPolicy", "Bogus")]
    )
    assert status == 422
    assert answer["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Bogus": '
        'supported values: "Foreground", "Background", "Orphan", "nil"'
    )


async def test_server_side_apply_needs_a_field_manager(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client,
        "PATCH",
        f"{_cms(kube)}/ssa",
        body=b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}}',
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert status == 422
    assert answer["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )


async def test_resource_version_match_needs_a_resource_version(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client, "GET", _cms(kube), query=[("resourceVersionMatch", "Exact")]
    )
    assert status == 422
    assert answer["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
    )


async def test_a_list_at_a_future_resource_version_times_out(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client,
        "GET",
        _cms(kube),
        query=[("resourceVersion", "999999999"), ("resourceVersionMatch", "Exact")],
    )
    assert status == 504
    assert answer["reason"] == "Timeout"
    assert answer["message"].startswith("Timeout: Too large resource version: 999999999, current: ")


async def test_an_unparsable_timeout_is_bad_request(kube: KubeTarget) -> None:
    status, _, answer = await raw(kube.api_client, "GET", _cms(kube), query=[("timeoutSeconds", "abc")])
    assert status == 400
    assert answer["message"] == 'strconv.ParseInt: parsing "abc": invalid syntax'


async def test_an_unparsable_watch_resource_version_is_an_internal_error(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client, "GET", _cms(kube), query=[("watch", "true"), ("resourceVersion", "abc")]
    )
    assert status == 500
    assert (
        answer["message"]
        == 'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax'
    )


async def test_invalid_label_keys_are_rejected_with_the_field(kube: KubeTarget) -> None:
    body = configmap("lbl")
    body["metadata"]["labels"] = {"bad key!": "v"}
    status, _, answer = await raw(kube.api_client, "POST", _cms(kube), body=body)
    assert status == 422
    [cause] = answer["details"]["causes"]
    assert cause["field"] == "metadata.labels"
    assert cause["message"].startswith(
        'Invalid value: "bad key!": name part must consist of alphanumeric characters'
    )


async def test_a_finalizer_must_be_standard_or_qualified(kube: KubeTarget) -> None:
    body = configmap("fin")
    body["metadata"]["finalizers"] = ["example.com/fine", "nodomain"]
    status, _, answer = await raw(kube.api_client, "POST", _cms(kube), body=body)
    assert status == 422
    assert answer["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "nodomain": '
            "name is neither a standard finalizer name nor is it fully qualified",
            "field": "metadata.finalizers[1]",
        }
    ]


async def test_an_owner_reference_needs_a_uid(kube: KubeTarget) -> None:
    body = configmap("own")
    body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}]
    status, _, answer = await raw(kube.api_client, "POST", _cms(kube), body=body)
    assert status == 422
    assert answer["message"] == (
        'ConfigMap "own" is invalid: metadata.ownerReferences.uid: Invalid value: "": must not be empty'
    )


async def test_a_list_at_resource_version_zero_ignores_limit(kube: KubeTarget) -> None:
    for name in ("z1", "z2", "z3"):
        await raw(kube.api_client, "POST", _cms(kube), body=configmap(name))
    status, _, answer = await raw(
        kube.api_client, "GET", _cms(kube), query=[("limit", "1"), ("resourceVersion", "0")]
    )
    assert status == 200
    assert "continue" not in answer["metadata"]
    assert {"z1", "z2", "z3"} <= {i["metadata"]["name"] for i in answer["items"]}
