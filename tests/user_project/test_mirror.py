"""A user's project, as it would be outside this repository: a small controller tested with the test kit.

tests/test_pytest_plugin.py and tests/test_packaging.py copy this folder somewhere else and run it
with pytest (pytest-asyncio ``strict`` and ``auto`` modes), the plugin found through kctl-runtime's
entry point; the repository's own test run does not collect it (root conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from kctl_runtime import CONFIGMAPS, Client, Controller, Manager, NotFound, Request, Result
from kctl_runtime.testing import KubeTarget, eventually, running_manager

pytestmark = pytest.mark.asyncio  # needed in strict mode, harmless in auto mode

SOURCE_LABEL = "example.com/mirror"


class Mirror:
    """Keeps ConfigMap ``<name>-mirror`` equal to each ConfigMap labelled ``example.com/mirror``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def reconcile(self, request: Request) -> Result:
        try:
            source = await self.client.get(CONFIGMAPS, request.name, request.namespace)
        except NotFound:
            return None  # the mirror is owned by it: the garbage collector removes it
        metadata = source["metadata"]
        if SOURCE_LABEL not in (metadata.get("labels") or {}):
            return None
        owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": metadata["name"], "uid": metadata["uid"]}
        mirror: dict[str, Any] = {
            "metadata": {"ownerReferences": [{**owner, "controller": True}]},
            "data": dict(source.get("data") or {}),
        }
        await self.client.patch(
            CONFIGMAPS,
            f"{request.name}-mirror",
            mirror,
            namespace=request.namespace,
            patch_type="apply",
            field_manager="mirror",
            force=True,
        )
        return None


async def test_the_mirror_follows_its_source(kube: KubeTarget) -> None:
    manager = Manager(
        kube.api_client, namespace=kube.namespace, health_bind=None, metrics_bind=None, handle_signals=False
    )
    manager.add(Controller("mirror", for_=CONFIGMAPS, reconciler=Mirror(manager.client)))
    writer = Client(kube.api_client)
    source = {
        "metadata": {"name": "settings", "labels": {SOURCE_LABEL: "yes"}},
        "data": {"colour": "blue"},
    }

    async def mirrored(colour: str) -> bool:
        try:
            mirror = await writer.get(CONFIGMAPS, "settings-mirror", kube.namespace)
        except NotFound:
            return False
        return bool(mirror.get("data") == {"colour": colour})

    async with running_manager(manager):
        await writer.create(CONFIGMAPS, source, namespace=kube.namespace)
        await eventually(lambda: mirrored("blue"), timeout=30, message="the mirror was created")
        await writer.patch(CONFIGMAPS, "settings", {"data": {"colour": "red"}}, namespace=kube.namespace)
        await eventually(lambda: mirrored("red"), timeout=30, message="the mirror followed the change")


async def test_the_fake_backend_hands_out_its_server(fake_kube: KubeTarget) -> None:
    assert fake_kube.is_fake
    assert fake_kube.fake is not None
    created = await Client(fake_kube.api_client).create(
        CONFIGMAPS, {"metadata": {"name": "plain"}}, namespace=fake_kube.namespace
    )
    assert created["metadata"]["namespace"] == fake_kube.namespace
