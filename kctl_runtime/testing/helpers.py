"""Helpers for testing controllers: install a CRD and wait until it is served; run a manager for
the duration of a block.

Contract
--------
* :func:`install_crd` creates a CustomResourceDefinition (one that exists already is fine: the
  real tier is shared by a whole test session), waits until its ``Established`` condition is true
  *and* its resource answers a list (a real kube-apiserver answers 404 or 429 "storage is
  (re)initializing" for a moment after ``Established``), and returns the
  :class:`~kctl_runtime.resource.Resource` of its storage version. It raises ``TimeoutError`` naming
  the CRD when that does not happen within ``timeout`` seconds.
* :func:`running_manager` runs :meth:`Manager.run <kctl_runtime.manager.Manager.run>` in a task
  group for the duration of an ``async with`` block. On entry it waits (up to ``timeout``) until the
  manager's caches have synced and it runs its controllers (it leads, when leader election is
  configured) unless ``wait_leading=False``; on exit it stops the manager gracefully and waits for
  :meth:`~kctl_runtime.manager.Manager.run` to return. An error inside the manager propagates out of
  the block.

Neither needs pytest: they work in any asyncio program (the demo uses them too).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import yaml

from kctl_runtime.client import Client
from kctl_runtime.errors import AlreadyExists, NotFound, TooManyRequests
from kctl_runtime.manager import Manager
from kctl_runtime.resource import CUSTOMRESOURCEDEFINITIONS, Resource

__all__ = ["crd_resource", "install_crd", "running_manager"]


def crd_resource(crd: Mapping[str, Any]) -> Resource:
    """The :class:`Resource` a CustomResourceDefinition serves, at its storage version."""
    spec = crd["spec"]
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), None) or versions[0]["name"]
    names = spec["names"]
    return Resource(
        spec["group"], storage, names["plural"], names["kind"], namespaced=spec.get("scope") == "Namespaced"
    )


async def _poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    with anyio.move_on_after(timeout):
        while True:  # the server has no event to wait on: poll it
            if await check():
                return
            await anyio.sleep(0.05)
    raise TimeoutError(f"{what} within {timeout}s")


async def install_crd(
    client: Client, crd: Mapping[str, Any] | str | Path, *, timeout: float = 30.0
) -> Resource:
    """Create ``crd`` (a manifest dict, or a YAML file path) and wait until it is served (module doc)."""
    if isinstance(crd, str | Path):
        manifest: Mapping[str, Any] = yaml.safe_load(await anyio.Path(crd).read_text())
    else:
        manifest = crd
    name = manifest["metadata"]["name"]
    resource = crd_resource(manifest)
    with contextlib.suppress(AlreadyExists):
        await client.create(CUSTOMRESOURCEDEFINITIONS, dict(manifest))

    async def served() -> bool:
        current = await client.get(CUSTOMRESOURCEDEFINITIONS, name)
        conditions = (current.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return False
        try:
            await client.list(resource, namespace="default" if resource.namespaced else None)
        except (NotFound, TooManyRequests):
            return False
        return True

    await _poll(served, timeout, f"CustomResourceDefinition {name} established and served")
    return resource


@contextlib.asynccontextmanager
async def running_manager(
    manager: Manager, *, wait_leading: bool = True, timeout: float = 30.0
) -> AsyncIterator[Manager]:
    """Run ``manager`` for the duration of the block (module doc)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        try:
            if wait_leading:

                async def running_controllers() -> bool:
                    return manager.ready and manager.is_leader

                await _poll(running_controllers, timeout, "manager synced and running its controllers")
            yield manager
        finally:
            manager.stop()
