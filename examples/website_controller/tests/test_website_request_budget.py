"""Regression guard (issue 15): how many API requests the Website controller sends per reconcile.

The controller runs against the fake API server through a counting HTTP proxy (real HTTP, the real
client; nothing is patched), so every request it sends -- reads that missed the cache, writes,
events -- is seen. In steady state a reconcile must send nothing: reads come from the cache, and a
child that already matches is not applied again. A spec change costs one Deployment apply, at most
two status writes and one event. Not timed.
"""

from __future__ import annotations

import collections
from pathlib import Path

import anyio
import yaml

from examples.website_controller.controller import WEBSITES, child_name
from examples.website_controller.tests.harness import install_crd, running_controller, website
from kctl_runtime.client import Client
from kctl_runtime.resource import DEPLOYMENTS, SERVICES
from kctl_runtime.testing.proxy import CountingProxy, proxied_kubeconfig, request_kind
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually


async def test_steady_state_reconciles_send_no_requests_and_a_spec_change_costs_one_apply(
    fake_kube: KubeTarget, tmp_path: Path
) -> None:
    kube = fake_kube
    api = Client(kube.api_client)
    await install_crd(api)
    names = [f"budget-{i}" for i in range(3)]
    for name in names:
        await api.create(WEBSITES, website(name, kube.namespace), namespace=kube.namespace)
    upstream = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    async with CountingProxy(upstream).running() as proxy:
        kubeconfig = proxied_kubeconfig(kube.kubeconfig, proxy.url, tmp_path)
        async with running_controller(kube, kubeconfig=kubeconfig) as running:

            async def converged() -> bool:
                for name in names:
                    current = await api.get(WEBSITES, name, kube.namespace)
                    if (current.get("status") or {}).get("observedGeneration") != 1:
                        return False
                return True

            await eventually(converged, message="Websites converged")

            async def quiet() -> bool:
                before = (len(running.reconciler.calls), len(proxy.requests))
                await anyio.sleep(1.0)
                return before == (len(running.reconciler.calls), len(proxy.requests))

            await eventually(quiet, timeout=30, message="controller quiet")

            # steady state: someone else edits a field we do not manage on each child; each edit
            # reconciles the Website, which must find everything in place and send nothing
            proxy.requests.clear()
            calls = len(running.reconciler.calls)
            for name in names:
                for resource in (DEPLOYMENTS, SERVICES):
                    await api.patch(
                        resource,
                        child_name(name),
                        {"metadata": {"labels": {"touched-by": "someone-else"}}},
                        namespace=kube.namespace,
                    )

            async def reconciled_all() -> bool:
                return len(running.reconciler.calls) - calls >= 2 * len(names)

            await eventually(reconciled_all, message="a reconcile per edited child")
            await eventually(quiet, timeout=30, message="controller quiet")
            assert proxy.sent() == [], "steady-state reconciles sent requests"

            # a spec change: one Deployment apply, at most two status writes, at most one event
            proxy.requests.clear()
            await api.patch(
                WEBSITES,
                names[0],
                {"spec": {"gitRepo": "https://example.com/other/site.git"}},
                namespace=kube.namespace,
            )

            async def rolled() -> bool:
                deployment = await api.get(DEPLOYMENTS, child_name(names[0]), kube.namespace)
                return "other/site.git" in str(deployment["spec"]["template"])

            await eventually(rolled, message="spec change rolled out")
            await eventually(quiet, timeout=30, message="controller quiet")
            sent = proxy.sent()
            kinds = collections.Counter(request_kind(method, path) for method, path in sent)
            assert kinds[("PATCH", "deployments")] == 1, sent
            assert kinds[("PATCH", "status")] <= 2, sent
            assert kinds[("POST", "events")] + kinds[("PATCH", "events")] <= 1, sent
            assert (
                sum(kinds.values())
                - kinds[("PATCH", "deployments")]
                - kinds[("PATCH", "status")]
                - (kinds[("POST", "events")] + kinds[("PATCH", "events")])
                == 0
            ), f"unexpected requests: {sent}"
