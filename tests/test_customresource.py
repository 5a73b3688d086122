"""Typed custom resources: parsing at the edge, lossless round trips, typed client reads and writes, and
objects that do not parse reaching the reconciler as a clear, terminal error."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime import conditions
from kctl_runtime.client import Client
from kctl_runtime.controller import Controller
from kctl_runtime.crdgen import crd
from kctl_runtime.customresource import (
    Condition,
    CustomResource,
    Definition,
    InvalidObject,
    ListType,
    Model,
    ObjectMeta,
    set_condition,
)
from kctl_runtime.errors import Conflict
from kctl_runtime.manager import Manager
from kctl_runtime.reconcile import Request, TerminalError
from kctl_runtime.resource import CONFIGMAPS
from kctl_runtime.testing.helpers import install_crd, running_manager
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from tests.typed_models import GROUP, Gadget, GadgetSpec, GadgetStatus


def test_the_class_declares_its_resource() -> None:
    assert Gadget.resource.api_version == f"{GROUP}/v1"
    assert (Gadget.resource.plural, Gadget.resource.kind, Gadget.resource.namespaced) == (
        "gadgets",
        "Gadget",
        True,
    )
    assert Gadget.kube_resource() is Gadget.resource


def test_a_new_object_carries_api_version_and_kind_and_only_what_was_set() -> None:
    obj = Gadget(metadata=ObjectMeta(name="g", namespace="ns"), spec=GadgetSpec(size=2)).to_object()
    assert obj == {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "ns"},
        "spec": {"size": 2},
    }


def test_a_read_modify_write_keeps_fields_the_model_does_not_declare() -> None:
    sent: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "ns", "resourceVersion": "7", "managedFields": [{"x": 1}]},
        "spec": {"size": 2, "newerField": {"a": [1]}},
        "status": {"replicas": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Up"}]},
    }
    gadget = Gadget.from_object(sent)
    assert gadget.metadata.resource_version == "7"
    assert gadget.status.conditions[0].reason == "Up"
    gadget.status.replicas = 3
    out = gadget.to_object()
    assert out["spec"] == {"size": 2, "newerField": {"a": [1]}}
    assert out["metadata"]["managedFields"] == [{"x": 1}]
    assert out["status"]["replicas"] == 3
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True", "reason": "Up"}]


def test_an_object_that_does_not_parse_names_every_bad_field() -> None:
    with pytest.raises(InvalidObject) as caught:
        Gadget.from_object(
            {"metadata": {"name": "g", "namespace": "ns"}, "spec": {"size": "big", "tier": "gold"}}
        )
    error = caught.value
    assert isinstance(error, TerminalError)
    assert error.key == "ns/g"
    assert [p.split(":")[0] for p in error.problems] == ["spec.size", "spec.tier"]
    assert str(error).startswith("Gadget ns/g does not match its model: spec.size:")


def test_list_types_need_keys_exactly_for_map_lists() -> None:
    with pytest.raises(ValueError, match="keys="):
        ListType("map")
    with pytest.raises(ValueError, match="keys="):
        ListType("set", keys=("name",))


# ---------------------------------------------------------------------------------- status writes

T0 = _dt.datetime(2026, 12, 5, 9, 0, tzinfo=_dt.UTC)
T1 = T0 + _dt.timedelta(minutes=5)


def read_gadget(**status: Any) -> Gadget:
    return Gadget.from_object(
        {
            "metadata": {"name": "g", "namespace": "ns", "resourceVersion": "7", "generation": 2},
            "spec": {"size": 2},
            "status": status,
        }
    )


def test_the_typed_set_condition_keeps_apimachinery_semantics() -> None:
    conditions = [Condition(type="Synced", status="True", reason="Done")]
    assert set_condition(conditions, type="Ready", status=False, reason="Starting", now=T0)
    assert not set_condition(conditions, type="Ready", status="False", reason="Starting", now=T1)
    assert set_condition(conditions, type="Ready", status=True, reason="Up", observed_generation=2, now=T1)
    assert set_condition(conditions, type="Ready", status=True, reason="StillUp", now=T0)
    ready = conditions[1]
    assert (ready.status, ready.reason, ready.observed_generation) == ("True", "StillUp", 2)
    assert ready.last_transition_time == "2026-12-05T09:05:00Z"  # moved with the status only
    assert conditions[0] == Condition(type="Synced", status="True", reason="Done")
    with pytest.raises(ValueError, match="CamelCase"):
        set_condition(conditions, type="Ready", status=True, reason="not camel", now=T0)
    assert conditions[1].reason == "StillUp"  # validated before anything changed


def test_the_typed_set_condition_checks_its_arguments_when_nothing_changes_too() -> None:
    """The fast path (the condition says this already) must validate as the dict version does."""
    conditions = [Condition(type="Ready", status="True", reason="not camel", last_transition_time="x")]
    with pytest.raises(ValueError, match="CamelCase"):
        set_condition(conditions, type="Ready", status=True, reason="not camel", now=T0)


_CONDITIONS = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["Ready", "Synced"]), "status": st.sampled_from(["True", "False"])},
        optional={
            "reason": st.sampled_from(["Up", "Down"]),
            "message": st.sampled_from(["", "m"]),
            "observedGeneration": st.integers(0, 2),
            "lastTransitionTime": st.just("2026-12-05T09:00:00Z"),
        },
    ),
    max_size=3,
)


@settings(deadline=None)
@given(
    _CONDITIONS,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Ready", "Synced"]),
            "status": st.booleans(),
            "reason": st.sampled_from(["Up", "Down"]),
            "message": st.sampled_from(["", "m"]),
            "observed_generation": st.none() | st.integers(0, 2),
        }
    ),
)
def test_the_typed_set_condition_agrees_with_the_dict_one(
    start: list[dict[str, Any]], arguments: dict[str, Any]
) -> None:
    raw = [dict(c) for c in start]
    typed = [Condition.model_validate(c) for c in start]
    assert set_condition(typed, **arguments, now=T1) == conditions.set_condition(raw, **arguments, now=T1)
    assert [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in typed] == raw


def test_the_status_patch_carries_only_what_changed_since_the_read() -> None:
    gadget = read_gadget(replicas=1, observedGeneration=1, phaseOfTheMoon="full")
    assert gadget.status_patch() == {}
    gadget.status.replicas = 1
    assert gadget.status_patch() == {}, "an unchanged value is no change"
    gadget.status.replicas = 3
    gadget.status.observed_generation = None
    set_condition(gadget.status.conditions, type="Ready", status=True, reason="Up", now=T0)
    assert gadget.status_patch() == {
        "metadata": {"resourceVersion": "7"},
        "status": {
            "replicas": 3,
            "observedGeneration": None,  # null deletes it in a merge patch
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Up",
                    "message": "",
                    "lastTransitionTime": "2026-12-05T09:00:00Z",
                }
            ],
        },
    }


def test_an_object_read_without_status_or_built_in_python_starts_from_the_defaults() -> None:
    assert Gadget.from_object({"metadata": {"name": "g"}, "spec": {}}).status_patch() == {}
    built = Gadget(metadata=ObjectMeta(name="g"), spec=GadgetSpec())
    assert built.status_patch() == {}
    built.status.replicas = 2
    assert built.status_patch() == {"status": {"replicas": 2}}


async def test_a_typed_status_write_is_conditional_on_the_read(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    await install_crd(client, crd(Gadget))
    name = unique_name("g")
    await client.create(
        Gadget, Gadget(metadata=ObjectMeta(name=name, namespace=kube.namespace), spec=GadgetSpec())
    )
    first = await client.get(Gadget, name, kube.namespace)
    late = await client.get(Gadget, name, kube.namespace)
    first.status.replicas = 2
    set_condition(first.status.conditions, type="Ready", status=True, reason="Up", now=T0)
    await client.patch(
        Gadget.resource, name, first.status_patch(), namespace=kube.namespace, subresource="status"
    )
    written = await client.get(Gadget, name, kube.namespace)
    assert (written.status.replicas, written.status.conditions[0].reason) == (2, "Up")
    assert written.status_patch() == {}
    late.status.replicas = 5
    with pytest.raises(Conflict):
        await client.patch(
            Gadget.resource, name, late.status_patch(), namespace=kube.namespace, subresource="status"
        )
    assert (await client.get(Gadget, name, kube.namespace)).status.replicas == 2


# ------------------------------------------------------------------------------ through the client


async def test_typed_reads_and_writes_through_the_client(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    await install_crd(client, crd(Gadget))
    name = unique_name("g")
    # --8<-- [start:typed]
    created = await client.create(
        Gadget, Gadget(metadata=ObjectMeta(name=name, namespace=kube.namespace), spec=GadgetSpec(size=3))
    )
    assert isinstance(created, Gadget)
    assert (created.spec.size, created.spec.color) == (3, "blue")  # the server's defaults
    read = await client.get(Gadget, name, kube.namespace)
    assert read.metadata.uid == created.metadata.uid
    read.status = GadgetStatus(replicas=2, conditions=[Condition(type="Ready", status="True")])
    written = await client.update_status(Gadget, read)
    assert written.status.replicas == 2
    assert written.status.conditions[0].type == "Ready"
    (listed,) = await client.list(Gadget, kube.namespace)
    assert listed.status.replicas == 2
    # --8<-- [end:typed]
    assert built_in_kinds_stay_dicts(await client.list(CONFIGMAPS, kube.namespace))


def built_in_kinds_stay_dicts(items: list[dict[str, Any]]) -> bool:
    return all(isinstance(item, dict) for item in items)


class StrictSpec(Model):
    size: int


class Strict(CustomResource):
    definition = Definition(group=GROUP, version="v1", kind="Strict")
    spec: StrictSpec


def loose_crd() -> dict[str, Any]:
    """Strict's CRD with a schema that accepts anything: what an older or hand-edited CRD may do."""
    out = crd(Strict)
    out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    return out


