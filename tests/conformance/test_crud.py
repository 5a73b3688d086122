"""Create / get / list / update / delete of built-in objects, and the metadata the server owns."""

from __future__ import annotations

import re

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import apps_api, configmap, core_api, raw, status_of


async def test_create_fills_in_uid_creation_timestamp_and_a_resource_version(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("a"))
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.resource_version.isdigit()
    assert created.metadata.namespace == kube.namespace
    fetched = await core.read_namespaced_config_map("a", kube.namespace)
    assert fetched.metadata.uid == created.metadata.uid
    assert fetched.metadata.resource_version == created.metadata.resource_version
    assert fetched.data == {"k": "v"}


async def test_raw_object_carries_api_version_kind_and_rfc3339_timestamp(kube: KubeTarget) -> None:
    await core_api(kube.api_client).create_namespaced_config_map(kube.namespace, configmap("a"))
    status, _, body = await raw(kube.api_client, "GET", f"/api/v1/namespaces/{kube.namespace}/configmaps/a")
    assert status == 200
    assert body["apiVersion"] == "v1"
    assert body["kind"] == "ConfigMap"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["metadata"]["creationTimestamp"])


async def test_every_write_gets_a_larger_resource_version(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("a"))
    versions = [int(created.metadata.resource_version)]
    for i in range(3):
        updated = await core.patch_namespaced_config_map("a", kube.namespace, {"data": {"i": str(i)}})
        versions.append(int(updated.metadata.resource_version))
    other = await core.create_namespaced_config_map(kube.namespace, configmap("b"))
    versions.append(int(other.metadata.resource_version))
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


