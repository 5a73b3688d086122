"""Tests for kctl_runtime.finalizer over HTTP: the flow, crashes between steps, other finalizers."""

from __future__ import annotations

from typing import Any

import pytest

from kctl_runtime._rest import request_json
from kctl_runtime.client import Client
from kctl_runtime.errors import NotFound
from kctl_runtime.finalizer import (
    AddFinalizerFailed,
    ApplyFailed,
    CleanupFailed,
    InvalidFinalizer,
    RemoveFinalizerFailed,
    finalizer,
    has_finalizer,
)
from kctl_runtime.patch import json_patch, merge_patch
from kctl_runtime.reconcile import TerminalError
from kctl_runtime.resource import CONFIGMAPS
from kctl_runtime.testing.pytest_plugin import KubeTarget, unique_name

OURS = "example.com/cleanup"


class Crash(Exception):
    """A reconciler failing (standing in for a process crash) at a chosen point."""


class Recorder:
    """apply/cleanup callbacks that count calls and can be told to crash."""

    def __init__(self) -> None:
        self.applied = 0
        self.cleaned = 0
        self.crash_apply = False
        self.crash_cleanup = False
        self.external: set[str] = set()  # stands for resources outside the cluster

    async def apply(self, obj: dict[str, Any]) -> str:
        self.applied += 1
        self.external.add(obj["metadata"]["name"])
        if self.crash_apply:
            raise Crash("apply crashed")
        return "applied"

    async def cleanup(self, obj: dict[str, Any]) -> str:
        self.cleaned += 1
        if self.crash_cleanup:
            raise Crash("cleanup crashed")
        self.external.discard(obj["metadata"]["name"])  # idempotent: discarding twice is fine
        return "cleaned"


async def _create(kube: KubeTarget, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": unique_name("fin"), "namespace": kube.namespace}
    if finalizers:
        meta["finalizers"] = finalizers
    created: dict[str, Any] = await request_json(
        kube.api_client,
        "POST",
        CONFIGMAPS.path(kube.namespace),
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}},
    )
    return created


async def _run(kube: KubeTarget, obj: dict[str, Any], recorder: Recorder) -> str | None:
    return await finalizer(
        kube.api_client, CONFIGMAPS, obj, OURS, apply=recorder.apply, cleanup=recorder.cleanup
    )


