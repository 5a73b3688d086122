"""The code shown in docs/controllers.md and docs/manager.md, run against the API servers.

The section between the ``--8<--`` markers is included verbatim in the docs (pymdownx.snippets).
"""

from __future__ import annotations

# --8<-- [start:reconciler]
from typing import Any

from kctl_runtime.client import Client
from kctl_runtime.controller import Controller
from kctl_runtime.errors import NotFound
from kctl_runtime.manager import Manager
from kctl_runtime.predicates import generation_changed
from kctl_runtime.reconcile import Request, Result, TerminalError
from kctl_runtime.resource import CONFIGMAPS, DEPLOYMENTS

FIELD_MANAGER = "deployment-info"


class DeploymentInfo:
    """Keeps a ConfigMap `<deployment>-info` listing each Deployment's images."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def reconcile(self, request: Request) -> Result:
        try:
            deployment = await self.client.get(DEPLOYMENTS, request.name, request.namespace)
        except NotFound:
            return None  # gone: the garbage collector deletes the ConfigMap it owned
        containers = deployment["spec"]["template"]["spec"].get("containers") or []
        if not containers:
            raise TerminalError("a Deployment without containers cannot be described")
        info = {
            "metadata": {
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment["metadata"]["name"],
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "data": {"images": ",".join(c["image"] for c in containers)},
        }
        # Server-side apply: idempotent, and it undoes anybody's edits to the fields we own.
        await self.client.patch(
            CONFIGMAPS,
            f"{request.name}-info",
            info,
            namespace=request.namespace,
            patch_type="apply",
            field_manager=FIELD_MANAGER,
            force=True,
        )
        return None


def build_manager(api_client: Any, **options: Any) -> Manager:
    manager = Manager(api_client, **options)
    manager.add(
        Controller(
            "deployment-info",
            for_=DEPLOYMENTS,
            owns=[CONFIGMAPS],  # edits to an owned ConfigMap reconcile its Deployment
            predicates=[generation_changed()],  # ignore Deployment status-only updates
            reconciler=DeploymentInfo(manager.client),
            max_concurrent_reconciles=4,
        )
    )
    return manager


# --8<-- [end:reconciler]

import anyio  # noqa: E402 - test-only imports follow the snippet

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually  # noqa: E402


def deployment(name: str, namespace: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


async def test_doc_snippet_deployment_info_controller_converges_and_repairs_drift(kube: KubeTarget) -> None:
    ns = kube.namespace
    writer = Client(kube.api_client)
    manager = build_manager(
        kube.api_client,
        namespace=ns,
        health_bind="127.0.0.1:0",
        metrics_bind="127.0.0.1:0",
        handle_signals=False,
        freeze_gc=False,
    )
    await writer.create(DEPLOYMENTS, deployment("web", ns, "nginx:1.27"))

    async def info_images() -> str:
        try:
            return str((await writer.get(CONFIGMAPS, "web-info", ns))["data"]["images"])
        except NotFound:
            return ""

    async def images_are(expected: str) -> bool:
        return await info_images() == expected

    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: images_are("nginx:1.27"), message="info ConfigMap created")

        # a spec change is reconciled
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}}
        await writer.patch(DEPLOYMENTS, "web", patch, namespace=ns, patch_type="strategic")
        await eventually(lambda: images_are("nginx:1.28"), message="image change reconciled")

        # drift in the owned ConfigMap is repaired (the owner is reconciled)
        await writer.patch(CONFIGMAPS, "web-info", {"data": {"images": "tampered"}}, namespace=ns)
        await eventually(lambda: images_are("nginx:1.28"), message="drift repaired")

        manager.stop()
    assert await info_images() == "nginx:1.28"
