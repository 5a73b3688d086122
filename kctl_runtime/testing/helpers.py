"""Helpers for testing controllers: poll until a condition holds; unique names; install a CRD and
wait until it is served; run a manager for the duration of a block.

Contract
--------
* :func:`eventually` awaits a check until it returns a truthy value without raising
  ``AssertionError`` (the one polling loop of the test kit); after ``timeout`` seconds it raises
  ``AssertionError`` with ``message`` and the last assertion's text.
* :func:`unique_name` gives a DNS-1123 name no other test of the session uses (the real tier is
  shared by a whole session, so cluster-scoped objects need them).
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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import yaml

from kctl_runtime.client import Client
from kctl_runtime.errors import AlreadyExists, NotFound, TooManyRequests
from kctl_runtime.manager import Manager
from kctl_runtime.resource import CUSTOMRESOURCEDEFINITIONS, Resource

__all__ = ["crd_resource", "eventually", "install_crd", "running_manager", "unique_name"]

T = TypeVar("T")


def unique_name(prefix: str = "t") -> str:
    """A DNS-1123 name that no other test in this session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Await ``check()`` until it returns without raising ``AssertionError`` and returns a truthy value.

    Real control planes act asynchronously (garbage collection, namespace deletion); the fake often
    acts at once. Tests that must pass on both poll with this.
    """
    last: BaseException | None = None
    with anyio.move_on_after(timeout):
        while True:
            try:
                result = await check()
            except AssertionError as exc:
                last = exc
            else:
                if result:
                    return result
            await anyio.sleep(interval)
    raise AssertionError(f"{message} within {timeout}s" + (f": {last}" if last else ""))


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
    """:func:`eventually`, raising ``TimeoutError`` (these helpers' contract), not ``AssertionError``."""
    try:
        await eventually(check, timeout=timeout, message=what)
    except AssertionError as exc:
        raise TimeoutError(str(exc)) from None


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
