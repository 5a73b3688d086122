"""API server restart: the fake's stop()/start() and state file, the real kube-apiserver's restart.

The same requests run on both tiers (``kube``): objects survive, a watch from before the restart gets
the 410 a restarted kube-apiserver gives (its watch cache starts at the current revision), and
watches opened after the restart deliver. Fake-only tests pin the state file and the revisions of a
new incarnation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kctl_runtime import _http
from kctl_runtime.client import Client
from kctl_runtime.errors import CALL_FAILURES
from kctl_runtime.resource import CONFIGMAPS, CUSTOMRESOURCEDEFINITIONS, NAMESPACES, Resource
from kctl_runtime.testing.fakeapi import FakeApiServer
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually


def _cm(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


async def _first_watch_line(api: Any, path: str, resource_version: str) -> dict[str, Any]:
    """The first event of a watch from ``resource_version`` (one with a 2 s server timeout)."""
    params = [("watch", "true"), ("resourceVersion", resource_version), ("timeoutSeconds", "5")]
    response = await _http.open_get(api, path, params, _http.ACCEPT_JSON)
    try:
        async for line in _http.iter_lines(response):
            event: dict[str, Any] = _http.loads(line)
            return event
    finally:
        response.close()
    raise AssertionError(f"watch from {resource_version} ended without an event")


GADGETS = Resource("example.com", "v1", "gadgets", "Gadget", namespaced=True)


async def _until_ready(kube: KubeTarget) -> None:
    async def listed() -> bool:
        try:
            await Client(kube.api_client, timeout=5).list(CONFIGMAPS, kube.namespace)
        except CALL_FAILURES:
            return False
        return True

    await eventually(listed, timeout=30, message="the API server answers after the restart")


async def test_a_restarted_api_server_keeps_objects_expires_old_watches_and_delivers_new_ones(
    kube: KubeTarget,
) -> None:
    api = Client(kube.api_client)
    first = await api.create(CONFIGMAPS, _cm("first"), namespace=kube.namespace)
    second = await api.create(CONFIGMAPS, _cm("second"), namespace=kube.namespace)

    await kube.restart_api_server()
    await _until_ready(kube)

    kept = await api.get(CONFIGMAPS, "first", kube.namespace)
    assert kept["data"] == {"v": "1"}
    path = CONFIGMAPS.path(kube.namespace)
    old = await _first_watch_line(kube.api_client, path, first["metadata"]["resourceVersion"])
    assert old["type"] == "ERROR"
    assert old["object"]["code"] == 410
    assert old["object"]["reason"] == "Expired"

    mine = {o["metadata"]["name"] for o in await api.list(CONFIGMAPS, kube.namespace)}
    assert {"first", "second"} <= mine
    assert (await api.get(CONFIGMAPS, "second", kube.namespace))["metadata"] == second["metadata"]
    listing = await _http.open_get(kube.api_client, path, [("limit", "1")], _http.ACCEPT_JSON)
    try:
        now = _http.loads(await listing.read())["metadata"]["resourceVersion"]
    finally:
        listing.release()
    await api.patch(CONFIGMAPS, "first", {"data": {"v": "2"}}, namespace=kube.namespace)
    fresh = await _first_watch_line(kube.api_client, path, now)
    assert fresh["type"] == "MODIFIED"
    assert fresh["object"]["data"] == {"v": "2"}


async def test_the_fake_can_be_stopped_twice_and_restarted_twice() -> None:
    server = FakeApiServer()
    await server.start()
    port, kubeconfig = server.port, server.kubeconfig_path
    for _ in range(2):
        await server.stop()
        await server.stop()
        await server.start()
        assert (server.port, server.kubeconfig_path) == (port, kubeconfig)
        assert kubeconfig.exists()
    api = await server.api_client()
    try:
        namespaces = await Client(api).list(NAMESPACES)
        assert "default" in {n["metadata"]["name"] for n in namespaces}
    finally:
        await api.close()
        await server.stop()
    assert not kubeconfig.exists()


async def test_a_fake_in_a_new_process_keeps_its_objects_through_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "fake-state.json"
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"x": 1}}
    async with FakeApiServer(state_file=state) as first:
        api = await first.api_client()
        try:
            await Client(api).create(CUSTOMRESOURCEDEFINITIONS, crd)
            await first.settled()
            created = await Client(api).create(GADGETS, gadget, namespace="default")
            old_rv = created["metadata"]["resourceVersion"]
        finally:
            await api.close()
    assert state.exists()

    async with FakeApiServer(state_file=state) as second:  # a new incarnation, as in a new process
        api = await second.api_client()
        try:
            got = await Client(api).get(GADGETS, "g1", "default")
            assert got["spec"] == {"x": 1}
            assert int(got["metadata"]["resourceVersion"]) > int(old_rv)
            line = await _first_watch_line(api, "/apis/example.com/v1/namespaces/default/gadgets", old_rv)
            assert (line["type"], line["object"]["code"]) == ("ERROR", 410)
        finally:
            await api.close()


async def test_a_fresh_fake_on_a_known_port_answers_410_to_revisions_it_never_issued() -> None:
    async with FakeApiServer() as first:
        api = await first.api_client()
        try:
            for i in range(5):
                made = await Client(api).create(CONFIGMAPS, _cm(f"c{i}"), namespace="default")
            old_rv = made["metadata"]["resourceVersion"]
        finally:
            await api.close()
        port = first.port
    async with FakeApiServer(port=port) as second:  # same address, empty store
        api = await second.api_client()
        try:
            line = await _first_watch_line(api, "/api/v1/namespaces/default/configmaps", old_rv)
            assert (line["type"], line["object"]["code"]) == ("ERROR", 410)
        finally:
            await api.close()
