"""Patch semantics match kube-apiserver: RFC 7386 merge patch, RFC 6902 JSON patch (evanphx v4
flavour, as vendored by the apiserver) and strategic merge patch for built-in kinds."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kctl_runtime.testing.fakeapi.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    PatchError,
    create_merge_patch,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
    supports_strategic_merge,
)
from kctl_runtime.testing.pytest_plugin import KubeTarget

GENERIC_422 = "the server rejected our request due to an error in our request"

# ---------------------------------------------------------------------------------------------
# JSON merge patch
# ---------------------------------------------------------------------------------------------

# RFC 7386 appendix A, restricted to object targets and object patches.
RFC7386_CASES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_CASES)
def test_merge_patch_follows_rfc_7386(target: dict[str, Any], patch: dict[str, Any], expected: Any) -> None:
    assert json_merge_patch(target, patch) == expected


def test_merge_patch_never_mutates_its_inputs() -> None:
    target = {"a": {"b": [1, 2]}, "c": 1}
    patch = {"a": {"b": [3], "d": {"e": None}}, "c": None}
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    out = json_merge_patch(target, patch)
    assert target == t0
    assert patch == p0
    out["a"]["b"].append(9)
    assert target == t0


def test_merge_patch_result_shares_nothing_with_the_patch() -> None:
    patch = {"spec": {"list": [{"x": 1}]}}
    out = json_merge_patch({}, patch)
    out["spec"]["list"][0]["x"] = 2
    assert patch == {"spec": {"list": [{"x": 1}]}}


def test_a_null_merge_patch_is_a_bad_request() -> None:
    with pytest.raises(PatchError) as err:
        json_merge_patch({"a": 1}, None)
    assert (err.value.status, err.value.reason, str(err.value)) == (400, "BadRequest", "Invalid JSON Patch")


def test_a_non_object_merge_patch_is_a_decoding_error() -> None:
    with pytest.raises(PatchError) as err:
        json_merge_patch({"a": 1}, [1, 2])
    assert (err.value.status, err.value.reason) == (400, "BadRequest")
    assert str(err.value) == (
        "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"
    )


def test_nulls_inside_a_newly_added_object_are_pruned_as_upstream_does() -> None:
    out = json_merge_patch({"a": 1}, {"b": {"c": None, "d": [{"e": None, "f": 1}]}})
    assert out == {"a": 1, "b": {"d": [{"f": 1}]}}


def test_an_object_patch_value_replaces_a_scalar() -> None:
    assert json_merge_patch({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"c": 2}}


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_json = st.recursive(
    _json_scalar,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=3), kids, max_size=3)
    ),
    max_leaves=10,
)
_doc = st.dictionaries(st.text(max_size=3), _json, max_size=4)


def _without_nulls(v: Any) -> Any:
    """Drop nulls from objects at any depth (also inside arrays)."""
    if isinstance(v, dict):
        return {k: _without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_nulls(x) for x in v]
    return v


def _null_inside_array(v: Any, in_array: bool = False) -> bool:
    if isinstance(v, dict):
        return any((x is None and in_array) or _null_inside_array(x, in_array) for x in v.values())
    if isinstance(v, list):
        return any(x is None or _null_inside_array(x, True) for x in v)
    return False


@given(_doc, _doc)
def test_the_merge_patch_of_a_diff_reproduces_the_target(
    original: dict[str, Any], modified: dict[str, Any]
) -> None:
    modified = _without_nulls(modified)
    original = _without_nulls(original)
    patch = create_merge_patch(original, modified)
    assert json_merge_patch(original, patch) == modified


@given(_doc, _doc)
def test_applying_a_merge_patch_twice_changes_nothing_more(
    doc: dict[str, Any], patch: dict[str, Any]
) -> None:
    # Upstream prunes nulls inside arrays only when the array replaces a non-object, so a patch
    # carrying them is not idempotent there (see the pruning test above).
    assume(not _null_inside_array(patch))
    once = json_merge_patch(doc, patch)
    assert json_merge_patch(once, patch) == once


# ---------------------------------------------------------------------------------------------
# JSON patch
# ---------------------------------------------------------------------------------------------

JSON_PATCH_CASES: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = [
    # RFC 6902 appendix A
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"foo": None}, [{"op": "add", "path": "/foo", "value": 1}], {"foo": 1}),
    # escapes, copy, negative indices (evanphx extension), replace of a missing member
    ({"a": {}}, [{"op": "add", "path": "/a/b~1c~0d", "value": 1}], {"a": {"b/c~d": 1}}),
    ({"a": [1]}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": [1], "b": [1]}),
    ({"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/-1"}], {"a": [1, 2]}),
    # add at -1 counts from the end of the grown array, i.e. appends
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 9}], {"a": [1, 2, 9]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/-2", "value": 9}], {"a": [1, 9, 2]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 3}], {"a": [1, 2, 3]}),
    ({"a": {}}, [{"op": "replace", "path": "/a/b", "value": 1}], {"a": {"b": 1}}),
    ({"a": 1}, [{"op": "test", "path": "/missing", "value": None}], {"a": 1}),
    (
        {"metadata": {"labels": {"app": "web"}}},
        [{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"}],
        {"metadata": {"labels": {"app": "web", "app.kubernetes.io/name": "x"}}},
    ),
]


@pytest.mark.parametrize(("target", "ops", "expected"), JSON_PATCH_CASES)
def test_json_patch_applies_operations_like_the_apiserver(
    target: dict[str, Any], ops: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    t0 = copy.deepcopy(target)
    assert json_patch(target, ops) == expected
    assert target == t0


JSON_PATCH_FAILURES: list[tuple[dict[str, Any], list[dict[str, Any]], str]] = [
    (
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        "testing value /baz failed: test failed",
    ),
    ({"a": [1]}, [{"op": "test", "path": "/a/0", "value": "1"}], "testing value /a/0 failed: test failed"),
    ({"a": 1}, [{"op": "test", "path": "/b", "value": 1}], "testing value /b failed: test failed"),
    (
        {"a": 1},
        [{"op": "remove", "path": "/b"}],
        "error in remove for path: '/b': Unable to remove nonexistent key: b: missing value",
    ),
    (
        {"a": 1},
        [{"op": "add", "path": "/x/y", "value": 1}],
        'add operation does not apply: doc is missing path: "/x/y": missing value',
    ),
    (
        {"a": [1]},
        [{"op": "add", "path": "/a/5", "value": 1}],
        "error in add for path: '/a/5': Unable to access invalid index: 5: invalid index referenced",
    ),
    (
        {"a": [1]},
        [{"op": "replace", "path": "/a/3", "value": 1}],
        "replace operation does not apply: doc is missing key: /a/3: missing value",
    ),
    ({"a": 1}, [{"op": "frobnicate", "path": "/a"}], "Unexpected kind: frobnicate"),
    ({"a": 1}, [{"op": "add", "value": 1}], "add operation failed to decode path: missing value"),
    (
        {"a": 1},
        [{"op": "move", "from": "/nope", "path": "/b"}],
        "error in move for path: 'nope': Unable to remove nonexistent key: nope: missing value",
    ),
    (
        {"a": 1},
        [{"op": "add", "path": "", "value": 1}],
        'add operation does not apply: doc is missing path: "": missing value',
    ),
]


@pytest.mark.parametrize(("target", "ops", "detail"), JSON_PATCH_FAILURES)
def test_failed_json_patch_operations_are_422_with_the_generic_message(
    target: dict[str, Any], ops: list[dict[str, Any]], detail: str
) -> None:
    with pytest.raises(PatchError) as err:
        json_patch(target, ops)
    assert err.value.status == 422
    assert err.value.reason == "Invalid"
    assert str(err.value) == GENERIC_422
    assert err.value.detail == detail


def test_a_failed_operation_leaves_the_target_untouched() -> None:
    target = {"a": 1}
    with pytest.raises(PatchError):
        json_patch(
            target, [{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 2}]
        )
    assert target == {"a": 1}


def test_a_json_patch_that_is_not_a_list_is_a_bad_request() -> None:
    with pytest.raises(PatchError) as err:
        json_patch({}, {"op": "add"})
    assert err.value.status == 400
    assert err.value.reason == "BadRequest"
    assert str(err.value) == (
        "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
    )
    with pytest.raises(PatchError, match=r"into Go value of type handlers\.jsonPatchOp$"):
        json_patch({}, [1])


def test_a_null_json_patch_changes_nothing() -> None:
    assert json_patch({"a": 1}, None) == {"a": 1}


def test_too_many_json_patch_operations_is_413() -> None:
    ops = [{"op": "test", "path": "/a", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, ops)
    assert err.value.status == 413
    assert err.value.reason == "RequestEntityTooLarge"


def test_json_patch_test_distinguishes_booleans_from_numbers() -> None:
    with pytest.raises(PatchError):
        json_patch({"a": True}, [{"op": "test", "path": "/a", "value": 1}])
    json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}])


def test_patch_error_status_body_is_a_metav1_status() -> None:
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert err.value.to_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": GENERIC_422,
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }


def _pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _leaves(v: Any, prefix: list[str]) -> list[tuple[list[str], Any]]:
    if isinstance(v, dict) and v:
        return [leaf for k, x in v.items() for leaf in _leaves(x, [*prefix, k])]
    if isinstance(v, list) and v:
        return [leaf for i, x in enumerate(v) for leaf in _leaves(x, [*prefix, str(i)])]
    return [(prefix, v)] if prefix else []


@given(_doc)
def test_testing_every_leaf_of_a_document_against_itself_succeeds(doc: dict[str, Any]) -> None:
    ops = [{"op": "test", "path": _pointer(p), "value": v} for p, v in _leaves(doc, [])]
    assert json_patch(doc, ops) == doc


@given(_doc, st.dictionaries(st.text(max_size=4), _json, max_size=4))
def test_adding_top_level_members_equals_a_dict_update(doc: dict[str, Any], new: dict[str, Any]) -> None:
    ops = [{"op": "add", "path": _pointer([k]), "value": v} for k, v in new.items()]
    assert json_patch(doc, ops) == {**doc, **new}


@given(_doc)
def test_removing_every_top_level_member_leaves_an_empty_object(doc: dict[str, Any]) -> None:
    ops = [{"op": "remove", "path": _pointer([k])} for k in doc]
    assert json_patch(doc, ops) == {}


# ---------------------------------------------------------------------------------------------
# strategic merge patch
# ---------------------------------------------------------------------------------------------


def smp(target: dict[str, Any], patch: dict[str, Any], kind: str = "Pod", api_version: str = "v1") -> Any:
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    out = strategic_merge_patch(target, patch, api_version=api_version, kind=kind)
    assert target == t0, "target mutated"
    assert patch == p0, "patch mutated"
    return out


POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "nginx:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            {"name": "sidecar", "image": "busybox"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "a", "operator": "Exists"}],
    },
}


def test_containers_merge_by_name() -> None:
    out = smp(POD, {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}})
    web, sidecar = out["spec"]["containers"]
    assert web["image"] == "nginx:2"
    assert web["env"] == POD["spec"]["containers"][0]["env"]
    assert sidecar == {"name": "sidecar", "image": "busybox"}


def test_a_new_container_is_placed_before_server_only_items_as_upstream_orders_them() -> None:
    out = smp(POD, {"spec": {"containers": [{"name": "new", "image": "x"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["new", "web", "sidecar"]


def test_set_element_order_places_new_items_where_the_client_asked() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "new"}],
            "containers": [{"name": "new", "image": "x"}],
        }
    }
    out = smp(POD, patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "sidecar", "new"]
    assert "$setElementOrder/containers" not in out["spec"]


def test_set_element_order_can_reorder_without_changing_contents() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}}
    out = smp(POD, patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["sidecar", "web"]
    assert out["spec"]["containers"][1]["image"] == "nginx:1"


def test_set_element_order_that_contradicts_the_patch_list_is_rejected() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "y"}, {"name": "web", "image": "x"}],
        }
    }
    with pytest.raises(PatchError) as err:
        smp(POD, patch)
    assert "doesn't match $setElementOrder list" in str(err.value)


def test_patch_delete_directive_removes_a_list_element_by_merge_key() -> None:
    out = smp(POD, {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["web"]


def test_patch_replace_directive_in_a_list_replaces_the_whole_list() -> None:
    out = smp(POD, {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}})
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]


def test_patch_merge_directive_in_a_list_is_rejected_as_upstream() -> None:
    with pytest.raises(PatchError) as err:
        smp(POD, {"spec": {"containers": [{"$patch": "merge"}]}})
    assert str(err.value) == "merging lists cannot yet be specified in the patch"
    assert err.value.status == 500


def test_patch_replace_directive_in_a_map_replaces_the_map() -> None:
    out = smp(POD, {"metadata": {"labels": {"tier": "fe", "$patch": "replace"}}})
    assert out["metadata"]["labels"] == {"tier": "fe"}


def test_patch_delete_directive_in_a_map_empties_it() -> None:
    out = smp(POD, {"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}


def test_an_unknown_directive_in_a_map_is_an_error() -> None:
    with pytest.raises(PatchError, match="unknown patch type: bogus in map"):
        smp(POD, {"metadata": {"labels": {"$patch": "bogus"}}})


def test_null_deletes_a_key() -> None:
    out = smp(POD, {"metadata": {"labels": {"app": None}}, "spec": {"tolerations": None}})
    assert out["metadata"]["labels"] == {}
    assert "tolerations" not in out["spec"]


def test_env_merges_by_name_and_keeps_other_entries() -> None:
    patch = {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "x"}, {"name": "C"}]}]}}
    env = smp(POD, patch)["spec"]["containers"][0]["env"]
    assert {e["name"]: e.get("value") for e in env} == {"A": "1", "B": "x", "C": None}


def test_container_ports_merge_by_container_port() -> None:
    patch = {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}]}}
    ports = smp(POD, patch)["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]


def test_volume_mounts_merge_by_mount_path() -> None:
    patch = {
        "spec": {"containers": [{"name": "web", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}
    }
    mounts = smp(POD, patch)["spec"]["containers"][0]["volumeMounts"]
    assert mounts == [{"name": "data", "mountPath": "/data", "readOnly": True}]


def test_tolerations_are_atomic() -> None:
    out = smp(POD, {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}})
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_retain_keys_clears_fields_not_listed() -> None:
    patch = {
        "spec": {
            "volumes": [{"name": "data", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}]
        }
    }
    out = smp(POD, patch)
    assert out["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/x"}}]


def test_retain_keys_must_list_every_patched_field() -> None:
    patch = {"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/x"}, "$retainKeys": ["name"]}]}}
    with pytest.raises(PatchError) as err:
        smp(POD, patch)
    assert (err.value.status, str(err.value)) == (400, "invalid patch format of retainKeys")


def test_deployment_strategy_retain_keys_switches_strategy_type() -> None:
    dep = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"type": "Recreate", "$retainKeys": ["type"], "rollingUpdate": None}}}
    out = smp(dep, patch, kind="Deployment", api_version="apps/v1")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_finalizers_merge_as_a_set() -> None:
    out = smp(POD, {"metadata": {"finalizers": ["b", "c"]}})
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b", "c"]
    assert len(out["metadata"]["finalizers"]) == 3


def test_delete_from_primitive_list_removes_values() -> None:
    out = smp(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]


def test_delete_from_primitive_list_on_a_missing_list_changes_nothing() -> None:
    out = smp({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out == {"metadata": {}}


def test_directive_elements_in_a_list_the_object_lacks_are_dropped() -> None:
    # kube-apiserver v1.36: $patch elements vanish when there is no list to merge with
    for directive in ("merge", "delete", "replace"):
        patch = {"spec": {"imagePullSecrets": [{"name": "a"}, {"name": "b", "$patch": directive}]}}
        out = smp({"spec": {}}, patch)
        assert out["spec"]["imagePullSecrets"] == [{"name": "a"}], directive


def test_a_strategic_merge_patch_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch({}, [1], api_version="v1", kind="Pod")
    assert (err.value.status, str(err.value)) == (
        400,
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    )


def test_a_bad_delete_from_primitive_list_key_is_a_bad_request() -> None:
    with pytest.raises(PatchError) as err:
        smp(POD, {"metadata": {"$deleteFromPrimitiveList": ["a"]}})
    assert (err.value.status, str(err.value)) == (400, "invalid patch format of primitive list")


def test_owner_references_merge_by_uid() -> None:
    target = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}
    out = smp(target, {"metadata": {"ownerReferences": [{"uid": "2", "controller": True}]}}, kind="ConfigMap")
    assert out["metadata"]["ownerReferences"] == [
        {"uid": "1", "name": "a"},
        {"uid": "2", "name": "b", "controller": True},
    ]


def test_a_merge_list_element_without_its_merge_key_is_an_error() -> None:
    with pytest.raises(PatchError, match="does not contain declared merge key: name"):
        smp(POD, {"spec": {"containers": [{"image": "x"}]}})


def test_deployment_template_containers_merge_by_name() -> None:
    dep = {"spec": {"template": {"metadata": {"labels": {"a": "1"}}, "spec": copy.deepcopy(POD["spec"])}}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:2"}]}}}}
    for kind, av in [
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("Job", "batch/v1"),
    ]:
        out = smp(dep, patch, kind=kind, api_version=av)
        images = {c["name"]: c["image"] for c in out["spec"]["template"]["spec"]["containers"]}
        assert images == {"web": "nginx:1", "sidecar": "busybox:2"}, kind


def test_cronjob_job_template_containers_merge_by_name() -> None:
    cj = {
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}}}
        }
    }
    patch = {
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}]}}}}
        }
    }
    out = smp(cj, patch, kind="CronJob", api_version="batch/v1")
    names = [c["name"] for c in out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["a", "b"]


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    out = smp(svc, {"spec": {"ports": [{"port": 443, "name": "https"}]}}, kind="Service")
    assert out["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080},
        {"port": 443, "targetPort": 8443, "name": "https"},
    ]


def test_status_conditions_merge_by_type() -> None:
    pod = {
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]
        }
    }
    out = smp(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]} == {
        "Ready": "True",
        "Scheduled": "True",
    }
    ns = {"status": {"conditions": [{"type": "A", "status": "x"}]}}
    out = smp(ns, {"status": {"conditions": [{"type": "B", "status": "y"}]}}, kind="Namespace")
    assert len(out["status"]["conditions"]) == 2


def test_service_account_secrets_merge_by_name_and_image_pull_secrets_are_atomic() -> None:
    sa = {"secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "x"}]}
    out = smp(sa, {"secrets": [{"name": "b"}], "imagePullSecrets": [{"name": "y"}]}, kind="ServiceAccount")
    assert sorted(s["name"] for s in out["secrets"]) == ["a", "b"]
    assert out["imagePullSecrets"] == [{"name": "y"}]


def test_pod_image_pull_secrets_merge_by_name() -> None:
    pod = {"spec": {"imagePullSecrets": [{"name": "x"}]}}
    out = smp(pod, {"spec": {"imagePullSecrets": [{"name": "y"}]}})
    assert sorted(s["name"] for s in out["spec"]["imagePullSecrets"]) == ["x", "y"]


def test_configmap_data_merges_as_a_map_and_lists_in_unknown_fields_are_replaced() -> None:
    cm = {"data": {"a": "1", "b": "2"}, "extra": [1, 2]}
    out = smp(cm, {"data": {"b": None, "c": "3"}, "extra": [3]}, kind="ConfigMap")
    assert out == {"data": {"a": "1", "c": "3"}, "extra": [3]}


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("v1", "Secret"), ("v1", "Event"), ("coordination.k8s.io/v1", "Lease"), ("events.k8s.io/v1", "Event")],
)
def test_other_built_in_kinds_support_strategic_merge(api_version: str, kind: str) -> None:
    assert supports_strategic_merge(api_version, kind)
    out = smp({"metadata": {"labels": {"a": "1"}}}, {"metadata": {"labels": {"b": "2"}}}, kind, api_version)
    assert out["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_custom_resources_reject_strategic_merge_with_415() -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch({}, {}, api_version="example.com/v1", kind="Widget")
    assert err.value.status == 415
    assert err.value.reason == "UnsupportedMediaType"
    assert str(err.value) == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    assert not supports_strategic_merge("example.com/v1", "Widget")


def test_unknown_kinds_can_be_merged_with_object_meta_metadata_when_allowed() -> None:
    target = {"metadata": {"finalizers": ["a"]}, "spec": {"items": [1]}}
    out = strategic_merge_patch(
        target,
        {"metadata": {"finalizers": ["b"]}, "spec": {"items": [2]}},
        api_version="example.com/v1",
        kind="Widget",
        allow_unknown_kinds=True,
    )
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b"]
    assert out["spec"]["items"] == [2]


def test_directives_and_nulls_never_leak_into_new_values() -> None:
    patch = {
        "spec": {
            "containers": [{"name": "new", "image": "x", "command": None, "$retainKeys": ["name", "image"]}]
        }
    }
    out = smp(POD, patch)
    assert out["spec"]["containers"][0] == {"name": "new", "image": "x"}


def test_a_type_change_replaces_the_value() -> None:
    assert smp({"a": {"b": 1}}, {"a": "x"}, kind="ConfigMap") == {"a": "x"}


_plain_key = st.text(alphabet="abcxyz", min_size=1, max_size=3)
_plain = st.recursive(
    st.one_of(st.booleans(), st.integers(-3, 3), st.text(alphabet="ab", max_size=2)),
    lambda kids: st.dictionaries(_plain_key, st.one_of(kids, st.none()), max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(_plain_key, _plain, max_size=4),
    st.dictionaries(_plain_key, st.one_of(_plain, st.none()), max_size=4),
)
def test_without_lists_strategic_merge_equals_json_merge_patch(
    doc: dict[str, Any], patch: dict[str, Any]
) -> None:
    doc = _without_nulls(doc)
    out = strategic_merge_patch(doc, patch, api_version="v1", kind="ConfigMap")
    assert out == json_merge_patch(doc, patch)


@given(
    st.lists(st.sampled_from("abcdef"), unique=True, max_size=5),
    st.lists(st.sampled_from("abcdef"), max_size=5),
)
def test_merging_a_primitive_set_list_is_the_union(original: list[str], patch: list[str]) -> None:
    out = smp({"metadata": {"finalizers": original}}, {"metadata": {"finalizers": patch}}, kind="Secret")
    merged = out["metadata"]["finalizers"]
    assert sorted(merged) == sorted(set(original) | set(patch))
    assert [x for x in merged if x not in patch] == [x for x in original if x not in patch]


@given(
    st.lists(st.sampled_from("abcdef"), unique=True, max_size=5),
    st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 3)), max_size=5, unique_by=lambda t: t[0]),
)
def test_merging_a_keyed_list_updates_matching_and_keeps_the_rest(
    original: list[str], patch: list[tuple[str, int]]
) -> None:
    target = {"spec": {"containers": [{"name": n, "image": "orig"} for n in original]}}
    p = {"spec": {"containers": [{"name": n, "image": str(i)} for n, i in patch]}}
    out = smp(target, p)
    got = {c["name"]: c["image"] for c in out["spec"]["containers"]}
    expected = {n: "orig" for n in original} | {n: str(i) for n, i in patch}
    assert got == expected
    assert len(out["spec"]["containers"]) == len(expected)


@pytest.mark.parametrize(
    ("api_version", "kind", "path", "expected"),
    [
        ("v1", "Pod", ("spec", "containers"), ("merge", "name")),
        ("v1", "Pod", ("spec", "containers", "ports"), ("merge", "containerPort")),
        ("apps/v1", "Deployment", ("spec", "template", "spec", "volumes"), ("merge", "name")),
        ("v1", "Secret", ("metadata", "finalizers"), ("merge", "")),
        ("v1", "Pod", ("spec", "tolerations"), ("", "")),
        ("example.com/v1", "Widget", ("spec",), ("", "")),
    ],
)
def test_patch_strategy_reports_the_tags_of_a_field(
    api_version: str, kind: str, path: tuple[str, ...], expected: tuple[str, str]
) -> None:
    from kctl_runtime.testing.fakeapi.patch import patch_strategy

    assert patch_strategy(api_version, kind, path) == expected


_fuzz_key = st.sampled_from(
    [
        "name",
        "image",
        "containers",
        "finalizers",
        "labels",
        "spec",
        "metadata",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/finalizers",
        "ports",
        "containerPort",
    ]
)
_fuzz = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-2, 2),
        st.sampled_from(["a", "web", "replace", "delete", "merge"]),
    ),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(_fuzz_key, kids, max_size=4)),
    max_leaves=15,
)


@given(st.dictionaries(_fuzz_key, _fuzz, max_size=4), st.dictionaries(_fuzz_key, _fuzz, max_size=4))
def test_strategic_merge_fails_only_with_patch_errors(target: dict[str, Any], patch: dict[str, Any]) -> None:
    status = 0
    try:
        strategic_merge_patch(target, patch, api_version="v1", kind="Pod")
    except PatchError as e:
        status = e.status
    assert status in (0, 400, 422, 500)


_fuzz_op = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"])},
    optional={
        "path": st.sampled_from(["", "/", "/a", "/a/0", "/a/-", "/a/-1", "/a/x", "/b/c", "/~1", "/a/99"]),
        "from": st.sampled_from(["/a", "/a/0", "/b", "/zz"]),
        "value": _fuzz,
    },
)


@given(st.dictionaries(st.sampled_from(["a", "b", "/"]), _fuzz, max_size=3), st.lists(_fuzz_op, max_size=4))
def test_json_patch_fails_only_with_patch_errors(target: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    failure = (422, "Invalid")
    try:
        json_patch(target, ops)
    except PatchError as e:
        failure = (e.status, e.reason)
    assert failure == (422, "Invalid")


# ---------------------------------------------------------------------------------------------
# differential: the same patches against a real kube-apiserver (envtest tier)
# ---------------------------------------------------------------------------------------------


async def _real_call(
    kube: KubeTarget, method: str, path: str, body: Any, content_type: str
) -> tuple[int, Any]:
    response = await kube.api_client.call_api(
        path,
        method,
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    try:
        return response.status, json.loads(await response.read())
    finally:
        response.release()


_JP, _MP, _SMP = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
REAL_CONFIGMAP_PATCHES: list[tuple[str, Any]] = [
    (_JP, [{"op": "test", "path": "/data/a", "value": "x"}]),
    (_JP, [{"op": "replace", "path": "/data/zz", "value": "x"}]),
    (_JP, [{"op": "remove", "path": "/data/zz"}]),
    (_JP, [{"op": "add", "path": "/nope/x", "value": "x"}]),
    (_JP, {"op": "add"}),
    (_JP, [{"op": "frob", "path": "/data"}]),
    (
        _JP,
        [
            {"op": "move", "from": "/data/a", "path": "/data/m"},
            {"op": "copy", "from": "/data/b", "path": "/data/c"},
        ],
    ),
    (
        _JP,
        [
            {"op": "add", "path": "/metadata/labels", "value": {}},
            {"op": "add", "path": "/metadata/labels/a~1b", "value": "v"},
        ],
    ),
    (_MP, [1]),
    (_MP, {"data": {"a": None, "c": "3"}, "metadata": {"labels": {"x": "y"}}}),
    (_SMP, {"data": {"a": None, "c": "3"}, "metadata": {"finalizers": ["c/z"]}}),
    (_SMP, {"data": {"$patch": "bogus"}}),
    (_SMP, {"data": {"$patch": "replace", "z": "1"}}),
    (_SMP, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}}),
    (_SMP, {"metadata": {"$setElementOrder/finalizers": ["b/y", "c/z", "a/x"], "finalizers": ["c/z"]}}),
    (_SMP, {"metadata": {"$setElementOrder/finalizers": ["b/y", "a/x"], "finalizers": ["a/x", "b/y"]}}),
    (_SMP, {"metadata": {"$deleteFromPrimitiveList": ["a/x"]}}),
    (_SMP, {"data": {"$retainKeys": ["a"], "c": "1"}}),
    (_SMP, {"metadata": {"ownerReferences": [{"$patch": "merge"}]}}),
    (_SMP, [1]),
]


def _mine(
    target: dict[str, Any], content_type: str, body: Any, kind: str, api_version: str
) -> tuple[int, Any]:
    try:
        if content_type == _JP:
            return 200, json_patch(target, body)
        if content_type == _MP:
            return 200, json_merge_patch(target, body)
        return 200, strategic_merge_patch(target, body, api_version=api_version, kind=kind)
    except PatchError as e:
        return e.status, e.to_status()


def _comparable(status: int, body: Any, fields: tuple[str, ...]) -> Any:
    if status != 200:
        return status, body
    return status, {f: body.get(f) for f in fields}, (body.get("metadata") or {}).get("finalizers")


@pytest.mark.real_only
async def test_patches_of_a_configmap_match_kube_apiserver(kube: KubeTarget) -> None:
    base = f"/api/v1/namespaces/{kube.namespace}/configmaps"
    for i, (content_type, body) in enumerate(REAL_CONFIGMAP_PATCHES):
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {"a": "1", "b": "2"},
            "metadata": {"name": f"c{i}", "finalizers": ["a/x", "b/y"]},
        }
        status, live = await _real_call(kube, "POST", base, cm, "application/json")
        assert status == 201, live
        status, real = await _real_call(kube, "PATCH", f"{base}/c{i}", body, content_type)
        mine = _mine(live, content_type, body, "ConfigMap", "v1")
        assert _comparable(status, real, ("data",)) == _comparable(*mine, ("data",)), (content_type, body)


@pytest.mark.real_only
async def test_strategic_merge_of_deployment_containers_matches_kube_apiserver(kube: KubeTarget) -> None:
    base = f"/apis/apps/v1/namespaces/{kube.namespace}/deployments"
    template_spec = {
        "containers": [
            {
                "name": "web",
                "image": "nginx",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80}, {"containerPort": 443}],
            },
            {"name": "side", "image": "busybox"},
        ]
    }
    new_ports = [{"containerPort": 443, "name": "https"}, {"containerPort": 81}]
    patches: list[dict[str, Any]] = [
        {"containers": [{"name": "new", "image": "x"}]},
        {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}, {"name": "new"}],
         "containers": [{"name": "new", "image": "x"}]},
        {"containers": [{"name": "side", "$patch": "delete"}]},
        {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]},
        {"containers": [{"name": "web", "env": [{"name": "B", "value": "x"}, {"name": "C", "value": "3"}]}]},
        {"containers": [{"name": "web", "env": [{"name": "A", "$patch": "delete"}]}]},
        {"containers": [{"name": "web", "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}]},
        {"containers": [{"name": "web", "ports": new_ports}]},
        {"containers": [{"image": "no-name"}]},
        {"imagePullSecrets": [{"name": "a"}, {"name": "b", "$patch": "delete"}]},
    ]  # fmt: skip
    for i, spec_patch in enumerate(patches):
        dep = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"d{i}"},
            "spec": {
                "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}}, "spec": copy.deepcopy(template_spec)},
            },
        }
        status, live = await _real_call(kube, "POST", base, dep, "application/json")
        assert status == 201, live
        body = {"spec": {"template": {"spec": spec_patch}}}
        status, real = await _real_call(kube, "PATCH", f"{base}/d{i}", body, _SMP)
        mine_status, mine = _mine(live, _SMP, body, "Deployment", "apps/v1")
        assert status == mine_status, (spec_patch, real)
        if status != 200:
            assert real["message"] == mine["message"]
            continue

        def shape(obj: dict[str, Any]) -> Any:
            spec = obj["spec"]["template"]["spec"]
            return (
                [
                    (
                        c["name"],
                        c.get("image"),
                        [(e["name"], e.get("value")) for e in c.get("env", [])],
                        [(p["containerPort"], p.get("name")) for p in c.get("ports", [])],
                    )
                    for c in spec["containers"]
                ],
                [s["name"] for s in spec.get("imagePullSecrets", [])],
            )

        assert shape(real) == shape(mine), spec_patch
