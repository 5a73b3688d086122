"""Client request metrics with client-go's names and labels, and no ``*_created`` series."""

from __future__ import annotations

import anyio
import pytest
from prometheus_client import generate_latest

from kctl_runtime._rest import request_json
from kctl_runtime.client import Client
from kctl_runtime.errors import NotFound
from kctl_runtime.informer import Informer
from kctl_runtime.metrics import REGISTRY, REST_CLIENT_REQUEST_DURATION, api_host, sample_value
from kctl_runtime.resource import CONFIGMAPS
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually
from kctl_runtime.watcher import WatcherConfig


def host_of(kube: KubeTarget) -> str:
    return api_host(str(kube.api_client.configuration.host))


def requests(code: str, method: str, host: str) -> float:
    return sample_value("rest_client_requests_total", {"code": code, "method": method, "host": host}) or 0.0


def latencies(verb: str, host: str) -> float:
    return sample_value("rest_client_request_duration_seconds_count", {"verb": verb, "host": host}) or 0.0


def test_the_host_label_is_the_api_servers_host_and_port() -> None:
    assert api_host("https://127.0.0.1:6443") == "127.0.0.1:6443"
    assert api_host("https://kubernetes.default.svc") == "kubernetes.default.svc"


async def test_every_request_is_counted_by_status_method_and_host(kube: KubeTarget) -> None:
    host = host_of(kube)
    client = Client(kube.api_client)
    before = {
        "post": requests("201", "POST", host),
        "get": requests("200", "GET", host),
        "missing": requests("404", "GET", host),
        "get_latency": latencies("GET", host),
        "post_latency": latencies("POST", host),
    }
    await client.create(CONFIGMAPS, {"metadata": {"name": "counted", "namespace": kube.namespace}})
    await client.get(CONFIGMAPS, "counted", kube.namespace)
    with pytest.raises(NotFound):
        await client.get(CONFIGMAPS, "absent", kube.namespace)
    assert requests("201", "POST", host) == before["post"] + 1
    assert requests("200", "GET", host) == before["get"] + 1
    assert requests("404", "GET", host) == before["missing"] + 1
    assert latencies("GET", host) == before["get_latency"] + 2
    assert latencies("POST", host) == before["post_latency"] + 1
    text = generate_latest(REGISTRY).decode()
    assert f'rest_client_requests_total{{code="201",host="{host}",method="POST"}}' in text
    buckets = [
        sample.labels["le"]
        for metric in REST_CLIENT_REQUEST_DURATION.collect()
        for sample in metric.samples
        if sample.name.endswith("_bucket")
        and sample.labels["host"] == host
        and sample.labels["verb"] == "GET"
    ]
    client_go = ["0.005", "0.025", "0.1", "0.25", "0.5", "1.0", "2.0", "4.0", "8.0", "15.0", "30.0", "60.0"]
    assert buckets == [*client_go, "+Inf"]


async def test_list_and_watch_requests_of_an_informer_are_counted(kube: KubeTarget) -> None:
    host = host_of(kube)
    before = requests("200", "GET", host)
    informer = Informer(kube.api_client, CONFIGMAPS, config=WatcherConfig(namespace=kube.namespace))
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        with anyio.fail_after(20):
            await informer.wait_synced()

        async def watched() -> bool:
            return requests("200", "GET", host) >= before + 2  # the list, then the watch

        await eventually(watched, timeout=20, message="list and watch counted")
        tg.cancel_scope.cancel()


@pytest.mark.fake_only
async def test_a_request_that_fails_in_transport_is_counted_as_error(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    host = host_of(fake_kube)
    before = requests("<error>", "GET", host)
    fake_kube.fake.faults.delay(seconds=2.0, verb="get", resource="configmaps", count=1)
    with pytest.raises(TimeoutError):
        await request_json(
            fake_kube.api_client, "GET", CONFIGMAPS.path(fake_kube.namespace, "slow"), timeout=0.1
        )
    assert requests("<error>", "GET", host) == before + 1


def test_no_created_series_are_exported() -> None:
    text = generate_latest(REGISTRY).decode()
    assert "rest_client_requests_total" in text
    assert "_created" not in text
