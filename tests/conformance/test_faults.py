"""Fault injection of the fake API server: failures with real Status bodies, delays, dropped
watches. Fake only: a real kube-apiserver cannot be told to misbehave."""

from __future__ import annotations

import time

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._support import apps_api, configmap, core_api, raw, status_of

pytestmark = pytest.mark.fake_only


async def test_fail_next_fails_exactly_n_matching_requests_with_a_status(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    core = core_api(fake_kube.api_client)
    fake_kube.fake.faults.fail_next(2, status=503, verb="list", resource="configmaps")
    await core.read_namespace(fake_kube.namespace)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            await core.list_namespaced_config_map(fake_kube.namespace)
        status = status_of(caught.value)
        assert caught.value.status == 503
        assert status["kind"] == "Status"
        assert status["reason"] == "ServiceUnavailable"
        assert status["code"] == 503
    await core.list_namespaced_config_map(fake_kube.namespace)


async def test_a_429_carries_retry_after_in_header_and_details(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    fake_kube.fake.faults.fail_next(status=429, verb="create", retry_after=7, message="slow down")
    with pytest.raises(ApiException) as caught:
        await core_api(fake_kube.api_client).create_namespaced_config_map(fake_kube.namespace, configmap("x"))
    status = status_of(caught.value)
    assert caught.value.status == 429
    assert caught.value.headers is not None
    assert caught.value.headers["Retry-After"] == "7"
    assert status["reason"] == "TooManyRequests"
    assert status["message"] == "slow down"
    assert status["details"] == {"retryAfterSeconds": 7}


async def test_faults_match_on_the_path_regex(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    core = core_api(fake_kube.api_client)
    await core.create_namespaced_config_map(fake_kube.namespace, configmap("target"))
    await core.create_namespaced_config_map(fake_kube.namespace, configmap("bystander"))
    fake_kube.fake.faults.fail_next(status=500, path_regex=r"/configmaps/target$")
    await core.read_namespaced_config_map("bystander", fake_kube.namespace)
    with pytest.raises(ApiException) as caught:
        await core.read_namespaced_config_map("target", fake_kube.namespace)
    assert status_of(caught.value)["reason"] == "InternalError"


async def test_faults_can_target_a_subresource(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    apps = apps_api(fake_kube.api_client)
    from ._support import deployment

    await apps.create_namespaced_deployment(fake_kube.namespace, deployment("d"))
    fake_kube.fake.faults.fail_next(status=409, resource="deployments/status")
    await apps.patch_namespaced_deployment("d", fake_kube.namespace, {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment_status("d", fake_kube.namespace, {"status": {"replicas": 1}})
    assert caught.value.status == 409


async def test_a_failed_write_changes_nothing(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    core = core_api(fake_kube.api_client)
    fake_kube.fake.faults.fail_next(status=500, verb="create")
    with pytest.raises(ApiException):
        await core.create_namespaced_config_map(fake_kube.namespace, configmap("never"))
    status, _, _ = await raw(
        fake_kube.api_client, "GET", f"/api/v1/namespaces/{fake_kube.namespace}/configmaps/never"
    )
    assert status == 404


async def test_delay_holds_matching_requests(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    core = core_api(fake_kube.api_client)
    fake_kube.fake.faults.delay(0.3, verb="get", resource="namespaces", count=1)
    started = time.monotonic()
    await core.read_namespace(fake_kube.namespace)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await core.read_namespace(fake_kube.namespace)
    assert time.monotonic() - started < 0.3


async def test_clear_removes_pending_faults(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    fake_kube.fake.faults.fail_next(5, status=500)
    fake_kube.fake.faults.delay(5.0)
    fake_kube.fake.faults.clear()
    await core_api(fake_kube.api_client).read_namespace(fake_kube.namespace)


async def test_unknown_verbs_and_bad_codes_are_rejected_at_once(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    with pytest.raises(ValueError, match="unknown verb"):
        fake_kube.fake.faults.fail_next(verb="fetch")
    with pytest.raises(ValueError, match="HTTP error code"):
        fake_kube.fake.faults.fail_next(status=200)
