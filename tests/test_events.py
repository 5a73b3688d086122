"""Tests for kctl_runtime.events: the correlator on a FakeClock, the recorder over HTTP."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from kctl_runtime._rest import request_json
from kctl_runtime.clock import FakeClock
from kctl_runtime.events import EventCorrelator, EventRecorder
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name

# ------------------------------------------------------------------------------ correlator (pure)


def _event(message: str = "m", reason: str = "Synced", name: str = "web", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.1", "namespace": "ns"},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "ns",
            "name": name,
            "uid": "u",
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "test"},
        "firstTimestamp": "2030-01-01T00:00:00Z",
        "lastTimestamp": "2030-01-01T00:00:00Z",
        "count": 1,
        "reportingComponent": "test",
        "reportingInstance": "",
        **extra,
    }


def test_correlator_turns_an_identical_event_into_a_count_patch_of_the_first() -> None:
    correlator = EventCorrelator(FakeClock())
    first = correlator.correlate(_event())
    assert first is not None
    assert first.patch is None
    assert first.event["metadata"]["name"] == "web.1"
    again = _event(lastTimestamp="2030-01-01T00:05:00Z")
    again["metadata"]["name"] = "web.2"
    second = correlator.correlate(again)
    assert second is not None
    assert second.event["metadata"]["name"] == "web.1"  # the existing Event
    assert second.patch == {"count": 2, "lastTimestamp": "2030-01-01T00:05:00Z", "message": "m"}
    third = correlator.correlate(_event())
    assert third is not None
    assert third.patch is not None
    assert third.patch["count"] == 3


def test_correlator_learns_the_servers_count_after_a_write() -> None:
    correlator = EventCorrelator(FakeClock())
    first = correlator.correlate(_event())
    assert first is not None
    stored = copy.deepcopy(first.event)
    stored["count"] = 7  # e.g. another replica bumped it meanwhile
    correlator.update_state(stored)
    second = correlator.correlate(_event())
    assert second is not None
    assert second.patch is not None
    assert second.patch["count"] == 8


def test_correlator_combines_similar_events_from_the_tenth_distinct_message() -> None:
    correlator = EventCorrelator(FakeClock())
    results = [correlator.correlate(_event(f"message {i}")) for i in range(12)]
    assert all(r is not None for r in results)
    plain = [r for r in results[:9] if r is not None]
    assert [r.event["message"] for r in plain] == [f"message {i}" for i in range(9)]
    assert all(r.patch is None for r in plain)
    tenth, eleventh, twelfth = results[9], results[10], results[11]
    assert tenth is not None
    assert eleventh is not None
    assert twelfth is not None
    assert tenth.patch is None
    assert tenth.event["message"] == "(combined from similar events): message 9"
    assert tenth.event["count"] == 1
    # the combined Event is then bumped, carrying the latest message
    assert eleventh.event["metadata"]["name"] == tenth.event["metadata"]["name"]
    assert eleventh.patch == {
        "count": 2,
        "lastTimestamp": eleventh.event["lastTimestamp"],
        "message": "(combined from similar events): message 10",
    }
    assert twelfth.patch is not None
    assert twelfth.patch["count"] == 3


def test_correlator_does_not_combine_events_with_different_reasons() -> None:
    correlator = EventCorrelator(FakeClock())
    results = [correlator.correlate(_event(f"m{i}", reason=f"Reason{i}")) for i in range(15)]
    assert all(r is not None and not r.event["message"].startswith("(combined") for r in results)


async def test_correlator_aggregation_window_restarts_after_ten_quiet_minutes() -> None:
    clock = FakeClock()
    correlator = EventCorrelator(clock)
    for i in range(9):
        correlator.correlate(_event(f"m{i}"))
        await clock.advance(60.0)  # 60 s apart: each within 10 minutes of the previous one
    await clock.advance(601.0 - 60.0)
    result = correlator.correlate(_event("m9"))
    assert result is not None
    assert result.event["message"] == "m9"  # a fresh window: only 1 distinct message in it


async def test_spam_filter_allows_a_burst_then_one_event_per_five_minutes() -> None:
    clock = FakeClock()
    correlator = EventCorrelator(clock, burst=3)
    # different reasons so that aggregation stays out of the way
    assert [correlator.correlate(_event(reason=f"R{i}")) is not None for i in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    await clock.advance(299.0)
    assert correlator.correlate(_event(reason="R5")) is None
    await clock.advance(1.0)
    assert correlator.correlate(_event(reason="R6")) is not None
    assert correlator.correlate(_event(reason="R7")) is None


def test_spam_filter_counts_per_object() -> None:
    correlator = EventCorrelator(FakeClock(), burst=2)
    for _ in range(2):
        assert correlator.correlate(_event(reason="A", name="one")) is not None
    assert correlator.correlate(_event(reason="B", name="one")) is None
    assert correlator.correlate(_event(reason="B", name="two")) is not None


def test_correlator_caches_are_bounded() -> None:
    correlator = EventCorrelator(FakeClock(), cache_size=8)
    for i in range(100):
        correlator.correlate(_event(name=f"obj-{i}"))
    assert len(correlator._aggregates) == 8
    assert len(correlator._observed) == 8
    assert len(correlator._spam) == 8
    # an evicted object starts afresh: a create, not a patch
    result = correlator.correlate(_event(name="obj-0"))
    assert result is not None
    assert result.patch is None


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 3),  # object
            st.sampled_from(["Synced", "Failed"]),  # reason
            st.integers(0, 14),  # message
            st.sampled_from([0.0, 0.0, 30.0, 700.0]),  # seconds before this event
        ),
        min_size=1,
        max_size=120,
    ),
    cache_size=st.sampled_from([2, 5, 4096]),
)
def test_correlated_writes_account_for_every_event_exactly_once(
    steps: list[tuple[int, str, int, float]], cache_size: int
) -> None:
    """Applied to a simulated server, the writes keep one count per recorded event, never reuse a
    name for a create and only patch Events that exist, by exactly one."""

    async def scenario() -> None:
        clock = FakeClock()
        correlator = EventCorrelator(clock, burst=10_000, cache_size=cache_size)
        server: dict[str, dict[str, Any]] = {}
        for obj, reason, message, wait in steps:
            await clock.advance(wait)
            event = _event(f"message {message}", reason=reason, name=f"obj-{obj}")
            event["metadata"]["name"] = f"obj-{obj}.{len(server)}-{clock.monotonic()}-{message}-{reason}"
            result = correlator.correlate(event)
            assert result is not None  # the spam filter is out of the way
            name = result.event["metadata"]["name"]
            if result.patch is None:
                assert name not in server, f"create of {name} would collide"
                server[name] = copy.deepcopy(result.event)
            else:
                assert name in server, f"patch of {name}, which was never created"
                assert result.patch["count"] == server[name]["count"] + 1
                server[name].update(result.patch)
            correlator.update_state(server[name])
        assert sum(e["count"] for e in server.values()) == len(steps)

    anyio.run(scenario)


# ------------------------------------------------------------------------------ recorder (pure)


def test_recorder_rejects_an_unknown_event_type_and_a_nameless_object() -> None:
    recorder = EventRecorder(None, component="test", clock=FakeClock())
    with pytest.raises(ValueError, match="Normal or Warning"):
        recorder.event({"metadata": {"name": "x"}}, "Info", "R", "m")
    with pytest.raises(ValueError, match=r"metadata\.name"):
        recorder.event({"metadata": {}}, "Normal", "R", "m")
    assert recorder.pending == 0


def test_recorder_drops_events_beyond_its_queue_bound_without_raising() -> None:
    recorder = EventRecorder(None, component="test", clock=FakeClock(), max_queued=3)
    obj = {"metadata": {"name": "x", "namespace": "ns"}}
    with structlog.testing.capture_logs() as logs:
        for i in range(5):
            recorder.event(obj, "Normal", "R", f"m{i}")
    assert recorder.pending == 3
    assert [entry["event"] for entry in logs] == ["event queue full; dropping events"]


# ------------------------------------------------------------------------------ recorder over HTTP


async def _events_about(kube: KubeTarget, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
    body = await request_json(
        kube.api_client, "GET", f"/api/v1/namespaces/{namespace or kube.namespace}/events"
    )
    return [e for e in body["items"] if e["involvedObject"].get("name") == name]


async def _config_map(kube: KubeTarget) -> dict[str, Any]:
    created: dict[str, Any] = await request_json(
        kube.api_client,
        "POST",
        f"/api/v1/namespaces/{kube.namespace}/configmaps",
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": unique_name("cm")}},
    )
    return created


@asynccontextmanager
async def running(recorder: EventRecorder) -> AsyncIterator[EventRecorder]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        yield recorder
        with anyio.fail_after(30):  # a safety net against a hang, not a speed assertion
            await recorder.flush()
        tg.cancel_scope.cancel()


async def test_recorded_event_is_created_with_the_objects_reference_and_source(kube: KubeTarget) -> None:
    clock = FakeClock()
    cm = await _config_map(kube)
    async with running(
        EventRecorder(kube.api_client, component="my-controller", host="pod-1", clock=clock)
    ) as rec:
        rec.event(cm, "Warning", "Invalid", "spec.x must be set")
        await rec.flush()
    [event] = await _events_about(kube, cm["metadata"]["name"])
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "namespace": kube.namespace,
        "name": cm["metadata"]["name"],
        "uid": cm["metadata"]["uid"],
        "resourceVersion": cm["metadata"]["resourceVersion"],
    }
    assert event["metadata"]["namespace"] == kube.namespace
    assert event["metadata"]["name"].startswith(cm["metadata"]["name"] + ".")
    assert event["type"] == "Warning"
    assert event["reason"] == "Invalid"
    assert event["message"] == "spec.x must be set"
    assert event["source"] == {"component": "my-controller", "host": "pod-1"}
    assert event["reportingComponent"] == "my-controller"
    assert event["reportingInstance"] == "pod-1"
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2030-01-01T00:00:00Z"


async def test_an_identical_event_bumps_the_count_of_the_existing_event(kube: KubeTarget) -> None:
    clock = FakeClock()
    cm = await _config_map(kube)
    async with running(EventRecorder(kube.api_client, component="c", clock=clock)) as rec:
        rec.event(cm, "Normal", "Synced", "all good")
        await rec.flush()
        await clock.advance(90.0)
        rec.event(cm, "Normal", "Synced", "all good")
        rec.eventf(cm, "Normal", "Synced", "all %s", "good")
    [event] = await _events_about(kube, cm["metadata"]["name"])
    assert event["count"] == 3
    assert event["firstTimestamp"] == "2030-01-01T00:00:00Z"
    assert event["lastTimestamp"] == "2030-01-01T00:01:30Z"


async def test_events_about_cluster_scoped_objects_go_to_the_default_namespace(kube: KubeTarget) -> None:
    namespace = await request_json(kube.api_client, "GET", f"/api/v1/namespaces/{kube.namespace}")
    async with running(EventRecorder(kube.api_client, component="c", clock=FakeClock())) as rec:
        rec.event(namespace, "Normal", "Seen", "hello")
    [event] = await _events_about(kube, kube.namespace, namespace="default")
    assert event["metadata"]["namespace"] == "default"
    assert "namespace" not in event["involvedObject"]
    assert event["involvedObject"]["kind"] == "Namespace"


async def test_the_spam_filter_drops_events_after_the_burst(kube: KubeTarget) -> None:
    cm = await _config_map(kube)
    async with running(EventRecorder(kube.api_client, component="c", clock=FakeClock(), burst=3)) as rec:
        for i in range(6):
            rec.event(cm, "Normal", f"Reason{i}", "m")
    events = await _events_about(kube, cm["metadata"]["name"])
    assert sorted(e["reason"] for e in events) == ["Reason0", "Reason1", "Reason2"]


async def test_similar_events_are_combined_after_ten_distinct_messages(kube: KubeTarget) -> None:
    cm = await _config_map(kube)
    async with running(EventRecorder(kube.api_client, component="c", clock=FakeClock())) as rec:
        for i in range(12):
            rec.event(cm, "Warning", "Failed", f"attempt {i} failed")
    events = await _events_about(kube, cm["metadata"]["name"])
    combined = [e for e in events if e["message"].startswith("(combined from similar events): ")]
    assert len(events) == 10
    assert len(combined) == 1
    assert combined[0]["count"] == 3
    assert combined[0]["message"] == "(combined from similar events): attempt 11 failed"


@pytest.mark.fake_only
async def test_api_errors_are_logged_and_never_raised(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    cm = await _config_map(fake_kube)
    fake_kube.fake.faults.fail_next(1, status=403, verb="create", resource="events")
    with structlog.testing.capture_logs() as logs:
        async with running(EventRecorder(fake_kube.api_client, component="c", clock=FakeClock())) as rec:
            rec.event(cm, "Normal", "First", "dropped: forbidden")
            rec.event(cm, "Normal", "Second", "goes through")
    events = await _events_about(fake_kube, cm["metadata"]["name"])
    assert [e["reason"] for e in events] == ["Second"]
    [failure] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert failure["event"] == "could not write event; dropping it"
    assert "403" in failure["error"]


@pytest.mark.fake_only
async def test_a_transient_failure_is_retried_on_the_clock(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    clock = FakeClock()
    cm = await _config_map(fake_kube)
    fake_kube.fake.faults.fail_next(2, status=503, verb="create", resource="events")
    recorder = EventRecorder(fake_kube.api_client, component="c", clock=clock)

    async def recorder_is_sleeping() -> bool:
        return clock.sleepers > 0

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        recorder.event(cm, "Normal", "Retried", "eventually")
        for _ in range(2):  # two failures: the recorder sleeps on the clock after each
            await eventually(recorder_is_sleeping, message="the recorder did not back off")
            assert await _events_about(fake_kube, cm["metadata"]["name"]) == []
            await clock.advance(10.0)
        with anyio.fail_after(30):
            await recorder.flush()
        tg.cancel_scope.cancel()
    [event] = await _events_about(fake_kube, cm["metadata"]["name"])
    assert event["reason"] == "Retried"


async def test_a_deleted_event_is_created_again_when_it_recurs(kube: KubeTarget) -> None:
    cm = await _config_map(kube)
    async with running(EventRecorder(kube.api_client, component="c", clock=FakeClock())) as rec:
        rec.event(cm, "Normal", "Synced", "same")
        await rec.flush()
        [first] = await _events_about(kube, cm["metadata"]["name"])
        await request_json(
            kube.api_client,
            "DELETE",
            f"/api/v1/namespaces/{kube.namespace}/events/{first['metadata']['name']}",
        )
        rec.event(cm, "Normal", "Synced", "same")
    [again] = await _events_about(kube, cm["metadata"]["name"])
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["count"] == 2


async def test_the_docs_example_records_an_event_about_a_config_map(kube: KubeTarget) -> None:
    api_client = kube.api_client
    config_map = await _config_map(kube)
    # --8<-- [start:recorder]
    recorder = EventRecorder(api_client, component="website-controller")
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)  # a Manager runs (and flushes) its recorders for you
        # inside a reconcile: sync, never blocks, never raises because of the API
        recorder.event(config_map, "Normal", "Synced", "deployment is up to date")
        await recorder.flush()
        tg.cancel_scope.cancel()
    # --8<-- [end:recorder]
    [event] = await _events_about(kube, config_map["metadata"]["name"])
    assert (event["reason"], event["source"]["component"]) == ("Synced", "website-controller")


async def test_flush_after_the_sender_stopped_raises_instead_of_waiting_forever() -> None:
    recorder = EventRecorder(None, component="test", clock=FakeClock())
    await recorder.flush()  # nothing pending: returns at once
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    recorder.event({"metadata": {"name": "x"}}, "Normal", "R", "m")
    with pytest.raises(RuntimeError, match="not running"):
        await recorder.flush()


async def test_a_recorder_runs_once_at_a_time() -> None:
    recorder = EventRecorder(None, component="test", clock=FakeClock())
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        await anyio.lowlevel.checkpoint()
        with pytest.raises(RuntimeError, match="already running"):
            await recorder.run()
        tg.cancel_scope.cancel()


async def test_kind_and_api_version_can_be_given_for_an_object_from_a_list(kube: KubeTarget) -> None:
    cm = await _config_map(kube)
    listed = {"metadata": cm["metadata"]}  # list items carry no apiVersion/kind
    async with running(EventRecorder(kube.api_client, component="c", clock=FakeClock())) as rec:
        rec.eventf(
            listed,
            "Normal",
            "Checked",
            "key %s is %d bytes",
            "a",
            3,
            api_version="v1",
            kind="ConfigMap",
            field_path="data.a",
        )
    [event] = await _events_about(kube, cm["metadata"]["name"])
    assert event["message"] == "key a is 3 bytes"
    assert (event["involvedObject"]["apiVersion"], event["involvedObject"]["kind"]) == ("v1", "ConfigMap")
    assert event["involvedObject"]["fieldPath"] == "data.a"
