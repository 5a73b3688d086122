"""Test harness for the User controller: install the CRD, run managers, inspect accounts, clean up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.user_controller.controller import (
    FIELD_MANAGER,
    FINALIZER,
    USERS,
    UserReconciler,
    group_namespace,
    user_controllers,
)
from kctl_runtime.client import Client
from kctl_runtime.config import load_config
from kctl_runtime.controller import Controller
from kctl_runtime.errors import NotFound
from kctl_runtime.leaderelection import LeaderElectionConfig
from kctl_runtime.manager import Manager
from kctl_runtime.reconcile import Request, RequeueAfter
from kctl_runtime.resource import NAMESPACES, Resource
from kctl_runtime.testing.helpers import install_crd as install_crd_and_wait
from kctl_runtime.testing.helpers import running_manager
from kctl_runtime.testing.pytest_plugin import KubeTarget

CRD_PATH = Path(__file__).resolve().parents[1] / "manifests" / "crd.yaml"


async def install_crd(api: Client) -> None:
    """Create the User CRD (once per server) and wait until it is established and served."""
    await install_crd_and_wait(api, CRD_PATH)


@dataclass
class CountingReconciler:
    """Wraps the real User reconciler to count calls."""

    inner: UserReconciler
    calls: list[Request] = field(default_factory=list)

    async def reconcile(self, request: Request) -> RequeueAfter | None:
        self.calls.append(request)
        return await self.inner.reconcile(request)


@dataclass
class Running:
    manager: Manager
    reconciler: CountingReconciler


@contextlib.asynccontextmanager
async def running_controller(
    kube: KubeTarget,
    *,
    resync_seconds: float = 1.0,
    leader_election: LeaderElectionConfig | None = None,
    wait_leading: bool = True,
    kubeconfig: Path | None = None,
    namespace: str | None = None,
) -> AsyncIterator[Running]:
    """A manager running both User controllers for Users in the test's namespace (or ``namespace``).

    ``kubeconfig`` connects as someone else than the test's admin (see ``rbac_tools``).
    """
    api_client = await kube.new_api_client() if kubeconfig is None else await load_config(kubeconfig)
    manager = Manager(
        api_client,
        health_bind="127.0.0.1:0",
        metrics_bind=None,
        leader_election=leader_election,
        handle_signals=False,
        cache_sync_timeout=30,
        graceful_shutdown_timeout=5,
        field_manager=FIELD_MANAGER,
    )
    user, namespaces = user_controllers(
        manager.client,
        api_client,
        manager.event_recorder("user-controller"),
        namespace=namespace or kube.namespace,
        resync_seconds=resync_seconds,
    )
    assert isinstance(user.reconciler, UserReconciler)
    counting = CountingReconciler(user.reconciler)
    manager.add(
        Controller(
            user.name,
            for_=user.for_,
            reconciler=counting,
            watches=user.watches,
            predicates=user.predicates,
        )
    )
    manager.add(namespaces)
    try:
        async with running_manager(manager, wait_leading=leader_election is None or wait_leading):
            yield Running(manager, counting)
    finally:
        if kubeconfig is not None:
            await api_client.close()


def user(name: str, namespace: str, group: str, email: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": USERS.api_version,
        "kind": USERS.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"email": email or f"{name}@kiamol.net", "group": group},
    }


async def get_or_none(
    api: Client, resource: Resource, name: str, namespace: str | None
) -> dict[str, Any] | None:
    try:
        return await api.get(resource, name, namespace)
    except NotFound:
        return None


async def namespace_gone(api: Client, group: str) -> bool:
    """The group namespace is deleted (or terminating: the real namespace controller takes a moment)."""
    ns = await get_or_none(api, NAMESPACES, group_namespace(group), None)
    assert ns is None or ns["metadata"].get("deletionTimestamp"), f"{group_namespace(group)} still there"
    return True


async def cleanup(api: Client, namespace: str, groups: list[str]) -> None:
    """After a test: release Users from our finalizer and delete the group namespaces it made."""
    for item in await api.list(USERS, namespace=namespace):
        if FINALIZER in (item["metadata"].get("finalizers") or []):
            with contextlib.suppress(NotFound):
                await api.patch(
                    USERS, item["metadata"]["name"], {"metadata": {"finalizers": None}}, namespace=namespace
                )
    for group in groups:
        await api.delete(NAMESPACES, group_namespace(group), ignore_not_found=True)
