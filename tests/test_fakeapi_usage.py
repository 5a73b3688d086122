"""The usage examples of docs/testing/fake-api-server.md, run as tests (the doc includes them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime.testing import FakeApiServer
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually


# --8<-- [start:standalone]
async def test_doc_snippet_standalone_server_speaks_the_real_api() -> None:
    async with FakeApiServer() as server:
        api = await server.api_client()
        try:
            core: Any = client.CoreV1Api(api)
            made = await core.create_namespaced_config_map(
                "default", {"metadata": {"name": "settings"}, "data": {"color": "blue"}}
            )
            assert made.metadata.resource_version.isdigit()

            # Stale writes conflict, exactly like kube-apiserver.
            await core.patch_namespaced_config_map("settings", "default", {"data": {"color": "red"}})
            made.data = {"color": "green"}
            with pytest.raises(ApiException) as conflict:
                await core.replace_namespaced_config_map("settings", "default", made)
            assert conflict.value.status == 409
        finally:
            await api.close()


# --8<-- [end:standalone]


# --8<-- [start:fixture]
async def test_doc_snippet_the_kube_fixture_runs_on_fake_and_real(kube: KubeTarget) -> None:
    core: Any = client.CoreV1Api(kube.api_client)
    owner = await core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "owner"}})
    child = {
        "metadata": {
            "name": "child",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
            ],
        }
    }
    await core.create_namespaced_config_map(kube.namespace, child)
    await core.delete_namespaced_config_map("owner", kube.namespace)

    async def child_collected() -> bool:
        try:
            await core.read_namespaced_config_map("child", kube.namespace)
        except ApiException as exc:
            return exc.status == 404
        raise AssertionError("the dependent still exists")  # eventually() retries on AssertionError

    # Garbage collection is asynchronous on a real cluster: poll, don't assume.
    await eventually(child_collected, message="dependent garbage-collected")


# --8<-- [end:fixture]


# --8<-- [start:faults]
@pytest.mark.fake_only
async def test_doc_snippet_fault_injection(fake_kube: KubeTarget) -> None:
    assert fake_kube.fake is not None
    faults = fake_kube.fake.faults
    core: Any = client.CoreV1Api(fake_kube.api_client)

    faults.fail_next(1, status=429, verb="list", resource="configmaps", retry_after=2)
    with pytest.raises(ApiException) as throttled:
        await core.list_namespaced_config_map(fake_kube.namespace)
    assert throttled.value.status == 429
    assert throttled.value.headers is not None
    assert throttled.value.headers["Retry-After"] == "2"

    # A watch that the server ends: clients see the stream close and must re-watch.
    stream = watch.Watch()
    events = stream.stream(core.list_namespaced_config_map, fake_kube.namespace, timeout_seconds=30)
    first = await anext(events)  # kube-root-ca.crt, published into every namespace
    assert first["type"] == "ADDED"
    faults.close_watches()
    with pytest.raises(StopAsyncIteration):
        await anext(events)
    await stream.close()


# --8<-- [end:faults]


@pytest.mark.fake_only
async def test_the_cli_serves_until_sigterm_and_writes_a_usable_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    command = [sys.executable, "-m", "kctl_runtime.testing.fakeapi", "--kubeconfig", str(kubeconfig)]
    async with await anyio.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ}
    ) as process:
        try:
            with anyio.fail_after(20):
                while not kubeconfig.exists():
                    assert process.returncode is None, "the CLI exited before writing its kubeconfig"
                    await anyio.sleep(0.05)
            configuration = client.Configuration()
            await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
            assert str(configuration.host).startswith("http://127.0.0.1:")
            async with client.ApiClient(configuration) as api:
                namespaces = await client.CoreV1Api(api).list_namespace()
            assert "kube-system" in [n.metadata.name for n in namespaces.items]
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                code = await process.wait()
    assert code == 0
