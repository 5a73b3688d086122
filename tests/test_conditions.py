"""Tests for kctl_runtime.conditions: apimachinery's SetStatusCondition semantics."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kctl_runtime._rest import request_json
from kctl_runtime.clock import FakeClock
from kctl_runtime.conditions import (
    find_condition,
    format_time,
    is_false,
    is_true,
    remove_condition,
    set_condition,
    status_conditions_patch,
)
from kctl_runtime.errors import ApiError, Conflict, NotFound, TooManyRequests
from kctl_runtime.patch import merge_patch, patch_status
from kctl_runtime.resource import CUSTOMRESOURCEDEFINITIONS, Resource
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

T0 = _dt.datetime(2030, 1, 1, tzinfo=_dt.UTC)
T1 = T0 + _dt.timedelta(minutes=5)


async def test_doc_snippet_reconciler_sets_ready_and_writes_status_only_on_change() -> None:
    # docs/status-and-patches.md: "Conditions" snippet.
    clock = FakeClock()
    # --8<-- [start:conditions]
    obj: dict[str, Any] = {"metadata": {"generation": 3}, "status": {}}
    conditions = obj["status"].setdefault("conditions", [])
    changed = set_condition(
        conditions,
        type="Ready",
        status="True",
        reason="AllReplicasReady",
        message="3/3 replicas ready",
        observed_generation=obj["metadata"]["generation"],
        now=clock.now(),
    )
    assert changed
    patch = status_conditions_patch(conditions, observed_generation=obj["metadata"]["generation"])
    # --8<-- [end:conditions]
    assert patch["status"]["conditions"][0]["lastTransitionTime"] == "2030-01-01T00:00:00Z"
    await clock.advance(60)
    # The next pass computes the same state: nothing to write.
    assert not set_condition(
        conditions,
        type="Ready",
        status="True",
        reason="AllReplicasReady",
        message="3/3 replicas ready",
        observed_generation=3,
        now=clock.now(),
    )


def test_a_new_condition_gets_every_field_and_the_transition_time() -> None:
    conditions: list[dict[str, Any]] = []
    assert set_condition(
        conditions, type="Ready", status="False", reason="Pending", message="m", observed_generation=2, now=T0
    )
    assert conditions == [
        {
            "type": "Ready",
            "status": "False",
            "observedGeneration": 2,
            "lastTransitionTime": "2030-01-01T00:00:00Z",
            "reason": "Pending",
            "message": "m",
        }
    ]


def test_transition_time_changes_only_when_the_status_changes() -> None:
    conditions: list[dict[str, Any]] = []
    set_condition(conditions, type="Ready", status="False", reason="Pending", now=T0)
    assert set_condition(conditions, type="Ready", status="False", reason="StillPending", message="x", now=T1)
    assert conditions[0]["lastTransitionTime"] == format_time(T0)
    assert conditions[0]["reason"] == "StillPending"
    assert set_condition(conditions, type="Ready", status="True", reason="Done", now=T1)
    assert conditions[0]["lastTransitionTime"] == format_time(T1)


def test_setting_the_same_condition_again_reports_no_change() -> None:
    conditions: list[dict[str, Any]] = []
    set_condition(conditions, type="Ready", status=True, reason="Ok", observed_generation=1, now=T0)
    before = [dict(c) for c in conditions]
    assert not set_condition(
        conditions, type="Ready", status=True, reason="Ok", observed_generation=1, now=T1
    )
    assert conditions == before


def test_observed_generation_change_alone_is_a_change_without_a_transition() -> None:
    conditions: list[dict[str, Any]] = []
    set_condition(conditions, type="Ready", status="True", reason="Ok", observed_generation=1, now=T0)
    assert set_condition(conditions, type="Ready", status="True", reason="Ok", observed_generation=2, now=T1)
    assert conditions[0]["observedGeneration"] == 2
    assert conditions[0]["lastTransitionTime"] == format_time(T0)


def test_other_conditions_are_left_untouched() -> None:
    other = {"type": "Synced", "status": "True", "reason": "X", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    conditions: list[dict[str, Any]] = [dict(other)]
    set_condition(conditions, type="Ready", status="Unknown", reason="Starting", now=T0)
    assert conditions[0] == other
    assert [c["type"] for c in conditions] == ["Synced", "Ready"]


@pytest.mark.parametrize(
    "reason",
    ["", "has space", "with-dash", "1StartsWithDigit", "EndsWithComma,", "x" * 1025],
)
def test_a_reason_that_is_not_camel_case_is_rejected_with_a_clear_error(reason: str) -> None:
    conditions: list[dict[str, Any]] = []
    with pytest.raises(ValueError, match="reason"):
        set_condition(conditions, type="Ready", status="True", reason=reason, now=T0)
    assert conditions == []


@pytest.mark.parametrize("reason", ["Ok", "ReconcileError", "Some_Reason", "A:b,c_1", "x"])
def test_camel_case_reasons_the_api_server_accepts_are_accepted(reason: str) -> None:
    conditions: list[dict[str, Any]] = []
    assert set_condition(conditions, type="Ready", status="True", reason=reason, now=T0)


@pytest.mark.parametrize("type_", ["", "has space", "-Leading", "a" * 64, "/Ready", "Bad_Prefix/Ready"])
def test_an_invalid_condition_type_is_rejected(type_: str) -> None:
    with pytest.raises(ValueError, match="type"):
        set_condition([], type=type_, status="True", reason="Ok", now=T0)


def test_a_prefixed_condition_type_is_accepted() -> None:
    conditions: list[dict[str, Any]] = []
    set_condition(conditions, type="example.com/Synced", status="True", reason="Ok", now=T0)
    assert is_true(conditions, "example.com/Synced")


def test_an_invalid_status_or_generation_or_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="status"):
        set_condition([], type="Ready", status="Yes", reason="Ok", now=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="observed_generation"):
        set_condition([], type="Ready", status="True", reason="Ok", observed_generation=-1, now=T0)
    with pytest.raises(ValueError, match="timezone"):
        set_condition([], type="Ready", status="True", reason="Ok", now=_dt.datetime(2030, 1, 1))


def test_find_is_true_is_false_and_remove_follow_apimachinery() -> None:
    conditions: list[dict[str, Any]] = []
    assert find_condition(conditions, "Ready") is None
    assert not is_true(conditions, "Ready")
    assert not is_false(conditions, "Ready")
    set_condition(conditions, type="Ready", status="False", reason="No", now=T0)
    set_condition(conditions, type="Synced", status="True", reason="Yes", now=T0)
    assert is_false(conditions, "Ready")
    assert is_true(conditions, "Synced")
    assert find_condition(conditions, "Synced") is conditions[1]
    assert remove_condition(conditions, "Ready")
    assert not remove_condition(conditions, "Ready")
    assert [c["type"] for c in conditions] == ["Synced"]
    assert not is_true(None, "Ready")


def test_status_patch_carries_the_resource_version_precondition_when_asked() -> None:
    conditions: list[dict[str, Any]] = []
    set_condition(conditions, type="Ready", status="True", reason="Ok", now=T0)
    patch = status_conditions_patch(conditions, resource_version="42")
    assert patch == {"status": {"conditions": conditions}, "metadata": {"resourceVersion": "42"}}
    assert patch["status"]["conditions"][0] is not conditions[0]


_statuses = st.sampled_from(["True", "False", "Unknown"])
_reasons = st.sampled_from(["A", "B", "C"])


@given(st.lists(st.tuples(st.sampled_from(["Ready", "Synced"]), _statuses, _reasons), max_size=30))
def test_transition_time_always_marks_the_last_status_change(steps: list[tuple[str, str, str]]) -> None:
    conditions: list[dict[str, Any]] = []
    last_change: dict[str, int] = {}
    last_status: dict[str, str] = {}
    for i, (type_, status, reason) in enumerate(steps):
        now = T0 + _dt.timedelta(seconds=i)
        set_condition(conditions, type=type_, status=status, reason=reason, now=now)  # type: ignore[arg-type]
        if last_status.get(type_) != status:
            last_change[type_] = i
            last_status[type_] = status
        assert len([c for c in conditions if c["type"] == type_]) == 1
    for type_, i in last_change.items():
        cond = find_condition(conditions, type_)
        assert cond["status"] == last_status[type_]
        assert cond["lastTransitionTime"] == format_time(T0 + _dt.timedelta(seconds=i))


# ------------------------------------------------------------------------------- over HTTP


@contextlib.asynccontextmanager
async def _widget_crd(kube: KubeTarget) -> AsyncIterator[Resource]:
    """A namespaced CRD with the status subresource (cluster-scoped, so uniquely named)."""
    group = f"{unique_name('conds')}.example.com"
    resource = Resource(group, "v1", "widgets", "Widget")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }
    await request_json(kube.api_client, "POST", CUSTOMRESOURCEDEFINITIONS.path(), body=crd)
    try:

        async def served() -> bool:
            try:
                await request_json(kube.api_client, "GET", resource.path(kube.namespace))
            except (NotFound, TooManyRequests):  # real tier: "storage is (re)initializing"
                return False
            return True

        await eventually(served, message="CRD not served")
        yield resource
    finally:
        with contextlib.suppress(ApiError):
            await request_json(
                kube.api_client, "DELETE", CUSTOMRESOURCEDEFINITIONS.path(name=f"widgets.{group}")
            )


async def test_conditions_round_trip_through_the_status_subresource(kube: KubeTarget) -> None:
    clock = FakeClock()
    async with _widget_crd(kube) as widgets:
        created = await request_json(
            kube.api_client,
            "POST",
            widgets.path(kube.namespace),
            body={
                "apiVersion": widgets.api_version,
                "kind": "Widget",
                "metadata": {"name": "w", "namespace": kube.namespace},
                "spec": {"size": 1},
            },
        )
        conditions = list((created.get("status") or {}).get("conditions") or [])
        assert set_condition(
            conditions,
            type="Ready",
            status="False",
            reason="Provisioning",
            message="waiting for the backend",
            observed_generation=created["metadata"]["generation"],
            now=clock.now(),
        )
        patch = status_conditions_patch(conditions, resource_version=created["metadata"]["resourceVersion"])
        written = await merge_patch(
            kube.api_client, widgets, kube.namespace, "w", patch, subresource="status"
        )
        assert written["status"]["conditions"] == conditions
        assert is_false(written["status"]["conditions"], "Ready")
        # The next pass: the object is re-read, the same condition computed, nothing to write.
        again = list(written["status"]["conditions"])
        await clock.advance(30)
        assert not set_condition(
            again,
            type="Ready",
            status="False",
            reason="Provisioning",
            message="waiting for the backend",
            observed_generation=created["metadata"]["generation"],
            now=clock.now(),
        )
        # Ready flips: the transition time moves; a write based on the stale object conflicts.
        assert set_condition(again, type="Ready", status="True", reason="Provisioned", now=clock.now())
        with pytest.raises(Conflict):
            await patch_status(
                kube.api_client,
                widgets,
                kube.namespace,
                "w",
                {"conditions": again},
                resource_version=created["metadata"]["resourceVersion"],
            )
        final = await patch_status(
            kube.api_client,
            widgets,
            kube.namespace,
            "w",
            {"conditions": again},
            resource_version=written["metadata"]["resourceVersion"],
        )
        ready = find_condition(final["status"]["conditions"], "Ready")
        assert ready["lastTransitionTime"] == "2030-01-01T00:00:30Z"
        assert is_true(final["status"]["conditions"], "Ready")
        assert final["spec"] == {"size": 1}
