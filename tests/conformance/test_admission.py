"""Admission webhooks called by the API server: the fake and kube-apiserver call the same HTTPS server.

Each test starts a :class:`~kctl_runtime.webhook.WebhookServer` on 127.0.0.1 with a fresh CA and
installs configurations aimed at it (:func:`~kctl_runtime.testing.envtest.webhooks.install_webhooks`),
scoped by ``namespaceSelector`` to the test's namespace so that other tests sharing the real plane
never reach them. kube-apiserver picks configurations up asynchronously, so each test first waits
until a dry-run probe reaches the webhook.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.errors import Invalid
from kctl_runtime.testing.envtest.webhooks import install_webhooks
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from kctl_runtime.webhook import WebhookServer
from kctl_runtime.webhook_admission import AdmissionRequest, AdmissionResponse
from kctl_runtime.webhook_certs import self_signed

from ._support import configmap, core_api, raw, status_of


@dataclass
class Hooks:
    """A running webhook server and what it was asked."""

    server: WebhookServer
    ca: bytes
    seen: dict[str, list[AdmissionRequest]] = field(default_factory=lambda: defaultdict(list))


async def _deny(hooks: Hooks, request: AdmissionRequest) -> AdmissionResponse:
    hooks.seen["/deny"].append(request)
    data = (request.object or {}).get("data") or {}
    if "forbidden" in data:
        return AdmissionResponse.deny(f"key 'forbidden' is not allowed in {request.name}")
    if "teapot" in data:
        return AdmissionResponse.deny("short and stout", code=418, reason="Teapot")
    if "warn" in data:
        return AdmissionResponse.allow(f"{request.name} has a 'warn' key", "a second warning")
    return AdmissionResponse.allow()


async def _mutate(hooks: Hooks, request: AdmissionRequest, obj: dict[str, Any]) -> AdmissionResponse | None:
    hooks.seen["/mutate"].append(request)
    obj["metadata"].setdefault("labels", {})["mutated"] = "yes"
    obj.setdefault("data", {}).setdefault("defaulted", "true")
    return None


async def _require_mutated(hooks: Hooks, request: AdmissionRequest) -> AdmissionResponse:
    hooks.seen["/require-mutated"].append(request)
    labels = ((request.object or {}).get("metadata") or {}).get("labels") or {}
    if labels.get("mutated") != "yes":
        return AdmissionResponse.deny("not mutated before validation")
    return AdmissionResponse.allow()


async def _slow(hooks: Hooks, request: AdmissionRequest) -> AdmissionResponse:
    hooks.seen["/slow"].append(request)
    await anyio.sleep(20)
    return AdmissionResponse.allow()


async def _protect(hooks: Hooks, request: AdmissionRequest) -> AdmissionResponse:
    hooks.seen["/protect"].append(request)
    old_labels = ((request.old_object or {}).get("metadata") or {}).get("labels") or {}
    if request.operation == "DELETE" and old_labels.get("protected") == "true":
        return AdmissionResponse.deny(f"{request.name} is protected")
    return AdmissionResponse.allow()


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Hooks]:
    ca = self_signed(tmp_path / "certs")
    server = WebhookServer(bind="127.0.0.1:0", cert_dir=tmp_path / "certs")
    state = Hooks(server, ca)

    async def deny(r: AdmissionRequest) -> AdmissionResponse:
        return await _deny(state, r)

    async def mutate(r: AdmissionRequest, o: dict[str, Any]) -> AdmissionResponse | None:
        return await _mutate(state, r, o)

    async def require_mutated(r: AdmissionRequest) -> AdmissionResponse:
        return await _require_mutated(state, r)

    async def slow(r: AdmissionRequest) -> AdmissionResponse:
        return await _slow(state, r)

    async def protect(r: AdmissionRequest) -> AdmissionResponse:
        return await _protect(state, r)

    server.validating("/deny", deny)
    server.mutating("/mutate", mutate)
    server.validating("/require-mutated", require_mutated)
    server.validating("/slow", slow, timeout=25)
    server.validating("/protect", protect)
    async with server:
        yield state


def webhook(
    kube: KubeTarget,
    path: str,
    *,
    operations: tuple[str, ...] = ("CREATE", "UPDATE"),
    failure_policy: str = "Fail",
    timeout: int = 10,
    side_effects: str = "None",
    object_selector: dict[str, Any] | None = None,
    namespace_selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One webhook on configmaps in the test's namespace (unless another namespaceSelector is given)."""
    hook: dict[str, Any] = {
        "name": f"{path.strip('/')}.kctl.example.com",
        "clientConfig": {"service": {"name": "unused", "namespace": "default", "path": path}},
        "rules": [
            {
                "operations": list(operations),
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": failure_policy,
        "sideEffects": side_effects,
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": timeout,
        "namespaceSelector": namespace_selector
        or {"matchLabels": {"kubernetes.io/metadata.name": kube.namespace}},
    }
    if object_selector is not None:
        hook["objectSelector"] = object_selector
    return hook


def configuration(*hooks: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": unique_name("wh")}, "webhooks": list(hooks)}


async def create(kube: KubeTarget, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    kwargs = {"dry_run": "All"} if dry_run else {}
    result = await core_api(kube.api_client).create_namespaced_config_map(kube.namespace, obj, **kwargs)
    body: dict[str, Any] = kube.api_client.sanitize_for_serialization(result)
    return body


async def effective(kube: KubeTarget, hooks: Hooks, path: str, labels: dict[str, str] | None = None) -> None:
    """Wait until the API server calls ``path`` (a dry-run probe; its outcome does not matter)."""
    before = len(hooks.seen[path])

    async def reached() -> bool:
        with contextlib.suppress(ApiException):
            await create(kube, configmap(unique_name("probe"), labels=labels), dry_run=True)
        return len(hooks.seen[path]) > before

    await eventually(reached, timeout=30, interval=0.2, message=f"the API server never called {path}")


async def test_a_denial_carries_the_webhooks_message_code_and_reason(kube: KubeTarget, hooks: Hooks) -> None:
    async with install_webhooks(
        kube.api_client, hooks.server, hooks.ca, validating=[configuration(webhook(kube, "/deny"))]
    ):
        await effective(kube, hooks, "/deny")
        with pytest.raises(ApiException) as denied:
            await create(kube, {**configmap("bad"), "data": {"forbidden": "x"}})
        assert denied.value.status == 403
        status = status_of(denied.value)
        assert status["message"] == (
            'admission webhook "deny.kctl.example.com" denied the request: '
            "key 'forbidden' is not allowed in bad"
        )
        assert status["reason"] == "Forbidden"
        assert status["code"] == 403
        with pytest.raises(ApiException) as teapot:
            await create(kube, {**configmap("tea"), "data": {"teapot": "x"}})
        assert teapot.value.status == 418
        assert status_of(teapot.value)["reason"] == "Teapot"
        request = hooks.seen["/deny"][-1]
        assert request.operation == "CREATE"
        assert request.namespace == kube.namespace
        assert request.kind == {"group": "", "version": "v1", "kind": "ConfigMap"}
        assert request.resource == {"group": "", "version": "v1", "resource": "configmaps"}
        assert request.user_info.username
        assert request.old_object is None


async def test_warnings_reach_the_client_as_warning_headers(kube: KubeTarget, hooks: Hooks) -> None:
    async with install_webhooks(
        kube.api_client, hooks.server, hooks.ca, validating=[configuration(webhook(kube, "/deny"))]
    ):
        await effective(kube, hooks, "/deny")
        status, headers, body = await raw(
            kube.api_client,
            "POST",
            f"/api/v1/namespaces/{kube.namespace}/configmaps",
            body={**configmap("warned"), "data": {"warn": "1"}},
        )
        assert status == 201, body
        # (the helper's header dict keeps the first of the two Warning headers)
        assert headers.get("Warning") == "299 - \"warned has a 'warn' key\""


async def test_mutating_webhooks_run_before_validating_ones_and_their_patch_is_stored(
    kube: KubeTarget, hooks: Hooks
) -> None:
    async with install_webhooks(
        kube.api_client,
        hooks.server,
        hooks.ca,
        mutating=[configuration(webhook(kube, "/mutate"))],
        validating=[configuration(webhook(kube, "/require-mutated"))],
    ):
        await effective(kube, hooks, "/require-mutated")
        await effective(kube, hooks, "/mutate")

        async def created_and_mutated() -> dict[str, Any]:
            name = unique_name("m")
            obj = await create(kube, {**configmap(name), "data": {"given": "1"}})
            return obj

        obj = await created_and_mutated()
        assert obj["metadata"]["labels"]["mutated"] == "yes"
        assert obj["data"] == {"given": "1", "defaulted": "true"}
        stored = await core_api(kube.api_client).read_namespaced_config_map(
            obj["metadata"]["name"], kube.namespace
        )
        assert stored.metadata.labels["mutated"] == "yes"
        # UPDATE: the webhook sees the old object too, and re-adds what the update removed
        stored.metadata.labels = {}
        updated = await core_api(kube.api_client).replace_namespaced_config_map(
            obj["metadata"]["name"], kube.namespace, stored
        )
        assert updated.metadata.labels == {"mutated": "yes"}
        update = hooks.seen["/mutate"][-1]
        assert update.operation == "UPDATE"
        assert update.old_object is not None
        assert update.old_object["metadata"]["labels"] == {"mutated": "yes"}


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_a_webhook_slower_than_its_timeout_answers_per_failure_policy(
    kube: KubeTarget, hooks: Hooks, policy: str
) -> None:
    hook = webhook(kube, "/slow", failure_policy=policy, timeout=1)
    async with install_webhooks(kube.api_client, hooks.server, hooks.ca, validating=[configuration(hook)]):
        await effective(kube, hooks, "/slow")
        name = unique_name(policy.lower())
        began = anyio.current_time()
        if policy == "Ignore":
            obj = await create(kube, configmap(name))
            assert obj["metadata"]["name"] == name
        else:
            with pytest.raises(ApiException) as failed:
                await create(kube, configmap(name))
            assert failed.value.status == 500
            status = status_of(failed.value)
            assert status["reason"] == "InternalError"
            assert status["message"].startswith(
                'Internal error occurred: failed calling webhook "slow.kctl.example.com": '
                "failed to call webhook: "
                f'Post "{hooks.server.url("/slow")}?timeout=1s": '
            )
        assert anyio.current_time() - began < 15

        # Count only the calls for this object: under load a probe's call from ``effective`` can be
        # recorded after the probe returned, so the total is not a fair measure.  The server sends one
        # call and does not retry a timed-out webhook; a call can be recorded a little late under load.
        def calls_for_it() -> list[str]:
            return [r.name for r in hooks.seen["/slow"] if r.name == name]

        async def seen() -> bool:
            return bool(calls_for_it())

        await eventually(seen, timeout=10, message=f"the webhook never saw {name}")
        await anyio.sleep(0.5)
        assert calls_for_it() == [name]


async def test_object_and_namespace_selectors_scope_which_requests_reach_a_webhook(
    kube: KubeTarget, hooks: Hooks
) -> None:
    hook = webhook(kube, "/deny", object_selector={"matchLabels": {"checked": "yes"}})
    other = unique_name("other")
    core = core_api(kube.api_client)
    await core.create_namespace({"metadata": {"name": other}})
    try:
        async with install_webhooks(
            kube.api_client, hooks.server, hooks.ca, validating=[configuration(hook)]
        ):
            await effective(kube, hooks, "/deny", labels={"checked": "yes"})
            forbidden = {"forbidden": "x"}
            with pytest.raises(ApiException):
                await create(kube, {**configmap("a", labels={"checked": "yes"}), "data": forbidden})
            calls = len(hooks.seen["/deny"])
            # not selected by the object selector
            await create(kube, {**configmap("b", labels={"checked": "no"}), "data": forbidden})
            # the namespace selector does not select the other namespace
            await core.create_namespaced_config_map(
                other, {**configmap("c", labels={"checked": "yes"}), "data": forbidden}
            )
            assert len(hooks.seen["/deny"]) == calls
            # an UPDATE is selected if the old object's labels match, even when the new ones do not
            stored = await core.read_namespaced_config_map("b", kube.namespace)
            stored.metadata.labels = {"checked": "yes"}
            with pytest.raises(ApiException):
                await core.replace_namespaced_config_map("b", kube.namespace, stored)
    finally:
        await core.delete_namespace(other)


async def test_dry_run_requests_reach_webhooks_with_dry_run_set(kube: KubeTarget, hooks: Hooks) -> None:
    safe = webhook(kube, "/deny", side_effects="NoneOnDryRun")
    async with install_webhooks(kube.api_client, hooks.server, hooks.ca, validating=[configuration(safe)]):
        await effective(kube, hooks, "/deny")
        await create(kube, configmap("dry"), dry_run=True)
        assert hooks.seen["/deny"][-1].dry_run is True
        assert hooks.seen["/deny"][-1].name == "dry"
    # admissionregistration/v1 allows only side-effect-free webhooks (None, NoneOnDryRun)
    with pytest.raises(Invalid) as refused:
        async with install_webhooks(
            kube.api_client,
            hooks.server,
            hooks.ca,
            validating=[configuration(webhook(kube, "/protect", side_effects="Some"))],
        ):
            pass
    assert (
        'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"'
        in str(refused.value)
    )
    missing = webhook(kube, "/protect")
    del missing["sideEffects"]
    with pytest.raises(Invalid) as required:
        async with install_webhooks(
            kube.api_client, hooks.server, hooks.ca, validating=[configuration(missing)]
        ):
            pass
    assert "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun" in str(
        required.value
    )


async def test_delete_sends_the_old_object_and_can_be_denied(kube: KubeTarget, hooks: Hooks) -> None:
    hook = webhook(kube, "/protect", operations=("DELETE",))
    core = core_api(kube.api_client)
    await core.create_namespaced_config_map(kube.namespace, configmap("keep", labels={"protected": "true"}))
    await core.create_namespaced_config_map(kube.namespace, configmap("drop"))
    async with install_webhooks(kube.api_client, hooks.server, hooks.ca, validating=[configuration(hook)]):

        async def denied_dry_run() -> bool:
            try:
                await core.delete_namespaced_config_map("keep", kube.namespace, dry_run="All")
            except ApiException:
                return True
            return False

        await eventually(denied_dry_run, timeout=30, interval=0.2)
        with pytest.raises(ApiException) as denied:
            await core.delete_namespaced_config_map("keep", kube.namespace)
        assert denied.value.status == 403
        assert status_of(denied.value)["message"] == (
            'admission webhook "protect.kctl.example.com" denied the request: keep is protected'
        )
        request = hooks.seen["/protect"][-1]
        assert request.operation == "DELETE"
        assert request.object is None
        assert request.old_object is not None
        assert request.old_object["metadata"]["name"] == "keep"
        assert request.options is not None
        assert request.options.get("kind") == "DeleteOptions"
        await core.delete_namespaced_config_map("drop", kube.namespace)
        assert hooks.seen["/protect"][-1].name == "drop"


def _convert_widget(obj: dict[str, Any], desired: str) -> dict[str, Any]:
    """v1 ``spec.service`` <-> v2 ``spec.target.service``; ``spec.boom`` cannot be converted."""
    spec = dict(obj.get("spec") or {})
    if spec.get("boom"):
        raise ValueError("cannot convert a boom")
    if desired.endswith("/v2"):
        spec["target"] = {"service": spec.pop("service", "")}
    else:
        spec["service"] = (spec.pop("target", None) or {}).get("service", "")
    obj["spec"] = spec
    return obj


@dataclass
class Widgets:
    """A two-version CRD converted by a local webhook: ``base.format(version=...)`` lists widgets."""

    group: str
    base: str
    server: WebhookServer


@pytest.fixture
async def widgets(kube: KubeTarget, tmp_path: Path) -> AsyncIterator[Widgets]:
    from kctl_runtime.testing.envtest.webhooks import local_client_config

    ca = self_signed(tmp_path / "certs")
    server = WebhookServer(bind="127.0.0.1:0", cert_dir=tmp_path / "certs")
    server.conversion("/convert", _convert_widget)
    group = f"{unique_name('conv')}.kctl.example.com"
    name = f"widgets.{group}"
    open_schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": open_schema},
                {"name": "v2", "served": True, "storage": False, "schema": open_schema},
            ],
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"service": {"name": "x", "namespace": "default", "path": "/convert"}},
                },
            },
        },
    }
    async with server:
        crd["spec"]["conversion"]["webhook"]["clientConfig"] = local_client_config(  # type: ignore[index]
            server, ca, {"service": {"path": "/convert"}}
        )
        await raw(
            kube.api_client, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd
        )
        base = f"/apis/{group}/{{version}}/namespaces/{kube.namespace}/widgets"
        try:

            async def served() -> bool:
                status, _, _ = await raw(kube.api_client, "GET", base.format(version="v2"))
                return status == 200

            await eventually(served, timeout=30, message="v2 served")
            yield Widgets(group, base, server)
        finally:
            await raw(
                kube.api_client, "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )


async def test_a_conversion_webhook_round_trips_objects_between_versions(
    kube: KubeTarget, widgets: Widgets
) -> None:
    group, base = widgets.group, widgets.base
    v1 = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "a"}}
    status, _, body = await raw(
        kube.api_client, "POST", base.format(version="v1"), body={**v1, "spec": {"service": "web"}}
    )
    assert status == 201, body
    status, _, as_v2 = await raw(kube.api_client, "GET", base.format(version="v2") + "/a")
    assert status == 200, as_v2
    assert as_v2["apiVersion"] == f"{group}/v2"
    assert as_v2["spec"] == {"target": {"service": "web"}}
    # written as v2, stored as v1, read back as both
    v2 = {"apiVersion": f"{group}/v2", "kind": "Widget", "metadata": {"name": "b"}}
    status, _, body = await raw(
        kube.api_client,
        "POST",
        base.format(version="v2"),
        body={**v2, "spec": {"target": {"service": "api"}}},
    )
    assert status == 201, body
    assert body["apiVersion"] == f"{group}/v2"
    assert body["spec"] == {"target": {"service": "api"}}
    status, _, as_v1 = await raw(kube.api_client, "GET", base.format(version="v1") + "/b")
    assert as_v1["spec"] == {"service": "api"}
    status, _, listed = await raw(kube.api_client, "GET", base.format(version="v2"))
    assert listed["apiVersion"] == f"{group}/v2"
    assert sorted(i["spec"]["target"]["service"] for i in listed["items"]) == ["api", "web"]
    assert {i["apiVersion"] for i in listed["items"]} == {f"{group}/v2"}
    # a merge patch in v2 is a patch of the v2 shape; the v1 view follows
    status, _, patched = await raw(
        kube.api_client,
        "PATCH",
        base.format(version="v2") + "/b",
        body={"spec": {"target": {"service": "api2"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, patched
    assert patched["spec"] == {"target": {"service": "api2"}}
    assert patched["metadata"]["generation"] == 2
    status, _, as_v1 = await raw(kube.api_client, "GET", base.format(version="v1") + "/b")
    assert as_v1["spec"] == {"service": "api2"}
    # a PUT in v2 carries the resourceVersion read in v2
    patched["spec"] = {"target": {"service": "api3"}}
    status, _, put = await raw(kube.api_client, "PUT", base.format(version="v2") + "/b", body=patched)
    assert status == 200, put
    assert put["spec"] == {"target": {"service": "api3"}}


async def test_a_watch_in_another_version_gets_converted_events(kube: KubeTarget, widgets: Widgets) -> None:
    from ._support import open_watch

    group, base = widgets.group, widgets.base
    status, _, listed = await raw(kube.api_client, "GET", base.format(version="v2"))
    assert status == 200, listed
    path = base.format(version="v2")
    async with open_watch(
        kube.api_client, path, [("resourceVersion", listed["metadata"]["resourceVersion"])]
    ) as stream:
        v1 = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
        status, _, body = await raw(
            kube.api_client, "POST", base.format(version="v1"), body={**v1, "spec": {"service": "svc"}}
        )
        assert status == 201, body
        event = await stream.next(timeout=10)
    assert event is not None
    assert event["type"] == "ADDED"
    assert event["object"]["apiVersion"] == f"{group}/v2"
    assert event["object"]["spec"] == {"target": {"service": "svc"}}


async def test_a_failed_conversion_is_a_500_naming_the_webhook_and_its_message(
    kube: KubeTarget, widgets: Widgets
) -> None:
    group, base = widgets.group, widgets.base
    boom_v2 = {
        "apiVersion": f"{group}/v2",
        "kind": "Widget",
        "metadata": {"name": "boom"},
        "spec": {"boom": True},
    }
    status, _, body = await raw(kube.api_client, "POST", base.format(version="v2"), body=boom_v2)
    assert status == 500, body
    assert body["message"] == (
        f"conversion webhook for {group}/v2, Kind=Widget failed: "
        f"conversion to {group}/v1 failed: cannot convert a boom"
    )
    assert "reason" not in body
    # stored in v1 (no conversion needed), it cannot be read as v2, alone or in a list
    status, _, body = await raw(
        kube.api_client, "POST", base.format(version="v1"), body={**boom_v2, "apiVersion": f"{group}/v1"}
    )
    assert status == 201, body
    expected = (
        f"conversion webhook for {group}/v1, Kind=Widget failed: "
        f"conversion to {group}/v2 failed: cannot convert a boom"
    )
    for path in (base.format(version="v2") + "/boom", base.format(version="v2")):
        status, _, body = await raw(kube.api_client, "GET", path)
        assert status == 500, body
        assert body["message"] == expected
    status, _, body = await raw(kube.api_client, "GET", base.format(version="v1") + "/boom")
    assert status == 200, body
