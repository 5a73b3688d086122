"""CustomResourceDefinitions: serving, scope, versions, validation, defaulting, pruning, deletion."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually

from ._support import Crd, custom_api, ext_api, raw, status_of
from .conftest import CrdFactory

MERGE = "application/merge-patch+json"


def widget(
    crd: Crd, name: str, spec: dict[str, Any] | None = None, version: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": f"{crd.group}/{version or crd.versions[0]}",
        "kind": crd.kind,
        "metadata": {"name": name},
        "spec": {"size": 3} if spec is None else spec,
    }


async def test_an_established_crd_reports_its_conditions_and_accepted_names(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd(short_names=["wd"])
    got = await ext_api(kube.api_client).read_custom_resource_definition(crd.name)
    conditions = {c.type: c for c in got.status.conditions}
    assert conditions["Established"].status == "True"
    assert conditions["NamesAccepted"].status == "True"
    assert got.status.accepted_names.kind == "Widget"
    assert got.status.accepted_names.plural == "widgets"
    assert got.status.stored_versions == ["v1"]


async def test_custom_objects_get_generation_uid_and_their_api_version(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    made = await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "w")
    )
    assert made["apiVersion"] == crd.api_version
    assert made["kind"] == "Widget"
    assert made["metadata"]["generation"] == 1
    assert made["metadata"]["uid"]
    got = await custom.get_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, "w")
    assert got["spec"]["size"] == 3


async def test_custom_object_spec_changes_bump_generation_and_status_changes_do_not(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "g")
    )
    spec = await custom.patch_namespaced_custom_object(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "g",
        {"spec": {"size": 4}},
        _content_type=MERGE,
    )
    assert spec["metadata"]["generation"] == 2
    status = await custom.patch_namespaced_custom_object_status(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "g",
        {"status": {"phase": "Ready"}},
        _content_type=MERGE,
    )
    assert status["metadata"]["generation"] == 2
    assert status["status"] == {"phase": "Ready"}
    label = await custom.patch_namespaced_custom_object(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "g",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type=MERGE,
    )
    assert label["metadata"]["generation"] == 2


async def test_the_main_resource_ignores_status_when_the_status_subresource_is_on(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    body = widget(crd, "s")
    body["status"] = {"phase": "Sneaky"}
    made = await custom.create_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, body)
    assert "status" not in made
    patched = await custom.patch_namespaced_custom_object(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "s",
        {"status": {"phase": "Sneaky"}},
        _content_type=MERGE,
    )
    assert "status" not in patched


async def test_without_a_status_subresource_status_is_an_ordinary_field(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd(status=False)
    custom = custom_api(kube.api_client)
    body = widget(crd, "plain")
    body["status"] = {"phase": "Set"}
    made = await custom.create_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, body)
    assert made["status"] == {"phase": "Set"}
    status, _, _ = await raw(kube.api_client, "GET", f"{crd.path(kube.namespace)}/plain/status")
    assert status == 404
    patched = await custom.patch_namespaced_custom_object(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "plain",
        {"status": {"phase": "Other"}},
        _content_type=MERGE,
    )
    assert patched["metadata"]["generation"] == 2


async def test_schema_violations_are_rejected_with_422_and_field_causes(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(
            crd.group,
            "v1",
            kube.namespace,
            crd.plural,
            widget(crd, "bad", {"size": "big", "color": "purple"}),
        )
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["group"] == crd.group
    assert status["details"]["kind"] == "Widget"
    assert status["details"]["name"] == "bad"
    fields = {(c["reason"], c["field"]) for c in status["details"]["causes"]}
    assert ("FieldValueTypeInvalid", "spec.size") in fields
    assert ("FieldValueNotSupported", "spec.color") in fields
    assert status["message"].startswith(f'Widget.{crd.group} "bad" is invalid: ')


async def test_a_missing_required_field_is_field_value_required(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(
            crd.group, "v1", kube.namespace, crd.plural, widget(crd, "req", {"color": "red"})
        )
    causes = status_of(caught.value)["details"]["causes"]
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"} in causes


async def test_defaults_are_applied_and_unknown_fields_pruned(kube: KubeTarget, make_crd: CrdFactory) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    made = await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "d", {"size": 2, "unknownField": "x"})
    )
    assert made["spec"] == {"size": 2, "color": "red"}
    stored = await custom.get_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, "d")
    assert stored["spec"] == {"size": 2, "color": "red"}


async def test_updates_are_validated_too(kube: KubeTarget, make_crd: CrdFactory) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "u")
    )
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            crd.group,
            "v1",
            kube.namespace,
            crd.plural,
            "u",
            {"spec": {"size": 1000}},
            _content_type=MERGE,
        )
    assert caught.value.status == 422


async def test_strategic_merge_patch_on_a_custom_resource_is_unsupported_media_type(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "smp")
    )
    status, _, answer = await raw(
        kube.api_client,
        "PATCH",
        f"{crd.path(kube.namespace)}/smp",
        body={"spec": {"size": 5}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert status == 415
    assert answer["reason"] == "UnsupportedMediaType"


async def test_a_cluster_scoped_crd_serves_objects_without_a_namespace(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd(scope="Cluster")
    custom = custom_api(kube.api_client)
    body = widget(crd, "global")
    body["metadata"]["namespace"] = "ignored"
    made = await custom.create_cluster_custom_object(crd.group, "v1", crd.plural, body)
    assert "namespace" not in made["metadata"]
    listed = await custom.list_cluster_custom_object(crd.group, "v1", crd.plural)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["global"]
    status, _, _ = await raw(
        kube.api_client, "GET", f"/apis/{crd.group}/v1/namespaces/{kube.namespace}/{crd.plural}"
    )
    assert status == 404


async def test_every_served_version_reads_the_same_objects(kube: KubeTarget, make_crd: CrdFactory) -> None:
    crd = await make_crd(versions=["v1", "v1beta1"])
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1beta1", kube.namespace, crd.plural, widget(crd, "mv", version="v1beta1")
    )
    as_v1 = await custom.get_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, "mv")
    as_beta = await custom.get_namespaced_custom_object(
        crd.group, "v1beta1", kube.namespace, crd.plural, "mv"
    )
    assert as_v1["apiVersion"] == f"{crd.group}/v1"
    assert as_beta["apiVersion"] == f"{crd.group}/v1beta1"
    assert as_v1["metadata"]["uid"] == as_beta["metadata"]["uid"]
    status, _, group = await raw(kube.api_client, "GET", f"/apis/{crd.group}")
    assert status == 200
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]


async def test_a_version_that_is_not_served_answers_not_found(kube: KubeTarget, make_crd: CrdFactory) -> None:
    crd = await make_crd(versions=["v1", "v1alpha1"], served={"v1alpha1": False})
    status, _, _ = await raw(kube.api_client, "GET", crd.path(kube.namespace, "v1alpha1"))
    assert status == 404
    status, _, _ = await raw(kube.api_client, "GET", crd.path(kube.namespace, "v1"))
    assert status == 200


async def test_discovery_lists_the_custom_resource_with_names_and_subresources(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd(short_names=["wd"], categories=["kctl-all"], scale=True)
    status, _, resources = await raw(kube.api_client, "GET", f"/apis/{crd.group}/v1")
    assert status == 200
    by_name = {r["name"]: r for r in resources["resources"]}
    main = by_name["widgets"]
    assert main["kind"] == "Widget"
    assert main["namespaced"] is True
    assert main["singularName"] == "widget"
    assert main["categories"] == ["kctl-all"]
    assert main["shortNames"][0].startswith("wd")
    assert sorted(main["verbs"]) == sorted(
        ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    )
    assert "widgets/status" in by_name
    assert by_name["widgets/scale"]["kind"] == "Scale"
    status, _, groups = await raw(kube.api_client, "GET", "/apis")
    assert crd.group in [g["name"] for g in groups["groups"]]


async def test_the_scale_subresource_reads_and_writes_spec_replicas(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd(scale=True)
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "sc", {"size": 1, "replicas": 2})
    )
    scale = await custom.get_namespaced_custom_object_scale(crd.group, "v1", kube.namespace, crd.plural, "sc")
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    await custom.patch_namespaced_custom_object_scale(
        crd.group,
        "v1",
        kube.namespace,
        crd.plural,
        "sc",
        {"spec": {"replicas": 5}},
        _content_type=MERGE,
    )
    got = await custom.get_namespaced_custom_object(crd.group, "v1", kube.namespace, crd.plural, "sc")
    assert got["spec"]["replicas"] == 5


async def test_printer_columns_shape_the_table_output(kube: KubeTarget, make_crd: CrdFactory) -> None:
    crd = await make_crd(
        printer_columns=[
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        ]
    )
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "t")
    )
    status, _, table = await raw(
        kube.api_client,
        "GET",
        crd.path(kube.namespace),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    assert status == 200
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Color", "Phase"]
    assert table["columnDefinitions"][2]["priority"] == 1
    assert table["rows"][0]["cells"] == ["t", 3, "red", None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_a_crd_without_printer_columns_prints_name_and_age(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "t")
    )
    status, _, table = await raw(
        kube.api_client,
        "GET",
        crd.path(kube.namespace),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    assert status == 200
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"][0] == "t"


async def test_an_invalid_crd_is_rejected(kube: KubeTarget) -> None:
    ext = ext_api(kube.api_client)
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong.name.example.com"},
        "spec": {
            "group": "kctl-invalid.example.com",
            "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    with pytest.raises(ApiException) as caught:
        await ext.create_custom_resource_definition(body)
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert any(c["field"] == "metadata.name" for c in status["details"]["causes"])


async def test_deleting_a_crd_deletes_its_objects_and_stops_serving(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    custom = custom_api(kube.api_client)
    await custom.create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "bye")
    )
    await ext_api(kube.api_client).delete_custom_resource_definition(crd.name)

    async def unserved() -> bool:
        status, _, _ = await raw(kube.api_client, "GET", crd.path(kube.namespace))
        assert status == 404
        ext = ext_api(kube.api_client)
        try:
            await ext.read_custom_resource_definition(crd.name)
        except ApiException as exc:
            return exc.status == 404
        raise AssertionError("CRD still present")

    await eventually(unserved, timeout=30, message="CRD and its resource gone")


async def test_strict_field_validation_rejects_unknown_fields(kube: KubeTarget, make_crd: CrdFactory) -> None:
    crd = await make_crd()
    status, _, answer = await raw(
        kube.api_client,
        "POST",
        crd.path(kube.namespace),
        query=[("fieldValidation", "Strict")],
        body=widget(crd, "strict", {"size": 2, "colour": "red"}),
    )
    assert status == 400
    assert answer["reason"] == "BadRequest"
    assert answer["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: '
        'strict decoding error: unknown field "spec.colour"'
    )


async def test_unknown_fields_are_pruned_with_a_warning_by_default(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    status, headers, answer = await raw(
        kube.api_client,
        "POST",
        crd.path(kube.namespace),
        body=widget(crd, "warned", {"size": 2, "colour": "red"}),
    )
    assert status == 201
    assert "colour" not in answer["spec"]
    assert 'unknown field \\"spec.colour\\"' in headers.get("Warning", "")


async def test_items_of_a_custom_resource_list_carry_api_version_and_kind(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    await custom_api(kube.api_client).create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "untyped")
    )
    status, _, body = await raw(kube.api_client, "GET", crd.path(kube.namespace))
    assert status == 200
    assert body["kind"] == "WidgetList"
    [item] = body["items"]
    assert item["apiVersion"] == crd.api_version
    assert item["kind"] == "Widget"


async def test_a_custom_resource_body_of_another_kind_is_invalid(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    body = {**widget(crd, "other"), "kind": "Gadget"}
    status, _, answer = await raw(kube.api_client, "POST", crd.path(kube.namespace), body=body)
    assert status == 422
    assert (
        answer["message"]
        == f'Gadget.{crd.group} "other" is invalid: kind: Invalid value: "Gadget": must be Widget'
    )


async def test_a_custom_resource_body_of_another_version_is_bad_request(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    body = {**widget(crd, "v9"), "apiVersion": f"{crd.group}/v9"}
    status, _, answer = await raw(kube.api_client, "POST", crd.path(kube.namespace), body=body)
    assert status == 400
    assert answer["message"] == (
        f"the API version in the data ({crd.group}/v9) does not match "
        f"the expected API version ({crd.api_version})"
    )


async def test_custom_resources_support_only_metadata_field_selectors(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    status, _, answer = await raw(
        kube.api_client, "GET", crd.path(kube.namespace), query=[("fieldSelector", "spec.size=1")]
    )
    assert status == 400
    assert answer["message"] == "field label not supported: spec.size"


async def test_deleting_a_custom_resource_answers_a_success_status(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    made = await custom_api(kube.api_client).create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "gone")
    )
    status, _, answer = await raw(kube.api_client, "DELETE", f"{crd.path(kube.namespace)}/gone")
    assert status == 200
    assert answer["kind"] == "Status"
    assert answer["status"] == "Success"
    assert answer["details"] == {
        "name": "gone",
        "group": crd.group,
        "kind": crd.plural,
        "uid": made["metadata"]["uid"],
    }


async def test_an_unknown_subresource_of_a_custom_resource_is_not_found(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    await custom_api(kube.api_client).create_namespaced_custom_object(
        crd.group, "v1", kube.namespace, crd.plural, widget(crd, "nosub")
    )
    status, _, answer = await raw(kube.api_client, "GET", f"{crd.path(kube.namespace)}/nosub/scale")
    assert status == 404
    assert answer["message"] == f'{crd.plural}.{crd.group} "nosub" not found'


async def test_a_custom_resource_list_always_has_a_continue_field(
    kube: KubeTarget, make_crd: CrdFactory
) -> None:
    crd = await make_crd()
    status, _, answer = await raw(kube.api_client, "GET", crd.path(kube.namespace))
    assert status == 200
    assert answer["metadata"]["continue"] == ""