async def test_an_object_that_fails_the_model_is_a_terminal_error_and_the_worker_goes_on(
    kube: KubeTarget,
) -> None:
    client = Client(kube.api_client)
    resource = await install_crd(client, loose_crd())
    outcomes: dict[str, str] = {}

    async def reconcile(request: Request) -> None:
        try:
            strict = await manager.client.get(Strict, request.name, request.namespace)
        except InvalidObject as exc:
            outcomes[request.name] = str(exc)
            raise
        outcomes[request.name] = f"size {strict.spec.size}"

    manager = Manager(
        await kube.new_api_client(),
        namespace=kube.namespace,
        health_bind=None,
        metrics_bind=None,
        handle_signals=False,
        freeze_gc=False,
    )
    manager.add(Controller(unique_name("strict"), for_=resource, reconciler=reconcile))
    ns = kube.namespace
    async with running_manager(manager):
        await client.create(resource, {"metadata": {"name": "bad", "namespace": ns}, "spec": {"size": "big"}})
        await client.create(resource, {"metadata": {"name": "good", "namespace": ns}, "spec": {"size": 2}})

        async def both_seen() -> bool:
            return {"bad", "good"} <= set(outcomes)

        await eventually(both_seen, message="both objects reconciled")
    assert outcomes["good"] == "size 2"
    assert outcomes["bad"].startswith(f"Strict {ns}/bad does not match its model: spec.size:")
