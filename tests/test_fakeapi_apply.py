"""Server-side apply and managedFields behave like the apiserver's field manager."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kctl_runtime.testing.fakeapi.apply import (
    ApplyConflict,
    decode_fields_v1,
    encode_fields_v1,
    server_side_apply,
    update_managed_fields,
)
from kctl_runtime.testing.fakeapi.patch import PatchError
from kctl_runtime.testing.pytest_plugin import KubeTarget

T0, T1, T2, T3 = (f"2024-01-01T00:00:0{i}Z" for i in range(4))


def deployment(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec}


def ssa(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, *, force: bool = False,
        now: str = T1, **kw: Any) -> dict[str, Any]:  # fmt: skip
    before = copy.deepcopy(live)
    out = server_side_apply(
        live,
        applied,
        manager=manager,
        force=force,
        api_version=applied["apiVersion"],
        kind=applied["kind"],
        now=now,
        **kw,
    )
    assert live == before, "live object mutated"
    return out


def fields_of(obj: dict[str, Any], manager: str, operation: str | None = None) -> dict[str, Any]:
    for e in obj["metadata"].get("managedFields", []):
        if e["manager"] == manager and (operation is None or e["operation"] == operation):
            fields: dict[str, Any] = e["fieldsV1"]
            return fields
    raise AssertionError(f"no entry for {manager}")


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


CONTAINER_WEB = {"name": "web", "image": "nginx:1"}


def web_deployment() -> dict[str, Any]:
    return deployment(
        replicas=2,
        template={"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [dict(CONTAINER_WEB)]}},
    )


# ---------------------------------------------------------------------------------------------
# apply: creation and field sets
# ---------------------------------------------------------------------------------------------


def test_apply_on_create_records_exactly_the_applied_fields() -> None:
    applied = web_deployment()
    applied["metadata"]["labels"] = {"app": "web"}
    out = ssa(None, applied, "ctl", now=T0)
    assert out["spec"] == applied["spec"]
    (entry,) = out["metadata"]["managedFields"]
    assert entry == {
        "manager": "ctl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}},
                },
            },
        },
    }


def test_a_no_op_reapply_keeps_the_entry_time() -> None:
    once = ssa(None, web_deployment(), "ctl", now=T0)
    twice = ssa(once, web_deployment(), "ctl", now=T1)
    assert twice == once  # kube-apiserver v1.36: nothing changed, so neither did the time


def test_a_new_entry_from_a_no_op_apply_has_no_time() -> None:
    live = ssa(None, deployment(replicas=2), "a", now=T0)
    out = ssa(live, deployment(replicas=2), "b", now=T1)
    entry = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "b")
    assert "time" not in entry
    assert managers(out) == [("b", "Apply"), ("a", "Apply")]  # no time sorts first


def test_an_apply_that_changes_the_object_stamps_the_time() -> None:
    live = ssa(None, deployment(replicas=2), "a", now=T0)
    out = ssa(live, deployment(replicas=3), "a", now=T1)
    assert out["metadata"]["managedFields"][0]["time"] == T1


def test_managed_fields_in_the_applied_configuration_are_ignored() -> None:
    applied = web_deployment()
    applied["metadata"]["managedFields"] = [{"manager": "forged", "operation": "Apply", "fieldsV1": {}}]
    out = ssa(None, applied, "ctl")
    assert managers(out) == [("ctl", "Apply")]


def test_container_ports_are_keyed_by_container_port_and_protocol() -> None:
    applied = deployment(
        template={"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80}]}]}}
    )
    out = ssa(None, applied, "ctl")
    ports = fields_of(out, "ctl")["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}'][
        "f:ports"
    ]
    assert ports == {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}


def test_the_status_subresource_is_recorded_on_the_entry() -> None:
    out = ssa(
        None,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running"}},
        "kubelet",
        subresource="status",
    )
    (entry,) = out["metadata"]["managedFields"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:phase": {}}}


# ---------------------------------------------------------------------------------------------
# apply: conflicts
# ---------------------------------------------------------------------------------------------


def created_by_kubectl() -> dict[str, Any]:
    return update_managed_fields(None, web_deployment(), manager="kubectl", now=T0)


def test_changing_a_field_an_updater_owns_is_a_conflict() -> None:
    with pytest.raises(ApplyConflict) as err:
        ssa(created_by_kubectl(), deployment(replicas=3), "ctl")
    assert err.value.status == 409
    assert err.value.reason == "Conflict"
    assert (
        str(err.value)
        == 'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas'
    )
    assert err.value.to_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas',
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl" using apps/v1',
                    "field": ".spec.replicas",
                }
            ]
        },
        "code": 409,
    }
    assert isinstance(err.value, PatchError)


def test_a_conflict_with_another_applier_names_it_without_a_version() -> None:
    live = ssa(None, deployment(replicas=2), "a")
    with pytest.raises(ApplyConflict) as err:
        ssa(live, deployment(replicas=3), "b")
    assert str(err.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'


def test_several_conflicts_are_grouped_by_manager() -> None:
    live = created_by_kubectl()
    applied = deployment(replicas=5, template={"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}})
    with pytest.raises(ApplyConflict) as err:
        ssa(live, applied, "ctl")
    assert str(err.value) == (
        'Apply failed with 2 conflicts: conflicts with "kubectl" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image'
    )
    assert [c.path for c in err.value.conflicts] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="web"].image',
    ]


def test_applying_the_value_another_manager_set_shares_ownership() -> None:
    out = ssa(created_by_kubectl(), deployment(replicas=2), "ctl")
    assert "f:replicas" in fields_of(out, "ctl")["f:spec"]
    assert "f:replicas" in fields_of(out, "kubectl")["f:spec"]


def test_force_takes_ownership_from_the_other_manager() -> None:
    out = ssa(created_by_kubectl(), deployment(replicas=3), "ctl", force=True)
    assert out["spec"]["replicas"] == 3
    assert fields_of(out, "ctl") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields_of(out, "kubectl")["f:spec"]


def test_fields_nobody_else_owns_never_conflict() -> None:
    out = ssa(created_by_kubectl(), deployment(minReadySeconds=5), "ctl")
    assert out["spec"]["minReadySeconds"] == 5
    assert out["spec"]["replicas"] == 2


# ---------------------------------------------------------------------------------------------
# apply: removal and lists
# ---------------------------------------------------------------------------------------------


def test_a_field_the_applier_stops_sending_is_removed() -> None:
    live = ssa(None, deployment(replicas=2, minReadySeconds=5), "ctl")
    out = ssa(live, deployment(replicas=2), "ctl")
    assert "minReadySeconds" not in out["spec"]
    assert fields_of(out, "ctl") == {"f:spec": {"f:replicas": {}}}


def test_a_co_owned_field_the_applier_stops_sending_is_kept() -> None:
    live = ssa(None, deployment(replicas=2, minReadySeconds=5), "a")
    live = ssa(live, deployment(minReadySeconds=5), "b")
    out = ssa(live, deployment(replicas=2), "a")
    assert out["spec"]["minReadySeconds"] == 5
    assert fields_of(out, "b") == {"f:spec": {"f:minReadySeconds": {}}}


def test_an_empty_keyed_list_is_owned_as_a_whole() -> None:
    out = ssa(None, deployment(template={"spec": {"containers": []}}), "m")
    assert fields_of(out, "m") == {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}


def test_containers_merge_by_name_and_each_applier_keeps_its_own() -> None:
    live = ssa(None, deployment(template={"spec": {"containers": [{"name": "web", "image": "a"}]}}), "app")
    live = ssa(live, deployment(template={"spec": {"containers": [{"name": "proxy", "image": "p"}]}}), "mesh")
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["web", "proxy"]
    out = ssa(live, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}, "mesh")
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "a"}]
    assert managers(out) == [("app", "Apply")]


def test_finalizers_are_a_set_shared_by_managers() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a/x"]}}
    live = ssa(None, cm, "one")
    cm2 = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["b/y"]}}
    live = ssa(live, cm2, "two")
    assert live["metadata"]["finalizers"] == ["a/x", "b/y"]
    assert fields_of(live, "two") == {"f:metadata": {"f:finalizers": {'v:"b/y"': {}}}}
    out = ssa(live, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "one")
    assert out["metadata"]["finalizers"] == ["b/y"]


def test_atomic_lists_conflict_as_a_whole() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"tolerations": [{"key": "a", "operator": "Exists"}]},
    }
    live = ssa(None, pod, "a")
    assert fields_of(live, "a") == {"f:spec": {"f:tolerations": {}}}
    other = copy.deepcopy(pod)
    other["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    with pytest.raises(ApplyConflict, match=r"\.spec\.tolerations"):
        ssa(live, other, "b")


CR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "routes": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["host", "path"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "host": {"type": "string"},
                            "path": {"type": "string"},
                            "backend": {"type": "string"},
                        },
                    },
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "plain": {"type": "array", "items": {"type": "string"}},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def test_custom_resource_list_map_keys_come_from_the_schema() -> None:
    live = ssa(None, widget(routes=[{"host": "a", "path": "/", "backend": "x"}]), "one", schema=CR_SCHEMA)
    live = ssa(live, widget(routes=[{"host": "b", "path": "/", "backend": "y"}]), "two", schema=CR_SCHEMA)
    assert [r["host"] for r in live["spec"]["routes"]] == ["a", "b"]
    assert fields_of(live, "two") == {
        "f:spec": {
            "f:routes": {'k:{"host":"b","path":"/"}': {".": {}, "f:backend": {}, "f:host": {}, "f:path": {}}}
        }
    }
    with pytest.raises(ApplyConflict) as err:
        ssa(live, widget(routes=[{"host": "a", "path": "/", "backend": "z"}]), "two", schema=CR_SCHEMA)
    assert (
        str(err.value)
        == 'Apply failed with 1 conflict: conflict with "one": .spec.routes[host="a",path="/"].backend'
    )


def test_custom_resource_lists_are_atomic_without_a_list_type() -> None:
    live = ssa(None, widget(plain=["a"], tags=["x"]), "one", schema=CR_SCHEMA)
    assert fields_of(live, "one") == {"f:spec": {"f:plain": {}, "f:tags": {'v:"x"': {}}}}
    no_schema = ssa(None, widget(routes=[{"host": "a"}]), "one")
    assert fields_of(no_schema, "one") == {"f:spec": {"f:routes": {}}}


# ---------------------------------------------------------------------------------------------
# update_managed_fields
# ---------------------------------------------------------------------------------------------


def test_create_records_every_field_with_dots_for_new_maps_and_lists() -> None:
    dep = web_deployment()
    dep["metadata"]["labels"] = {"app": "web"}
    dep["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    out = update_managed_fields(None, dep, manager="kubectl-create", now=T0)
    (entry,) = out["metadata"]["managedFields"]
    assert entry["operation"] == "Update"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                ".": {},
                                'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}},
                            },
                        }
                    }
                },
            },
        },
    }


def test_an_update_moves_changed_fields_to_the_updater() -> None:
    live = created_by_kubectl()
    new = copy.deepcopy(live)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    out = update_managed_fields(live, new, manager="editor", now=T1)
    assert fields_of(out, "editor") == {
        "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}}
    }
    assert (
        "f:image"
        not in fields_of(out, "kubectl")["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    )


def test_removed_fields_leave_every_manager() -> None:
    live = created_by_kubectl()
    new = copy.deepcopy(live)
    del new["spec"]["replicas"]
    out = update_managed_fields(live, new, manager="editor", now=T1)
    assert "f:replicas" not in fields_of(out, "kubectl")["f:spec"]
    assert managers(out) == [("kubectl", "Update")]


def test_an_update_that_changes_nothing_adds_no_entry() -> None:
    live = created_by_kubectl()
    out = update_managed_fields(live, copy.deepcopy(live), manager="noop", now=T1)
    assert managers(out) == [("kubectl", "Update")]
    assert out["metadata"]["managedFields"][0]["time"] == T0


def test_an_explicit_empty_managed_fields_list_clears_the_history() -> None:
    live = created_by_kubectl()
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = []
    out = update_managed_fields(live, new, manager="resetter", now=T1)
    assert "managedFields" not in out["metadata"]


def test_system_metadata_is_never_tracked() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "namespace": "n",
            "uid": "u",
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": "x",
        },
        "data": {"a": "b"},
    }
    out = update_managed_fields(None, obj, manager="m", now=T0)
    assert fields_of(out, "m") == {"f:data": {".": {}, "f:a": {}}}


def test_custom_resource_creation_marks_new_objects() -> None:
    out = update_managed_fields(None, widget(env={"A": "1"}), manager="m", now=T0, schema=CR_SCHEMA)
    assert fields_of(out, "m") == {"f:spec": {".": {}, "f:env": {".": {}, "f:A": {}}}}


def test_apply_entries_sort_before_update_entries_then_by_time() -> None:
    live = created_by_kubectl()
    live = ssa(live, deployment(minReadySeconds=1), "z-applier", now=T2)
    live = ssa(live, deployment(paused=False), "a-applier", now=T3)
    assert managers(live) == [("z-applier", "Apply"), ("a-applier", "Apply"), ("kubectl", "Update")]


# ---------------------------------------------------------------------------------------------
# FieldsV1 encoding
# ---------------------------------------------------------------------------------------------


def test_fields_v1_marks_owned_nodes_with_children_with_a_dot() -> None:
    paths = {(("f", "a"),), (("f", "a"), ("f", "b")), (("f", "c"), ("k", '{"name":"x"}'))}
    assert encode_fields_v1(paths) == {"f:a": {".": {}, "f:b": {}}, "f:c": {'k:{"name":"x"}': {}}}
    assert decode_fields_v1(encode_fields_v1(paths)) == paths


_leafy = st.recursive(
    st.one_of(st.integers(0, 3), st.text(alphabet="xy", max_size=2)),
    lambda kids: st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "labels", "finalizers"]), kids, max_size=3),
        st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["p", "q"]), "v": kids}),
            max_size=2,
            unique_by=lambda d: d["name"],
        ),
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["spec", "data"]), _leafy, max_size=2))
def test_fields_v1_round_trips_any_field_set(spec: dict[str, Any]) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, **spec}
    out = update_managed_fields(None, obj, manager="m", now=T0)
    for e in out["metadata"].get("managedFields", []):
        assert encode_fields_v1(decode_fields_v1(e["fieldsV1"])) == e["fieldsV1"]


@given(
    st.dictionaries(st.sampled_from(["replicas", "minReadySeconds", "paused"]), st.integers(0, 3), min_size=1)
)
def test_reapplying_is_idempotent_and_owns_exactly_what_was_sent(spec: dict[str, Any]) -> None:
    once = ssa(None, deployment(**spec), "m")
    twice = ssa(once, deployment(**spec), "m")
    assert twice["spec"] == spec
    assert set(fields_of(twice, "m")["f:spec"]) == {f"f:{k}" for k in spec}


def test_owner_references_are_keyed_by_uid_and_atomic() -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u1", "controller": True}
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "ownerReferences": [ref]},
    }
    out = update_managed_fields(None, cm, manager="gc", now=T0)
    assert fields_of(out, "gc") == {"f:metadata": {"f:ownerReferences": {".": {}, 'k:{"uid":"u1"}': {}}}}
    changed = copy.deepcopy(cm)
    changed["metadata"]["ownerReferences"][0]["controller"] = False
    with pytest.raises(ApplyConflict, match=r'\.metadata\.ownerReferences\[uid="u1"\]'):
        ssa(out, changed, "ctl")


def test_topology_spread_constraints_use_both_list_map_keys() -> None:
    tsc = {"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"topologySpreadConstraints": [tsc]},
    }
    out = ssa(None, pod, "m")
    key = 'k:{"topologyKey":"zone","whenUnsatisfiable":"DoNotSchedule"}'
    assert set(fields_of(out, "m")["f:spec"]["f:topologySpreadConstraints"]) == {key}


def test_label_selectors_of_workloads_are_atomic() -> None:
    out = ssa(None, deployment(selector={"matchLabels": {"app": "web"}}), "m")
    assert fields_of(out, "m") == {"f:spec": {"f:selector": {}}}


_names = st.sampled_from(["a", "b", "c"])
_container: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"name": _names},
    optional={
        "image": st.sampled_from(["x", "y"]),
        "env": st.lists(
            st.fixed_dictionaries({"name": _names, "value": st.sampled_from(["1", "2"])}),
            max_size=2,
            unique_by=lambda e: e["name"],
        ),
        "args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2),
    },
)
_spec: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "replicas": st.integers(0, 3),
        "paused": st.booleans(),
        "template": st.fixed_dictionaries(
            {},
            optional={
                "metadata": st.fixed_dictionaries({"labels": st.dictionaries(_names, _names, max_size=2)}),
                "spec": st.fixed_dictionaries(
                    {"containers": st.lists(_container, max_size=3, unique_by=lambda c: c["name"])}
                ),
            },
        ),
    },
)


@given(_spec, _spec, _spec)
def test_forced_apply_owns_exactly_the_applied_fields_and_reapplies_cleanly(
    created: dict[str, Any], other: dict[str, Any], applied_spec: dict[str, Any]
) -> None:
    live = update_managed_fields(None, deployment(**created), manager="creator", now=T0)
    try:
        live = ssa(live, deployment(**other), "other", now=T1)
    except ApplyConflict:
        live = ssa(live, deployment(**other), "other", now=T1, force=True)
    applied = deployment(**applied_spec)
    forced = ssa(live, applied, "ctl", force=True, now=T2)
    fresh = ssa(None, applied, "ctl", now=T2)
    assert fields_of(forced, "ctl") == fields_of(fresh, "ctl")
    again = ssa(forced, applied, "ctl", now=T3)
    assert again["spec"] == forced["spec"]
    for key, value in applied_spec.items():
        if key != "template":
            assert forced["spec"][key] == value


def pod(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, **fields}


def test_apply_to_the_main_resource_ignores_status_of_kinds_with_a_status_subresource() -> None:
    live = update_managed_fields(None, pod(spec={"nodeName": "n"}), manager="creator", now=T0)
    live = update_managed_fields(
        live, {**live, "status": {"phase": "Running"}}, manager="kubelet", subresource="status", now=T1
    )
    assert fields_of(live, "kubelet") == {"f:status": {"f:phase": {}}}
    out = ssa(live, pod(spec={"nodeName": "n"}, status={"phase": "Failed"}), "ctl")
    assert out["status"] == {"phase": "Running"}
    assert fields_of(out, "ctl") == {"f:spec": {"f:nodeName": {}}}
    assert fields_of(out, "kubelet") == {"f:status": {"f:phase": {}}}


def test_a_status_write_records_only_status_and_a_main_write_never_does() -> None:
    live = update_managed_fields(
        None, pod(spec={"nodeName": "n"}, status={"phase": "Pending"}), manager="c", now=T0
    )
    assert fields_of(live, "c") == {"f:spec": {"f:nodeName": {}}}
    new = {**live, "spec": {"nodeName": "m"}, "status": {"phase": "Running"}}
    out = update_managed_fields(live, new, manager="kubelet", subresource="status", now=T1)
    assert fields_of(out, "kubelet") == {"f:status": {"f:phase": {}}}
    assert fields_of(out, "c") == {"f:spec": {"f:nodeName": {}}}


def test_custom_resources_track_status_unless_they_declare_a_status_subresource() -> None:
    cr = widget(env={"A": "1"})
    cr["status"] = {"ready": True}
    plain = ssa(None, cr, "m", schema=CR_SCHEMA)
    assert "f:status" in fields_of(plain, "m")
    with_sub = ssa(None, cr, "m", schema=CR_SCHEMA, status_subresource=True)
    assert "f:status" not in fields_of(with_sub, "m")
    assert "status" not in with_sub


def test_a_built_in_list_emptied_by_removal_disappears_like_omitempty() -> None:
    with_env = deployment(
        template={"spec": {"containers": [{"name": "web", "env": [{"name": "A", "value": "1"}]}]}}
    )
    live = ssa(None, with_env, "app")
    out = ssa(live, deployment(template={"spec": {"containers": [{"name": "web"}]}}), "app")
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "web"}
    ]  # checked on kube-apiserver v1.36.3


def test_empty_built_in_lists_are_not_recorded_by_updates_as_omitempty_drops_them() -> None:
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["a/b"]},
    }
    live = update_managed_fields(None, cm, manager="one", now=T0)
    cleared = copy.deepcopy(live)
    cleared["metadata"]["finalizers"] = []
    out = update_managed_fields(live, cleared, manager="two", now=T1)
    assert managers(out) == []  # kube-apiserver v1.36.3: nobody owns anything left
    with_volume = update_managed_fields(
        None, pod(spec={"volumes": [{"name": "v", "emptyDir": {}}]}), manager="m", now=T0
    )
    volume = fields_of(with_volume, "m")["f:spec"]["f:volumes"]['k:{"name":"v"}']
    assert volume == {".": {}, "f:emptyDir": {}, "f:name": {}}  # empty structs still count


# ---------------------------------------------------------------------------------------------
# differential: the same applies and updates against a real kube-apiserver (envtest tier)
# ---------------------------------------------------------------------------------------------


async def _real_call(
    kube: KubeTarget, method: str, path: str, body: Any, content_type: str, *, query: list[tuple[str, str]]
) -> tuple[int, Any]:
    response = await kube.api_client.call_api(
        path,
        method,
        query_params=query,
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    try:
        return response.status, json.loads(await response.read())
    finally:
        response.release()


def _entries_without_time(obj: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return sorted(
        (e["manager"], e["operation"], e["fieldsV1"]) for e in obj["metadata"].get("managedFields", [])
    )


def _causes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((c["field"], c["message"]) for c in body["details"]["causes"])


@pytest.mark.real_only
async def test_apply_and_update_sequences_match_kube_apiserver(kube: KubeTarget) -> None:
    apply_type, merge_type = "application/apply-patch+yaml", "application/merge-patch+json"

    def cm(**data: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seq"}, "data": data}

    steps: list[tuple[str, dict[str, Any], str, bool]] = [
        ("apply", cm(a="1", b="2"), "mgr-a", False),
        ("apply", cm(a="X"), "mgr-b", False),  # conflict
        ("apply", cm(a="1"), "mgr-b", False),  # shared
        ("update", {"data": {"b": "edited", "c": "3"}}, "kubectl-edit", False),
        ("apply", cm(a="Y", b="Y", c="Y"), "mgr-c", False),  # four conflicts
        ("apply", cm(b="F"), "mgr-c", True),  # force
        ("apply", cm(a="1"), "mgr-a", False),  # a drops b (now c's)
        ("apply", cm(), "mgr-b", False),  # b drops a (still a's)
    ]
    path = f"/api/v1/namespaces/{kube.namespace}/configmaps/seq"
    live: dict[str, Any] | None = None
    for kind, body, manager, force in steps:
        query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
        if kind == "apply":
            status, real = await _real_call(kube, "PATCH", path, body, apply_type, query=query)
            try:
                mine = server_side_apply(
                    live, body, manager=manager, force=force, api_version="v1", kind="ConfigMap", now=T0
                )
                mine_status = 200
            except ApplyConflict as e:
                mine, mine_status = e.to_status(), 409
        else:
            assert live is not None
            status, real = await _real_call(kube, "PATCH", path, body, merge_type, query=query)
            mine = update_managed_fields(
                live, {**live, "data": {**live["data"], **body["data"]}}, manager=manager, now=T0
            )
            mine_status = 200
        assert (status in (200, 201)) == (mine_status == 200), (kind, body, manager, real)
        if mine_status == 409:
            assert real["message"] == mine["message"]
            assert _causes(real) == _causes(mine)
            continue
        assert real["data"] == mine.get("data", {}) or (not real.get("data") and not mine.get("data"))
        assert _entries_without_time(real) == _entries_without_time(mine), (kind, body, manager)
        live = real


@pytest.mark.real_only
async def test_apply_of_deployment_containers_by_two_managers_matches_kube_apiserver(
    kube: KubeTarget,
) -> None:
    def dep(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
        template = {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": list(containers)}}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": template, **spec},
        }

    web = {
        "name": "web",
        "image": "nginx",
        "ports": [{"containerPort": 80}],
        "env": [{"name": "A", "value": "1"}],
    }
    steps = [
        (dep(web, replicas=2), "app", False),
        (dep({"name": "proxy", "image": "envoy"}), "mesh", False),
        (dep({"name": "web", "image": "nginx:2"}), "mesh", False),  # conflict with app
        (dep({"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}, replicas=2), "app", False),
        (dep({"name": "web", "image": "nginx:3"}), "mesh", True),
    ]
    path = f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/d"
    live: dict[str, Any] | None = None
    for body, manager, force in steps:
        query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
        status, real = await _real_call(
            kube, "PATCH", path, body, "application/apply-patch+yaml", query=query
        )
        conflict = ""
        try:
            mine = server_side_apply(
                live, body, manager=manager, force=force, api_version="apps/v1", kind="Deployment", now=T0
            )
        except ApplyConflict as e:
            conflict = str(e)
        if conflict:
            assert (status, real["message"]) == (409, conflict)
            continue
        assert status in (200, 201), real
        real_apply = [e for e in _entries_without_time(real) if e[1] == "Apply"]
        assert real_apply == [e for e in _entries_without_time(mine) if e[1] == "Apply"], (body, manager)
        names = [c["name"] for c in real["spec"]["template"]["spec"]["containers"]]
        assert names == [c["name"] for c in mine["spec"]["template"]["spec"]["containers"]]
        live = real


@pytest.mark.real_only
async def test_status_is_reset_between_main_resource_and_status_subresource_as_on_kube_apiserver(
    kube: KubeTarget,
) -> None:
    # A Service: no controller of the test plane writes its status, so nothing races the steps.
    path = f"/api/v1/namespaces/{kube.namespace}/services/s"
    condition = {
        "type": "Ready",
        "status": "True",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
        "reason": "Probe",
        "message": "ok",
    }
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "s"}},
        "status": {"conditions": [condition]},
    }
    apply_type = "application/apply-patch+yaml"
    status, real = await _real_call(kube, "PATCH", path, body, apply_type, query=[("fieldManager", "m")])
    assert status == 201, real
    mine = server_side_apply(None, body, manager="m", force=False, api_version="v1", kind="Service", now=T0)
    assert _entries_without_time(real) == _entries_without_time(mine)
    assert not real.get("status", {}).get("conditions")
    status_body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"selector": {"app": "other"}},
        "status": {"conditions": [condition]},
    }
    status, real2 = await _real_call(
        kube, "PATCH", f"{path}/status", status_body, apply_type, query=[("fieldManager", "ctl")]
    )
    assert status == 200, real2
    mine2 = server_side_apply(
        real,
        status_body,
        manager="ctl",
        force=False,
        api_version="v1",
        kind="Service",
        now=T1,
        subresource="status",
    )
    assert real2["spec"]["selector"] == mine2["spec"]["selector"] == {"app": "s"}
    assert real2["status"]["conditions"] == mine2["status"]["conditions"] == [condition]
    real_ctl = [
        (e["fieldsV1"], e.get("subresource"))
        for e in real2["metadata"]["managedFields"]
        if e["manager"] == "ctl"
    ]
    mine_ctl = [
        (e["fieldsV1"], e.get("subresource"))
        for e in mine2["metadata"]["managedFields"]
        if e["manager"] == "ctl"
    ]
    assert real_ctl == mine_ctl


def _built_in_objects(ns: str) -> list[tuple[str, dict[str, Any]]]:
    """One object of many built-in kinds, exercising their maps, keyed lists and atomic parts."""
    pod_spec = {
        "containers": [
            {
                "name": "web",
                "image": "nginx",
                "args": ["-v"],
                "command": ["run"],
                "ports": [{"containerPort": 80, "name": "http"}],
                "env": [{"name": "A", "value": "1"}],
                "envFrom": [{"configMapRef": {"name": "c"}}],
                "volumeMounts": [{"name": "data", "mountPath": "/d"}],
                "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}},
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
            }
        ],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a"}]}},
        ],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "nodeSelector": {"disk": "ssd"},
        "imagePullSecrets": [{"name": "reg"}],
        "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "w"}},
            }
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]
                }
            }
        },
        "securityContext": {"runAsUser": 1000, "supplementalGroups": [1]},
        "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
        "readinessGates": [{"conditionType": "x"}],
    }
    tmpl = {"metadata": {"labels": {"app": "w"}, "annotations": {"a": "b"}}, "spec": pod_spec}
    sel = {"matchLabels": {"app": "w"}, "matchExpressions": [{"key": "app", "operator": "Exists"}]}
    return [
        (
            "/api/v1/namespaces/{ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "labels": {"app": "w"}, "finalizers": ["x/y"]},
                "spec": pod_spec,
            },
        ),
        (
            "/api/v1/namespaces/{ns}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {
                    "ports": [
                        {"port": 80, "targetPort": 8080, "name": "h"},
                        {"port": 53, "protocol": "UDP", "name": "d"},
                    ],
                    "selector": {"app": "w"},
                    "ipFamilies": ["IPv4"],
                    "externalIPs": ["1.2.3.4"],
                },
            },
        ),
        (
            "/api/v1/namespaces/{ns}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "annotations": {"x": "y"}},
                "data": {"a": "1"},
                "binaryData": {"b": "YQ=="},
            },
        ),
        (
            "/api/v1/namespaces/{ns}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "sec"},
                "stringData": {"a": "1"},
                "type": "Opaque",
            },
        ),
        (
            "/api/v1/namespaces/{ns}/serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "sa"},
                "secrets": [{"name": "a"}],
                "imagePullSecrets": [{"name": "r"}],
            },
        ),
        (
            "/apis/apps/v1/namespaces/{ns}/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {
                    "selector": sel,
                    "template": tmpl,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                },
            },
        ),
        (
            "/apis/apps/v1/namespaces/{ns}/statefulsets",
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "ss"},
                "spec": {
                    "selector": sel,
                    "serviceName": "s",
                    "template": tmpl,
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "v"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "1Gi"}},
                            },
                        }
                    ],
                },
            },
        ),
        (
            "/apis/apps/v1/namespaces/{ns}/daemonsets",
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "ds"},
                "spec": {
                    "selector": sel,
                    "template": tmpl,
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                },
            },
        ),
        (
            "/apis/batch/v1/namespaces/{ns}/jobs",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {
                    "template": {"spec": {**pod_spec, "restartPolicy": "Never"}},
                    "podFailurePolicy": {
                        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
                    },
                },
            },
        ),
        (
            "/apis/batch/v1/namespaces/{ns}/cronjobs",
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "cj"},
                "spec": {
                    "schedule": "* * * * *",
                    "jobTemplate": {"spec": {"template": {"spec": {**pod_spec, "restartPolicy": "Never"}}}},
                },
            },
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "i"},
                "spec": {
                    "rules": [
                        {
                            "host": "a",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": "s", "port": {"number": 80}}},
                                    }
                                ]
                            },
                        }
                    ],
                    "tls": [{"hosts": ["a"], "secretName": "t"}],
                },
            },
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "np"},
                "spec": {
                    "podSelector": {"matchLabels": {"a": "b"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {}}]}],
                },
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "r"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "rb"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "x"}],
            },
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "l"},
                "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
            },
        ),
        (
            "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "pdb"},
                "spec": {"selector": sel, "minAvailable": 1},
            },
        ),
        (
            "/api/v1/namespaces/{ns}/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "e"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
                "reason": "R",
                "message": "m",
                "type": "Normal",
            },
        ),
        (
            "/api/v1/namespaces/{ns}/persistentvolumeclaims",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "pvc"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        ),
        (
            "/api/v1/namespaces/{ns}/resourcequotas",
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "rq"},
                "spec": {"hard": {"pods": "10"}},
            },
        ),
        (
            "/api/v1/namespaces/{ns}/limitranges",
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": {"name": "lr"},
                "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
            },
        ),
        (
            "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "h"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                    "maxReplicas": 3,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 50},
                            },
                        }
                    ],
                },
            },
        ),
    ]


@pytest.mark.real_only
async def test_apply_field_sets_of_built_in_kinds_match_kube_apiserver(kube: KubeTarget) -> None:
    for collection, obj in _built_in_objects(kube.namespace):
        path = collection.format(ns=kube.namespace) + "/" + obj["metadata"]["name"]
        status, real = await _real_call(
            kube, "PATCH", path, obj, "application/apply-patch+yaml", query=[("fieldManager", "m")]
        )
        assert status == 201, (obj["kind"], real)
        mine = server_side_apply(
            None, obj, manager="m", force=False, api_version=obj["apiVersion"], kind=obj["kind"], now=T0
        )
        assert _entries_without_time(real) == _entries_without_time(mine), obj["kind"]


@pytest.mark.real_only
async def test_update_field_sets_of_built_in_kinds_match_kube_apiserver(kube: KubeTarget) -> None:
    # The real server defaults fields on create, so its entry holds more leaves than ours: ours must
    # be a subset, and every node we both hold must carry the same "." marker.
    for collection, obj in _built_in_objects(kube.namespace):
        if obj["kind"] == "Secret":
            continue  # stringData is folded into data by the server, not by update_managed_fields
        status, real = await _real_call(
            kube,
            "POST",
            collection.format(ns=kube.namespace),
            obj,
            "application/json",
            query=[("fieldManager", "creator")],
        )
        assert status == 201, (obj["kind"], real)
        mine = update_managed_fields(None, obj, manager="creator", now=T0)
        real_set = decode_fields_v1(real["metadata"]["managedFields"][0]["fieldsV1"])
        mine_set = decode_fields_v1(mine["metadata"]["managedFields"][0]["fieldsV1"])
        assert mine_set <= real_set, (obj["kind"], sorted(mine_set - real_set))
        inner_nodes = {p[:i] for p in mine_set for i in range(1, len(p))}
        assert (real_set & inner_nodes) <= mine_set, (
            obj["kind"],
            sorted((real_set & inner_nodes) - mine_set),
        )
