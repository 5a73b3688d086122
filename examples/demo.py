"""``python -m examples.demo`` (``make demo``): the Website controller, start to finish, in one process.

Contract
--------
The demo starts the embedded fake API server (:class:`kctl_runtime.testing.FakeApiServer`),
installs the Website CRD, runs the Website controller in a :class:`~kctl_runtime.manager.Manager`
in the same process, and prints a transcript to stdout of what a user would see with kubectl:

1. a Website is applied; the controller creates its Deployment and Service (printed: containers
   and images, Service type, port and nodePort) and reports status (conditions, address);
2. the Deployment reports an available replica (the demo plays the Deployment controller: nothing
   runs pods here), and the Website turns Ready; the Events recorded for the Website are listed;
3. the Website's branch is edited: the Deployment follows;
4. the Service is deleted by hand: the controller recreates it;
5. the Website is deleted: the garbage collector removes both children.

It needs no cluster, no network and no Docker, finishes in a few seconds and exits 0. Every wait is
bounded: if a step does not converge within ``--step-timeout`` seconds (default 10) the demo prints
which step and what it was waiting for, and exits 1. ``--verbose`` also shows the controller's logs
(on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import yaml

from examples.website_controller.controller import FIELD_MANAGER, WEBSITES, website_controller
from kctl_runtime.client import Client
from kctl_runtime.errors import AlreadyExists, NotFound
from kctl_runtime.logging import configure_logging
from kctl_runtime.manager import Manager
from kctl_runtime.resource import CORE_EVENTS, DEPLOYMENTS, NAMESPACES, SERVICES, Resource
from kctl_runtime.testing.fakeapi import FakeApiServer
from kctl_runtime.testing.helpers import install_crd, running_manager

T = TypeVar("T")
NAMESPACE = "demo"
WEBSITE = "kubia"
CHILD = f"{WEBSITE}-website"
CRD_FILE = Path(__file__).resolve().parent / "website_controller" / "manifests" / "crd.yaml"


class DemoTimeout(Exception):
    """A step did not converge in time."""


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, title: str) -> None:
    say()
    say(f"== {number}. {title}")


async def wait_for(what: str, check: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    """Poll ``check`` until it returns something; :class:`DemoTimeout` naming ``what`` otherwise."""
    with anyio.move_on_after(timeout):
        while True:
            result = await check()
            if result is not None:
                return result
            await anyio.sleep(0.05)
    raise DemoTimeout(f"timed out after {timeout:g}s waiting for {what}")


async def get(
    api: Client, resource: Resource, name: str, namespace: str | None = NAMESPACE
) -> dict[str, Any] | None:
    try:
        return await api.get(resource, name, namespace)
    except NotFound:
        return None


def describe_deployment(deployment: dict[str, Any]) -> None:
    spec = deployment["spec"]
    say(f"   Deployment {deployment['metadata']['name']}: replicas={spec['replicas']}")
    for container in spec["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        extra = f"  repo={env['GITSYNC_REPO']} ref={env['GITSYNC_REF']}" if "GITSYNC_REPO" in env else ""
        say(f"     - container {container['name']:<9} image={container['image']}{extra}")
    owner = deployment["metadata"]["ownerReferences"][0]
    say(f"     owned by {owner['kind']}/{owner['name']} (controller={owner['controller']})")


def describe_service(service: dict[str, Any]) -> None:
    spec = service["spec"]
    ports = ", ".join(f"{p['port']}->{p['targetPort']} nodePort={p.get('nodePort')}" for p in spec["ports"])
    name = service["metadata"]["name"]
    say(f"   Service {name}: type={spec['type']} clusterIP={spec.get('clusterIP')} {ports}")


def describe_status(website: dict[str, Any]) -> None:
    status = website.get("status") or {}
    say(
        f"   status: url={status.get('url')} nodePort={status.get('nodePort')} "
        f"observedGeneration={status.get('observedGeneration')}"
    )
    for condition in status.get("conditions") or []:
        say(
            f"     condition {condition['type']}={condition['status']} reason={condition['reason']}: "
            f"{condition.get('message', '')}"
        )


async def events(api: Client) -> list[tuple[str, str, str, int]]:
    """(type, reason, message, count) of the Events about the Website, oldest first."""
    found: list[tuple[str, str, str, int, str]] = []
    for e in await api.list(CORE_EVENTS, namespace=NAMESPACE):
        if (e.get("involvedObject") or {}).get("name") == WEBSITE:
            first = str(e.get("firstTimestamp") or "")
            found.append(
                (
                    e.get("type", ""),
                    e.get("reason", ""),
                    e.get("message", ""),
                    int(e.get("count") or 1),
                    first,
                )
            )
    found.sort(key=lambda item: item[4])
    return [item[:4] for item in found]


async def show_events(api: Client) -> None:
    say("   events for website/kubia (kubectl get events):")
    for kind, reason, message, count in await events(api):
        say(f"     {kind:<7} {reason:<10} x{count}  {message}")


async def ready_condition(api: Client) -> dict[str, Any] | None:
    website = await get(api, WEBSITES, WEBSITE)
    for condition in ((website or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return dict(condition)
    return None


async def run_demo(api_client: Any, timeout: float) -> None:
    api = Client(api_client)

    step(1, "install the CRD (examples/website_controller/manifests/crd.yaml) and apply a Website")
    crd = yaml.safe_load(CRD_FILE.read_text())
    try:
        await install_crd(api, crd, timeout=timeout)
    except TimeoutError as exc:
        raise DemoTimeout(f"timed out after {timeout:g}s waiting for the CRD to be served") from exc
    say(f"   customresourcedefinition {crd['metadata']['name']} created")
    await api.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})

    manager = Manager(
        api_client,
        namespace=NAMESPACE,
        health_bind=None,
        metrics_bind=None,
        handle_signals=False,
        field_manager=FIELD_MANAGER,
    )
    manager.add(website_controller(manager.client, manager.event_recorder("website-controller")))
    async with running_manager(manager, wait_leading=False):  # the demo waits itself, with DemoTimeout
        await scenario(api, manager, timeout)


async def scenario(api: Client, manager: Manager, timeout: float) -> None:
    async def leading() -> bool | None:
        return True if manager.is_leader else None

    await wait_for("the manager to start its controllers", leading, timeout)
    website = {
        "apiVersion": WEBSITES.api_version,
        "kind": WEBSITES.kind,
        "metadata": {"name": WEBSITE, "namespace": NAMESPACE},
        "spec": {"gitRepo": "https://github.com/luksa/kubia-website-example.git"},
    }
    say("   applied:")
    for line in yaml.safe_dump(website, sort_keys=False).splitlines():
        say(f"     {line}")
    await api.create(WEBSITES, website)

    async def children() -> tuple[dict[str, Any], dict[str, Any]] | None:
        deployment = await get(api, DEPLOYMENTS, CHILD)
        service = await get(api, SERVICES, CHILD)
        return (deployment, service) if deployment and service else None

    deployment, service = await wait_for("the Deployment and the Service", children, timeout)
    say("   the controller created:")
    describe_deployment(deployment)
    describe_service(service)

    async def progressing() -> dict[str, Any] | None:
        condition = await ready_condition(api)
        website = await get(api, WEBSITES, WEBSITE)
        return website if condition and (website or {}).get("status", {}).get("url") else None

    describe_status(await wait_for("the Website's status", progressing, timeout))

    step(2, "the Deployment reports 1 available replica (played by the demo: nothing runs pods here)")
    generation = deployment["metadata"].get("generation", 1)
    await api.patch(
        DEPLOYMENTS,
        CHILD,
        {
            "status": {
                "observedGeneration": generation,
                "replicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
            }
        },
        namespace=NAMESPACE,
        subresource="status",
    )

    async def ready() -> dict[str, Any] | None:
        condition = await ready_condition(api)
        return await get(api, WEBSITES, WEBSITE) if condition and condition["status"] == "True" else None

    describe_status(await wait_for("Ready=True", ready, timeout))
    await show_events(api)

    step(3, "edit the Website: spec.branch main -> gh-pages")
    await api.patch(WEBSITES, WEBSITE, {"spec": {"branch": "gh-pages"}}, namespace=NAMESPACE)

    async def followed() -> dict[str, Any] | None:
        current = await get(api, DEPLOYMENTS, CHILD)
        containers = (current or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        refs = [e.get("value") for c in containers for e in c.get("env") or [] if e["name"] == "GITSYNC_REF"]
        return current if refs == ["gh-pages"] else None

    describe_deployment(await wait_for("the Deployment to follow the branch", followed, timeout))

    step(4, "delete the Service by hand (drift)")
    old_uid = service["metadata"]["uid"]
    await api.delete(SERVICES, CHILD, namespace=NAMESPACE)
    say(f"   service {CHILD} deleted (uid {old_uid[:8]}...)")

    async def recreated() -> dict[str, Any] | None:
        current = await get(api, SERVICES, CHILD)
        return current if current and current["metadata"]["uid"] != old_uid else None

    fresh = await wait_for("the Service to be recreated", recreated, timeout)
    say(f"   recreated by the controller (uid {fresh['metadata']['uid'][:8]}...):")
    describe_service(fresh)

    async def recorded() -> bool | None:
        wanted = f"created Service {CHILD}"
        return True if any(message == wanted for _, _, message, _ in await events(api)) else None

    await wait_for("the Created event of the recreated Service", recorded, timeout)
    await show_events(api)

    step(5, "delete the Website: the garbage collector removes what it owned")
    await api.delete(WEBSITES, WEBSITE, namespace=NAMESPACE)

    async def collected() -> bool | None:
        left = [r.kind for r in (DEPLOYMENTS, SERVICES) if await get(api, r, CHILD) is not None]
        return None if left else True

    await wait_for("garbage collection of the Deployment and the Service", collected, timeout)
    say(f"   website {WEBSITE} deleted; deployment {CHILD} and service {CHILD} are gone")


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--step-timeout", type=float, default=10.0, help="seconds each step may take")
    parser.add_argument("--verbose", action="store_true", help="show the controller's logs on stderr")
    args = parser.parse_args(argv)
    configure_logging(format="console", level="info" if args.verbose else "error")
    say("kctl-runtime demo: the Website controller against the embedded fake API server")
    async with FakeApiServer() as server:
        api_client = await server.api_client()
        try:
            with anyio.fail_after(args.step_timeout * 8):
                await run_demo(api_client, args.step_timeout)
        except DemoTimeout as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            return 1
        except TimeoutError:
            print(f"demo failed: it did not finish within {args.step_timeout * 8:g}s", file=sys.stderr)
            return 1
        except AlreadyExists as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            return 1
        finally:
            await api_client.close()
    say()
    say("done: created, reported, repaired and garbage-collected -- all level-based, no cluster needed.")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
