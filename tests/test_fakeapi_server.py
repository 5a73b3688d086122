"""FakeApiServer's own surface: lifecycle, kubeconfig, injected clock, seeding, managedFields."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from kctl_runtime.clock import FakeClock
from kctl_runtime.testing import FakeApiServer


async def test_the_server_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeApiServer(host="0.0.0.0")


async def test_a_temporary_kubeconfig_is_written_and_removed_on_exit() -> None:
    async with FakeApiServer() as server:
        path = server.kubeconfig_path
        config = yaml.safe_load(path.read_text())
        assert config["clusters"][0]["cluster"]["server"] == server.url
        assert server.url.startswith("http://127.0.0.1:")
        assert config["current-context"] == "kctl-fake"
    assert not path.exists()


async def test_a_given_kubeconfig_path_is_written_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "kubeconfig"
    async with FakeApiServer(kubeconfig_path=target) as server:
        assert server.kubeconfig_path == target
        assert target.stat().st_mode & 0o077 == 0
    assert target.exists()


async def test_timestamps_come_from_the_injected_clock() -> None:
    clock = FakeClock(wall_start=dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
    async with FakeApiServer(clock=clock) as server:
        api = await server.api_client()
        try:
            core: Any = client.CoreV1Api(api)
            made = await core.create_namespaced_config_map("default", {"metadata": {"name": "t"}})
            assert made.metadata.creation_timestamp == dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
            await clock.advance(90)
            table = await api.call_api(
                "/api/v1/namespaces/default/configmaps/t",
                "GET",
                header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
                _preload_content=False,
            )
            body = await table.json()
            assert body["rows"][0]["cells"][-1] == "90s"
        finally:
            await api.close()


async def test_seeded_objects_are_served_with_resource_versions_and_uids() -> None:
    async with FakeApiServer() as server:
        server.seed(
            "v1", "ConfigMap", [{"metadata": {"name": f"s{i}", "namespace": "default"}} for i in range(3)]
        )
        api = await server.api_client()
        try:
            listed = await client.CoreV1Api(api).list_namespaced_config_map("default", label_selector="")
            seeded = [c for c in listed.items if c.metadata.name.startswith("s")]
            assert [c.metadata.name for c in seeded] == ["s0", "s1", "s2"]
            assert all(c.metadata.uid and c.metadata.resource_version for c in seeded)
        finally:
            await api.close()
    with pytest.raises(LookupError):
        FakeApiServer().seed("v1", "Gizmo", [])


async def test_managed_fields_are_recorded_per_field_manager_unless_disabled() -> None:
    for enabled in (True, False):
        async with FakeApiServer(managed_fields=enabled) as server:
            api = await server.api_client()
            try:
                core: Any = client.CoreV1Api(api)
                made = await core.create_namespaced_config_map(
                    "default", {"metadata": {"name": "m"}, "data": {"a": "b"}}, field_manager="tester"
                )
                managers = [m.manager for m in made.metadata.managed_fields or []]
                assert managers == (["tester"] if enabled else [])
            finally:
                await api.close()


async def test_settled_waits_for_the_background_controllers() -> None:
    async with FakeApiServer() as server:
        api = await server.api_client()
        try:
            core: Any = client.CoreV1Api(api)
            await core.create_namespace({"metadata": {"name": "fresh"}})
            await server.settled()
            accounts = await core.list_namespaced_service_account("fresh")
            assert [a.metadata.name for a in accounts.items] == ["default"]
        finally:
            await api.close()


async def test_without_controllers_nothing_collects_or_publishes_for_a_real_controller_manager() -> None:
    """``controllers=False``: garbage collection and namespace set-up are left to whoever runs them."""
    async with FakeApiServer(controllers=False) as server:
        api = await server.api_client()
        try:
            core: Any = client.CoreV1Api(api)
            await core.create_namespace({"metadata": {"name": "fresh"}})
            owner = await core.create_namespaced_config_map("fresh", {"metadata": {"name": "owner"}})
            ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
            await core.create_namespaced_config_map(
                "fresh", {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
            )
            await core.delete_namespaced_config_map("owner", "fresh")
            await server.settled()
            for _ in range(20):  # give a (wrongly) running collector every chance to act
                await asyncio.sleep(0.01)
            names = [c.metadata.name for c in (await core.list_namespaced_config_map("fresh")).items]
            assert names == ["dependent"]
            assert (await core.list_namespaced_service_account("fresh")).items == []
            await core.delete_namespace("fresh")
            namespace = await core.read_namespace("fresh")
            assert namespace.status.phase == "Terminating"  # no namespace controller empties it
        finally:
            await api.close()


async def test_a_failed_or_dry_run_create_gives_its_node_port_and_cluster_ip_back() -> None:
    """Regression: creates of a NodePort Service that met AlreadyExists (or were dry runs) kept their
    allocated node port, so ~2,800 of them filled 30000-32767 ("range of valid ports is full") --
    the sharded Website controller's creates racing its cache did exactly that."""
    from kctl_runtime.testing.fakeapi.errors import ApiError

    async with FakeApiServer() as server:
        cluster = server.cluster
        rt = cluster.registry.find_kind("v1", "Service")
        assert rt is not None

        def service(name: str) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "NodePort", "ports": [{"port": 80}]},
            }

        first = cluster.create(rt, "default", service("taken"))
        for _ in range(32768 - 30000):
            with pytest.raises(ApiError):
                cluster.create(rt, "default", service("taken"))
            cluster.create(rt, "default", service("dry"), dry_run=True)
        fresh = cluster.create(rt, "default", service("fresh"))
        assert fresh["spec"]["ports"][0]["nodePort"] != first["spec"]["ports"][0]["nodePort"]
        assert fresh["spec"]["clusterIP"] != first["spec"]["clusterIP"]
        # a duplicate that names the existing object's own node port does not free it
        again = service("taken")
        again["spec"]["ports"][0]["nodePort"] = first["spec"]["ports"][0]["nodePort"]
        with pytest.raises(ApiError):
            cluster.create(rt, "default", again)
        assert first["spec"]["ports"][0]["nodePort"] in cluster.defaulter._used_ports