async def _get(kube: KubeTarget, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = await request_json(
            kube.api_client, "GET", CONFIGMAPS.path(kube.namespace, name)
        )
    except NotFound:
        return None
    return obj


async def _delete(kube: KubeTarget, name: str) -> None:
    await request_json(kube.api_client, "DELETE", CONFIGMAPS.path(kube.namespace, name))


async def _remove_other(kube: KubeTarget, obj_name: str, other: str) -> None:
    """Another controller removing its own finalizer, the same safe way."""
    obj = await _get(kube, obj_name)
    assert obj is not None
    index = obj["metadata"]["finalizers"].index(other)
    await json_patch(
        kube.api_client,
        CONFIGMAPS,
        kube.namespace,
        obj_name,
        [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": other},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ],
    )


async def test_doc_snippet_full_finalizer_flow(kube: KubeTarget) -> None:
    # docs/finalizers.md: "Using it from a reconciler" snippet.
    api = kube.api_client
    client = Client(api)
    recorder = Recorder()

    # --8<-- [start:reconcile]
    async def reconcile(namespace: str, name: str) -> str | None:
        try:
            obj = await client.get(CONFIGMAPS, name, namespace)  # re-read every time
        except NotFound:
            return None  # gone: nothing to do
        return await finalizer(api, CONFIGMAPS, obj, OURS, apply=recorder.apply, cleanup=recorder.cleanup)

    # --8<-- [end:reconcile]

    name = (await _create(kube))["metadata"]["name"]
    # 1st reconcile: only adds the finalizer; apply has not run.
    assert await reconcile(kube.namespace, name) is None
    assert recorder.applied == 0
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [OURS]
    # 2nd reconcile (triggered by that write): apply.
    assert await reconcile(kube.namespace, name) == "applied"
    assert recorder.external == {name}
    # Deletion: the object stays while our finalizer is there.
    await _delete(kube, name)
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"].get("deletionTimestamp")
    assert await reconcile(kube.namespace, name) == "cleaned"
    assert recorder.external == set()
    # Our finalizer was the last one: the object is gone now.
    assert await _get(kube, name) is None
    assert await reconcile(kube.namespace, name) is None
    assert (recorder.applied, recorder.cleaned) == (1, 1)


async def test_apply_never_runs_before_the_finalizer_is_stored(kube: KubeTarget) -> None:
    recorder = Recorder()
    obj = await _create(kube)
    assert await _run(kube, obj, recorder) is None
    assert recorder.applied == 0
    stored = await _get(kube, obj["metadata"]["name"])
    assert stored is not None
    assert has_finalizer(stored, OURS)


async def test_then_apply_runs_apply_in_the_same_call_on_the_stored_object(kube: KubeTarget) -> None:
    seen: list[dict[str, Any]] = []
    stored_when_applied: list[dict[str, Any] | None] = []

    async def apply(obj: dict[str, Any]) -> str:
        seen.append(obj)
        stored_when_applied.append(await _get(kube, obj["metadata"]["name"]))
        return "applied"

    async def cleanup(obj: dict[str, Any]) -> str:
        return "cleaned"

    obj = await _create(kube, finalizers=["example.com/other"])
    result = await finalizer(
        kube.api_client, CONFIGMAPS, obj, OURS, apply=apply, cleanup=cleanup, then_apply=True
    )
    assert result == "applied"
    assert len(seen) == 1
    # apply got the server's answer to the patch, and the finalizer was stored before apply ran
    assert seen[0]["metadata"]["finalizers"] == ["example.com/other", OURS]
    assert seen[0]["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    assert stored_when_applied[0] is not None
    assert stored_when_applied[0]["metadata"]["finalizers"] == ["example.com/other", OURS]
    # a second call with the stored object applies without another write
    again = await finalizer(
        kube.api_client, CONFIGMAPS, seen[0], OURS, apply=apply, cleanup=cleanup, then_apply=True
    )
    assert again == "applied"
    latest = await _get(kube, obj["metadata"]["name"])
    assert latest is not None
    assert latest["metadata"]["resourceVersion"] == seen[0]["metadata"]["resourceVersion"]


async def test_crash_after_the_finalizer_was_added_is_recovered_next_time(
    kube: KubeTarget,
) -> None:
    recorder = Recorder()
    name = (await _create(kube))["metadata"]["name"]
    obj = await _get(kube, name)
    assert obj is not None
    await _run(kube, obj, recorder)
    recorder.crash_apply = True
    obj = await _get(kube, name)
    assert obj is not None
    with pytest.raises(ApplyFailed) as caught:
        await _run(kube, obj, recorder)
    assert caught.value.step == "apply"
    assert isinstance(caught.value.__cause__, Crash)
    recorder.crash_apply = False
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [OURS]
    assert await _run(kube, obj, recorder) == "applied"


async def test_a_terminal_error_from_apply_or_cleanup_reaches_the_controller_unwrapped(
    kube: KubeTarget,
) -> None:
    # Regression: TerminalError was wrapped in ApplyFailed, so controllers retried it forever.
    async def refuse(obj: dict[str, Any]) -> str:
        raise TerminalError("invalid spec")

    name = (await _create(kube, [OURS]))["metadata"]["name"]
    obj = await _get(kube, name)
    assert obj is not None
    with pytest.raises(TerminalError):
        await finalizer(kube.api_client, CONFIGMAPS, obj, OURS, apply=refuse, cleanup=refuse)
    await _delete(kube, name)
    obj = await _get(kube, name)
    assert obj is not None
    with pytest.raises(TerminalError):
        await finalizer(kube.api_client, CONFIGMAPS, obj, OURS, apply=refuse, cleanup=refuse)
    still = await _get(kube, name)
    assert still is not None
    assert has_finalizer(still, OURS)


async def test_crash_during_cleanup_keeps_the_finalizer_and_cleanup_runs_again(kube: KubeTarget) -> None:
    recorder = Recorder()
    name = (await _create(kube, [OURS]))["metadata"]["name"]
    recorder.external.add(name)
    await _delete(kube, name)
    recorder.crash_cleanup = True
    obj = await _get(kube, name)
    assert obj is not None
    with pytest.raises(CleanupFailed) as caught:
        await _run(kube, obj, recorder)
    assert caught.value.step == "cleanup"
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [OURS]
    recorder.crash_cleanup = False
    assert await _run(kube, obj, recorder) == "cleaned"
    assert recorder.cleaned == 2
    assert recorder.external == set()
    assert await _get(kube, name) is None


@pytest.mark.fake_only
async def test_crash_after_cleanup_before_removal_runs_cleanup_again(
    fake_kube: KubeTarget,
) -> None:
    kube = fake_kube
    assert kube.fake is not None
    recorder = Recorder()
    name = (await _create(kube, [OURS, "other.io/keep"]))["metadata"]["name"]
    await _delete(kube, name)

    async def cleanup_then_lose_the_next_write(obj: dict[str, Any]) -> str:
        result = await recorder.cleanup(obj)
        assert kube.fake is not None
        kube.fake.faults.fail_next(1, status=500, verb="patch", resource="configmaps")
        return result

    obj = await _get(kube, name)
    assert obj is not None
    with pytest.raises(RemoveFinalizerFailed) as caught:
        await finalizer(
            kube.api_client,
            CONFIGMAPS,
            obj,
            OURS,
            apply=recorder.apply,
            cleanup=cleanup_then_lose_the_next_write,
        )
    assert caught.value.step == "remove_finalizer"
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [OURS, "other.io/keep"]
    assert await _run(kube, obj, recorder) == "cleaned"
    assert recorder.cleaned == 2
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["other.io/keep"]


async def test_another_controllers_finalizer_is_never_removed_when_the_list_shifts(
    kube: KubeTarget,
) -> None:
    recorder = Recorder()
    name = (await _create(kube, ["other.io/a", OURS, "other.io/b"]))["metadata"]["name"]
    await _delete(kube, name)
    obj = await _get(kube, name)
    assert obj is not None

    async def cleanup_while_another_controller_finishes(o: dict[str, Any]) -> str:
        # While we clean up, the other controller removes its finalizer: ours moves to index 0,
        # so our `test` at index 1 fails (it now holds other.io/b) and we must re-read.
        await _remove_other(kube, name, "other.io/a")
        return await recorder.cleanup(o)

    result = await finalizer(
        kube.api_client,
        CONFIGMAPS,
        obj,
        OURS,
        apply=recorder.apply,
        cleanup=cleanup_while_another_controller_finishes,
    )
    assert result == "cleaned"
    assert recorder.cleaned == 1
    after = await _get(kube, name)
    assert after is not None
    assert after["metadata"]["finalizers"] == ["other.io/b"]


async def test_adding_with_a_stale_object_rereads_and_keeps_the_other_finalizers(kube: KubeTarget) -> None:
    recorder = Recorder()
    stale = await _create(kube)
    name = stale["metadata"]["name"]
    # Another controller adds its finalizer after we read the object.
    await merge_patch(
        kube.api_client, CONFIGMAPS, kube.namespace, name, {"metadata": {"finalizers": ["other.io/a"]}}
    )
    assert await _run(kube, stale, recorder) is None
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["other.io/a", OURS]
    # Running again with the same stale object does not add a duplicate.
    await _run(kube, stale, recorder)
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"].count(OURS) == 1


async def test_a_stale_object_that_is_deleting_meanwhile_gets_no_finalizer(
    kube: KubeTarget,
) -> None:
    recorder = Recorder()
    stale = await _create(kube, ["other.io/a"])
    name = stale["metadata"]["name"]
    await _delete(kube, name)
    assert await _run(kube, stale, recorder) is None
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["other.io/a"]
    assert (recorder.applied, recorder.cleaned) == (0, 0)


async def test_deleting_object_without_our_finalizer_does_nothing(kube: KubeTarget) -> None:
    recorder = Recorder()
    name = (await _create(kube, ["other.io/a"]))["metadata"]["name"]
    await _delete(kube, name)
    obj = await _get(kube, name)
    assert obj is not None
    assert await _run(kube, obj, recorder) is None
    assert (recorder.applied, recorder.cleaned) == (0, 0)
    again = await _get(kube, name)
    assert again is not None
    assert again["metadata"]["finalizers"] == ["other.io/a"]


@pytest.mark.fake_only
async def test_injected_conflicts_on_both_patches_are_retried(fake_kube: KubeTarget) -> None:
    kube = fake_kube
    assert kube.fake is not None
    recorder = Recorder()
    name = (await _create(kube, ["other.io/a"]))["metadata"]["name"]
    kube.fake.faults.fail_next(2, status=409, verb="patch", resource="configmaps")
    obj = await _get(kube, name)
    assert obj is not None
    await _run(kube, obj, recorder)
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["other.io/a", OURS]
    await _delete(kube, name)
    kube.fake.faults.fail_next(2, status=409, verb="patch", resource="configmaps")
    obj = await _get(kube, name)
    assert obj is not None
    assert await _run(kube, obj, recorder) == "cleaned"
    obj = await _get(kube, name)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["other.io/a"]


@pytest.mark.fake_only
async def test_endless_conflicts_give_up_with_a_typed_error(fake_kube: KubeTarget) -> None:
    kube = fake_kube
    assert kube.fake is not None
    recorder = Recorder()
    obj = await _create(kube)
    kube.fake.faults.fail_next(10, status=409, verb="patch", resource="configmaps")
    with pytest.raises(AddFinalizerFailed) as caught:
        await finalizer(
            kube.api_client,
            CONFIGMAPS,
            obj,
            OURS,
            apply=recorder.apply,
            cleanup=recorder.cleanup,
            max_conflict_retries=3,
        )
    assert caught.value.step == "add_finalizer"
    assert recorder.applied == 0


@pytest.mark.parametrize("bad", ["", "has space", "example.com/", "/x", "Bad_Domain.com/x"])
async def test_an_invalid_finalizer_name_is_rejected_before_any_request(bad: str) -> None:
    recorder = Recorder()
    obj = {"metadata": {"name": "x", "namespace": "y", "resourceVersion": "1"}}
    with pytest.raises(InvalidFinalizer):
        await finalizer(None, CONFIGMAPS, obj, bad, apply=recorder.apply, cleanup=recorder.cleanup)


async def test_an_object_without_a_name_is_rejected() -> None:
    recorder = Recorder()
    with pytest.raises(InvalidFinalizer, match=r"metadata\.name"):
        await finalizer(
            None, CONFIGMAPS, {"metadata": {}}, OURS, apply=recorder.apply, cleanup=recorder.cleanup
        )
