"""The webhook server over real HTTPS: admission decisions, patches, conversion, bad input, metrics."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from kctl_runtime.metrics import sample_value
from kctl_runtime.testing.fakeapi.patch import json_patch
from kctl_runtime.testing.pytest_plugin import eventually
from kctl_runtime.webhook import WebhookServer
from kctl_runtime.webhook_admission import AdmissionRequest, AdmissionResponse, json_patch_diff
from kctl_runtime.webhook_certs import self_signed


def review(operation: str = "CREATE", obj: Any = None, old: Any = None, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "beta.kuar.com", "version": "v1", "kind": "LoadTest"},
        "resource": {"group": "beta.kuar.com", "version": "v1", "resource": "loadtests"},
        "name": "lt",
        "namespace": "default",
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["devs", "system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
        **extra,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def lt(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "beta.kuar.com/v1", "kind": "LoadTest", "metadata": {"name": "lt"}, "spec": spec}


# --8<-- [start:handlers]
async def validate(request: AdmissionRequest) -> AdmissionResponse:
    assert request.object is not None
    rps = request.object["spec"].get("requestsPerSecond", 0)
    if rps > 1000:
        return AdmissionResponse.deny(f"requestsPerSecond {rps} is above 1000", code=422, reason="Invalid")
    if request.dry_run:
        return AdmissionResponse.allow("dry run seen")
    return AdmissionResponse.allow(f"hello {request.user_info.username}")


async def default_scheme(request: AdmissionRequest, obj: dict[str, Any]) -> AdmissionResponse | None:
    obj["spec"].setdefault("scheme", "http")
    obj.setdefault("metadata", {}).setdefault("annotations", {})["example.com/defaulted"] = "true"
    return None


# --8<-- [end:handlers]


async def explode(request: AdmissionRequest) -> AdmissionResponse:
    raise RuntimeError("database unreachable")


async def slow(request: AdmissionRequest) -> AdmissionResponse:
    await anyio.sleep(30)
    return AdmissionResponse.allow()


def to_v2(obj: dict[str, Any], desired: str) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if desired.endswith("/v2"):
        obj["spec"] = {"target": {"service": spec.pop("service", None)}, **spec}
    else:
        target = spec.pop("target", {}) or {}
        obj["spec"] = {"service": target.get("service"), **spec}
    return obj


@asynccontextmanager
async def serving(
    tmp_path: Path, **kwargs: Any
) -> AsyncIterator[tuple[WebhookServer, aiohttp.ClientSession]]:
    ca = self_signed(tmp_path / "certs")
    server = WebhookServer(bind="127.0.0.1:0", cert_dir=tmp_path / "certs", **kwargs)
    server.validating("/validate", validate)
    server.mutating("/mutate", default_scheme)
    server.validating("/explode", explode)
    server.validating("/slow-fail", slow, timeout=0.3)
    server.validating("/slow-ignore", slow, timeout=0.3, failure_policy="Ignore")
    server.conversion("/convert", to_v2)
    context = ssl.create_default_context(cadata=ca.decode())
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            yield server, session
        tg.cancel_scope.cancel()


async def post(session: aiohttp.ClientSession, server: WebhookServer, path: str, body: Any) -> Any:
    async with session.post(server.url(path), json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_validating_webhook_allows_with_warnings_and_denies_with_message_and_code(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as (server, session):
        allowed = await post(session, server, "/validate", review(obj=lt(requestsPerSecond=10)))
        assert allowed["response"] == {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "allowed": True,
            "warnings": ["hello alice"],
        }
        denied = await post(session, server, "/validate", review(obj=lt(requestsPerSecond=5000)))
        assert denied["response"]["allowed"] is False
        assert denied["response"]["status"] == {
            "code": 422,
            "message": "requestsPerSecond 5000 is above 1000",
            "reason": "Invalid",
        }
        dry = await post(session, server, "/validate", review(obj=lt(requestsPerSecond=1), dryRun=True))
        assert dry["response"]["warnings"] == ["dry run seen"]


async def test_a_mutating_webhook_answers_the_json_patch_of_the_handlers_edits(tmp_path: Path) -> None:
    import base64
    import json

    original = lt(service="web", requestsPerSecond=5)
    async with serving(tmp_path) as (server, session):
        answer = (await post(session, server, "/mutate", review(obj=original)))["response"]
    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(answer["patch"]))
    patched = json_patch(original, ops)
    assert patched["spec"]["scheme"] == "http"
    assert patched["metadata"]["annotations"] == {"example.com/defaulted": "true"}
    assert {op["path"] for op in ops} == {"/spec/scheme", "/metadata/annotations"}


async def test_a_mutating_webhook_that_changes_nothing_sends_no_patch(tmp_path: Path) -> None:
    obj = lt(scheme="https")
    obj["metadata"]["annotations"] = {"example.com/defaulted": "true"}
    async with serving(tmp_path) as (server, session):
        answer = (await post(session, server, "/mutate", review(obj=obj)))["response"]
    assert answer == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def test_json_patch_diff_round_trips_nested_edits_and_escapes_keys() -> None:
    old = {"a": {"b": 1, "c/d": [1, 2], "gone": True}, "e~f": "x"}
    new = {"a": {"b": 2, "c/d": [1, 2, 3], "new": {"x": None}}, "e~f": "x"}
    ops = json_patch_diff(old, new)
    assert json_patch(old, ops) == new
    assert {"op": "remove", "path": "/a/gone"} in ops
    assert {"op": "replace", "path": "/a/c~1d", "value": [1, 2, 3]} in ops


async def test_malformed_reviews_get_400_and_oversized_bodies_get_413(tmp_path: Path) -> None:
    async with serving(tmp_path, max_request_bytes=4096) as (server, session):
        for body in (b"{not json", b'{"apiVersion": "v1", "kind": "Pod"}', b"[]"):
            async with session.post(
                server.url("/validate"), data=body, headers={"Content-Type": "application/json"}
            ) as response:
                assert response.status == 400
                assert body == b"{not json" or "malformed review" in await response.text()
        no_uid = review(obj=lt())
        del no_uid["request"]["uid"]
        async with session.post(server.url("/validate"), json=no_uid) as response:
            assert response.status == 400
            assert "request.uid is missing" in await response.text()
        big = review(obj=lt(paths=["/" + "x" * 8000]))
        async with session.post(server.url("/validate"), json=big) as response:
            assert response.status == 413
        async with session.post(server.url("/convert"), json={"kind": "ConversionReview"}) as response:
            assert response.status == 400


async def test_a_handler_that_raises_is_denied_with_a_clear_message(tmp_path: Path) -> None:
    async with serving(tmp_path) as (server, session):
        answer = (await post(session, server, "/explode", review(obj=lt())))["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 500
    assert answer["status"]["message"] == "/explode failed: database unreachable"


async def test_a_slow_handler_answers_per_failure_policy_within_its_timeout(tmp_path: Path) -> None:
    async with serving(tmp_path) as (server, session):
        with anyio.fail_after(10):
            failed = (await post(session, server, "/slow-fail", review(obj=lt())))["response"]
            ignored = (await post(session, server, "/slow-ignore", review(obj=lt())))["response"]
    assert failed["allowed"] is False
    assert failed["status"]["code"] == 504
    assert "did not decide within 0.3s" in failed["status"]["message"]
    assert ignored["allowed"] is True
    assert "allowed (failurePolicy Ignore)" in ignored["warnings"][0]


async def test_conversion_converts_each_object_and_keeps_metadata(tmp_path: Path) -> None:
    v1 = lt(service="web", requestsPerSecond=3)
    v1["metadata"].update(uid="u1", resourceVersion="7")
    already = {**lt(), "apiVersion": "beta.kuar.com/v2", "spec": {"target": {"service": "x"}}}
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c1", "desiredAPIVersion": "beta.kuar.com/v2", "objects": [v1, already]},
    }
    async with serving(tmp_path) as (server, session):
        answer = (await post(session, server, "/convert", body))["response"]
    assert answer["uid"] == "c1"
    assert answer["result"] == {"status": "Success"}
    first, second = answer["convertedObjects"]
    assert first["apiVersion"] == "beta.kuar.com/v2"
    assert first["spec"] == {"target": {"service": "web"}, "requestsPerSecond": 3}
    assert first["metadata"] == v1["metadata"]
    assert second == already


async def test_metrics_use_controller_runtime_names(tmp_path: Path) -> None:
    before = sample_value(
        "controller_runtime_webhook_requests_total", {"webhook": "/validate", "code": "200"}
    )
    bad_before = sample_value(
        "controller_runtime_webhook_requests_total", {"webhook": "/validate", "code": "400"}
    )
    async with serving(tmp_path) as (server, session):
        await post(session, server, "/validate", review(obj=lt()))
        async with session.post(server.url("/validate"), json={}) as response:
            assert response.status == 400
    after = sample_value("controller_runtime_webhook_requests_total", {"webhook": "/validate", "code": "200"})
    bad_after = sample_value(
        "controller_runtime_webhook_requests_total", {"webhook": "/validate", "code": "400"}
    )
    assert (after or 0) - (before or 0) == 1
    assert (bad_after or 0) - (bad_before or 0) == 1
    assert (
        sample_value("controller_runtime_webhook_latency_seconds_count", {"webhook": "/validate"}) or 0
    ) >= 2
    assert sample_value("controller_runtime_webhook_requests_in_flight", {"webhook": "/validate"}) == 0


async def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    from kctl_runtime.clock import FakeClock

    clock = FakeClock()
    async with serving(tmp_path, clock=clock, cert_reload_interval=5) as (server, _session):
        assert server.certs is not None
        new_ca = self_signed(tmp_path / "certs")  # a new CA: the old one no longer verifies
        await clock.advance(5)
        assert server.certs.loads == 2
        context = ssl.create_default_context(cadata=new_ca.decode())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as fresh:
            answer = await post(fresh, server, "/validate", review(obj=lt()))
        assert answer["response"]["allowed"] is True
        # a torn rotation (key that does not match) keeps the previous pair served
        (tmp_path / "certs" / "tls.key").write_bytes((tmp_path / "certs" / "ca.crt").read_bytes())
        await clock.advance(5)
        assert server.certs.loads == 2
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as fresh:
            assert (await post(fresh, server, "/validate", review(obj=lt())))["response"]["allowed"]


def test_construction_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HTTPS"):
        WebhookServer()
    with pytest.raises(ValueError, match=r"tls\.crt.*not found"):
        WebhookServer(cert_dir=tmp_path)
    self_signed(tmp_path)
    server = WebhookServer(cert_dir=tmp_path)
    server.validating("/v", validate)
    with pytest.raises(ValueError, match="already registered"):
        server.validating("/v", validate)
    with pytest.raises(ValueError, match="failure_policy"):
        server.validating("/w", validate, failure_policy="Maybe")  # type: ignore[arg-type]


async def test_the_manager_serves_webhooks_before_cache_sync_and_readyz_includes_them(tmp_path: Path) -> None:
    from kctl_runtime.manager import Manager
    from kctl_runtime.testing.fakeapi import FakeApiServer

    self_signed(tmp_path)
    async with FakeApiServer() as fake:
        api = await fake.api_client()
        try:
            # --8<-- [start:manager]
            server = WebhookServer(bind="127.0.0.1:0", cert_dir=tmp_path)
            server.validating("/validate", validate)
            server.mutating("/mutate", default_scheme)
            manager = Manager(api, health_bind="127.0.0.1:0", metrics_bind=None, handle_signals=False)
            manager.add_webhook_server(server)
            # --8<-- [end:manager]

            async def manager_ready() -> bool:
                return manager.ready

            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await eventually(manager_ready, timeout=30, message="manager not ready")
                assert server.ready()
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{manager.health_port}/readyz?verbose") as response,
                ):
                    text = await response.text()
                assert response.status == 200
                assert "[+]webhook-1 ok" in text
                manager.stop()
            assert not server.ready()
        finally:
            await api.close()