async def test_generate_name_appends_five_random_characters(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    body = {"metadata": {"generateName": "gen-"}, "data": {}}
    first = await core.create_namespaced_config_map(kube.namespace, body)
    second = await core.create_namespaced_config_map(kube.namespace, body)
    for made in (first, second):
        assert re.fullmatch(r"gen-[a-z0-9]{5}", made.metadata.name)
        assert made.metadata.generate_name == "gen-"
    assert first.metadata.name != second.metadata.name


async def test_create_without_name_or_generate_name_is_invalid(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(kube.namespace, {"metadata": {}, "data": {}})
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert "name or generateName is required" in status["message"]


async def test_an_invalid_name_is_rejected_with_422_and_the_field(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(kube.namespace, configmap("Not_Valid"))
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["name"] == "Not_Valid"
    assert status["details"]["kind"] == "ConfigMap"
    assert status["message"].startswith(
        'ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid"'
    )


async def test_creating_an_existing_name_is_already_exists(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("dup"))
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(kube.namespace, configmap("dup"))
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == 'configmaps "dup" already exists'
    assert status["details"] == {"name": "dup", "kind": "configmaps"}


async def test_getting_a_missing_object_is_not_found_with_the_real_message(kube: KubeTarget) -> None:
    apps = apps_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await apps.read_namespaced_deployment("nope", kube.namespace)
    status = status_of(caught.value)
    assert caught.value.status == 404
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["reason"] == "NotFound"
    assert status["message"] == 'deployments.apps "nope" not found'
    assert status["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


async def test_namespace_comes_from_the_url_when_the_body_has_none(kube: KubeTarget) -> None:
    status, _, body = await raw(
        kube.api_client, "POST", f"/api/v1/namespaces/{kube.namespace}/configmaps", body=configmap("nons")
    )
    assert status == 201
    assert body["metadata"]["namespace"] == kube.namespace


async def test_a_body_namespace_that_differs_from_the_url_is_bad_request(kube: KubeTarget) -> None:
    body = configmap("x")
    body["metadata"]["namespace"] = "somewhere-else"
    status, _, answer = await raw(
        kube.api_client, "POST", f"/api/v1/namespaces/{kube.namespace}/configmaps", body=body
    )
    assert status == 400
    assert answer["reason"] == "BadRequest"
    assert answer["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )


async def test_creating_in_a_missing_namespace_is_not_found_for_the_namespace(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map("no-such-namespace-kctl", configmap("x"))
    status = status_of(caught.value)
    assert caught.value.status == 404
    assert status["message"] == 'namespaces "no-such-namespace-kctl" not found'
    assert status["details"] == {"name": "no-such-namespace-kctl", "kind": "namespaces"}


async def test_update_with_a_stale_resource_version_is_a_conflict(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("c"))
    await core.patch_namespaced_config_map("c", kube.namespace, {"data": {"k": "new"}})
    stale = configmap("c", data={"k": "mine"})
    stale["metadata"]["resourceVersion"] = created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        await core.replace_namespaced_config_map("c", kube.namespace, stale)
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert status["details"] == {"name": "c", "kind": "configmaps"}


async def test_update_without_resource_version_is_unconditional(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("u"))
    await core.patch_namespaced_config_map("u", kube.namespace, {"data": {"k": "other"}})
    replaced = await core.replace_namespaced_config_map(
        "u", kube.namespace, configmap("u", data={"k": "final"})
    )
    assert replaced.data == {"k": "final"}


async def test_a_put_with_another_uid_is_a_precondition_conflict(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("keep"))
    body = configmap("keep", data={"k": "2"})
    body["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    status, _, answer = await raw(
        kube.api_client, "PUT", f"/api/v1/namespaces/{kube.namespace}/configmaps/keep", body=body
    )
    assert status == 409
    assert answer["reason"] == "Conflict"
    assert answer["message"] == (
        'Operation cannot be fulfilled on configmaps "keep": StorageError: invalid object, Code: 4, '
        f"Key: /registry/configmaps/{kube.namespace}/keep, ResourceVersion: 0, AdditionalErrorMsg: "
        "Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, "
        f"UID in object meta: {created.metadata.uid}"
    )
    assert answer["details"] == {"name": "keep", "kind": "configmaps"}


async def test_creation_timestamp_and_uid_survive_an_update_that_omits_them(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("omit"))
    replaced = await core.replace_namespaced_config_map(
        "omit", kube.namespace, configmap("omit", data={"k": "2"})
    )
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp


async def test_update_of_a_missing_object_is_not_found(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.replace_namespaced_config_map("ghost", kube.namespace, configmap("ghost"))
    assert caught.value.status == 404


async def test_a_name_in_the_body_that_differs_from_the_url_is_bad_request(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("right"))
    status, _, answer = await raw(
        kube.api_client,
        "PUT",
        f"/api/v1/namespaces/{kube.namespace}/configmaps/right",
        body=configmap("wrong"),
    )
    assert status == 400
    assert answer["reason"] == "BadRequest"
    assert answer["message"] == "the name of the object (wrong) does not match the name on the URL (right)"


async def test_an_update_that_changes_nothing_keeps_the_resource_version(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("same"))
    again = await core.patch_namespaced_config_map("same", kube.namespace, {"data": {"k": "v"}})
    assert again.metadata.resource_version == created.metadata.resource_version


async def test_delete_removes_the_object_and_answers_a_success_status(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("gone"))
    status, _, answer = await raw(
        kube.api_client, "DELETE", f"/api/v1/namespaces/{kube.namespace}/configmaps/gone"
    )
    assert status == 200
    assert answer["kind"] == "Status"
    assert answer["status"] == "Success"
    assert answer["details"]["name"] == "gone"
    assert answer["details"]["kind"] == "configmaps"
    assert answer["details"]["uid"] == created.metadata.uid
    with pytest.raises(ApiException) as caught:
        await core.read_namespaced_config_map("gone", kube.namespace)
    assert caught.value.status == 404


async def test_delete_with_a_wrong_uid_precondition_is_a_conflict(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("pre"))
    with pytest.raises(ApiException) as caught:
        await core.delete_namespaced_config_map(
            "pre", kube.namespace, body={"preconditions": {"uid": "not-the-uid"}}
        )
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on ConfigMap "pre": the UID in the precondition (not-the-uid) '
        f"does not match the UID in record ({created.metadata.uid}). "
        "The object might have been deleted and then recreated"
    )
    assert status["details"] == {"name": "pre", "kind": "ConfigMap"}
    await core.read_namespaced_config_map("pre", kube.namespace)


async def test_delete_with_a_stale_resource_version_precondition_is_a_conflict(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("prerv"))
    await core.patch_namespaced_config_map("prerv", kube.namespace, {"data": {"k": "2"}})
    with pytest.raises(ApiException) as caught:
        await core.delete_namespaced_config_map(
            "prerv",
            kube.namespace,
            body={"preconditions": {"resourceVersion": created.metadata.resource_version}},
        )
    assert caught.value.status == 409
    current = await core.read_namespaced_config_map("prerv", kube.namespace)
    assert status_of(caught.value)["message"] == (
        'Operation cannot be fulfilled on ConfigMap "prerv": the ResourceVersion in the precondition '
        f"({created.metadata.resource_version}) does not match the ResourceVersion in record "
        f"({current.metadata.resource_version}). The object might have been modified"
    )


async def test_delete_with_matching_preconditions_deletes(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("ok"))
    await core.delete_namespaced_config_map(
        "ok",
        kube.namespace,
        body={
            "preconditions": {
                "uid": created.metadata.uid,
                "resourceVersion": created.metadata.resource_version,
            }
        },
    )
    with pytest.raises(ApiException):
        await core.read_namespaced_config_map("ok", kube.namespace)


async def test_deletecollection_removes_only_the_selected_objects(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    for i in range(3):
        await core.create_namespaced_config_map(
            kube.namespace, configmap(f"doomed-{i}", labels={"fate": "doomed"})
        )
    await core.create_namespaced_config_map(kube.namespace, configmap("kept", labels={"fate": "kept"}))
    await core.delete_collection_namespaced_config_map(kube.namespace, label_selector="fate=doomed")
    left = await core.list_namespaced_config_map(kube.namespace, label_selector="fate")
    assert [c.metadata.name for c in left.items] == ["kept"]


async def test_dry_run_create_validates_but_stores_nothing(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    made = await core.create_namespaced_config_map(kube.namespace, configmap("dry"), dry_run="All")
    assert made.metadata.name == "dry"
    with pytest.raises(ApiException) as caught:
        await core.read_namespaced_config_map("dry", kube.namespace)
    assert caught.value.status == 404
    with pytest.raises(ApiException) as invalid:
        await core.create_namespaced_config_map(kube.namespace, configmap("Bad_Name"), dry_run="All")
    assert invalid.value.status == 422


async def test_dry_run_update_patch_and_delete_change_nothing(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    created = await core.create_namespaced_config_map(kube.namespace, configmap("dry2"))
    patched = await core.patch_namespaced_config_map(
        "dry2", kube.namespace, {"data": {"k": "x"}}, dry_run="All"
    )
    assert patched.data == {"k": "x"}
    await core.replace_namespaced_config_map(
        "dry2", kube.namespace, configmap("dry2", data={"k": "y"}), dry_run="All"
    )
    await core.delete_namespaced_config_map("dry2", kube.namespace, dry_run="All")
    current = await core.read_namespaced_config_map("dry2", kube.namespace)
    assert current.data == {"k": "v"}
    assert current.metadata.resource_version == created.metadata.resource_version


async def test_post_to_a_named_object_path_is_method_not_allowed(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client, "POST", f"/api/v1/namespaces/{kube.namespace}/configmaps/x", body=configmap("x")
    )
    assert status == 405
    assert answer["kind"] == "Status"
    assert answer["reason"] == "MethodNotAllowed"
    assert answer["message"] == "the server does not allow this method on the requested resource"


async def test_namespaces_do_not_support_deletecollection(kube: KubeTarget) -> None:
    status, _, answer = await raw(
        kube.api_client, "DELETE", "/api/v1/namespaces", query=[("labelSelector", "kctl-nothing-has-this")]
    )
    assert status == 405
    assert answer["reason"] == "MethodNotAllowed"
    assert answer["details"] == {}


async def test_an_unknown_resource_path_is_not_found(kube: KubeTarget) -> None:
    status, _, answer = await raw(kube.api_client, "GET", f"/api/v1/namespaces/{kube.namespace}/gizmos")
    assert status == 404
    assert answer["reason"] == "NotFound"
    assert answer["message"] == "the server could not find the requested resource"


async def test_a_new_namespace_gets_the_default_service_account(kube: KubeTarget) -> None:
    from kctl_runtime.testing.pytest_plugin import eventually

    core = core_api(kube.api_client)

    async def has_default() -> bool:
        try:
            sa = await core.read_namespaced_service_account("default", kube.namespace)
        except ApiException as exc:
            raise AssertionError(f"no default ServiceAccount yet ({exc.status})") from exc
        return bool(sa.metadata.name == "default")

    await eventually(has_default, message="default ServiceAccount")


async def test_the_system_namespaces_exist_and_are_active(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        ns = await core.read_namespace(name)
        assert ns.status.phase == "Active"
    mine = await core.read_namespace(kube.namespace)
    assert mine.spec.finalizers == ["kubernetes"]
    assert mine.metadata.labels["kubernetes.io/metadata.name"] == kube.namespace


async def test_a_missing_namespace_is_reported_before_an_invalid_name(kube: KubeTarget) -> None:
    core = core_api(kube.api_client)
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map("no-such-namespace-kctl", configmap("Bad_Name"))
    assert caught.value.status == 404
    assert status_of(caught.value)["details"]["kind"] == "namespaces"
