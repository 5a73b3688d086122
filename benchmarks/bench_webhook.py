"""Webhook latency through the real kube-apiserver: what an allowing validating webhook adds to a write.

Run: ``python -m benchmarks.bench_webhook [--requests 200] [--runs 3]`` (needs the envtest binaries:
``$KUBEBUILDER_ASSETS`` or the build cache). Prints a markdown table and writes
``docs/benchmarks/webhook.md``.

A real control plane (envtest) and a :class:`~kctl_runtime.webhook.WebhookServer` on 127.0.0.1 in
this process; one ValidatingWebhookConfiguration (``failurePolicy: Fail``) selects ConfigMaps in
one namespace by ``namespaceSelector`` and its handler allows everything. Each run creates
``--requests`` ConfigMaps one after another in the selected namespace (**webhook**) and as many in
an unselected one (**floor**: the same request with no webhook call), interleaved so load drifts
hit both alike. Reported per run: p50 and p99 of the client-observed create latency for each, and
their ratio to the floor; then the median and spread (min-max) of those over the runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from kctl_runtime._rest import request_json
from kctl_runtime.config import load_config
from kctl_runtime.testing.envtest import ControlPlane
from kctl_runtime.testing.envtest.webhooks import install_webhooks
from kctl_runtime.webhook import WebhookServer
from kctl_runtime.webhook_admission import AdmissionRequest, AdmissionResponse
from kctl_runtime.webhook_certs import self_signed


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _allow(_request: AdmissionRequest) -> AdmissionResponse:
    return AdmissionResponse.allow()


async def _bench(kubeconfig: Path, requests: int, runs: int) -> list[dict[str, float]]:
    api = await load_config(kubeconfig)
    certs = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    ca = self_signed(certs)
    server = WebhookServer(bind="127.0.0.1:0", cert_dir=certs)
    server.validating("/allow", _allow)
    selected, other = "bench-webhook", "bench-floor"
    for name in (selected, other):
        await request_json(api, "POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    hook = {
        "name": "allow.kctl.example.com",
        "clientConfig": {"service": {"name": "unused", "namespace": "default", "path": "/allow"}},
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": selected}},
    }
    results: list[dict[str, float]] = []
    try:
        async with (
            server,
            install_webhooks(
                api, server, ca, validating=[{"metadata": {"name": "bench"}, "webhooks": [hook]}]
            ),
        ):
            await anyio.sleep(2)  # kube-apiserver picks configurations up asynchronously
            counter = 0
            for _ in range(runs):
                times: dict[str, list[float]] = {selected: [], other: []}
                for _ in range(requests):
                    for namespace in (selected, other):
                        counter += 1
                        body = {"metadata": {"name": f"cm-{counter}"}, "data": {"k": "v"}}
                        began = time.perf_counter()
                        await request_json(
                            api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body
                        )
                        times[namespace].append(time.perf_counter() - began)
                results.append(
                    {
                        "webhook_p50": _quantile(times[selected], 0.5) * 1000,
                        "webhook_p99": _quantile(times[selected], 0.99) * 1000,
                        "floor_p50": _quantile(times[other], 0.5) * 1000,
                        "floor_p99": _quantile(times[other], 0.99) * 1000,
                    }
                )
    finally:
        for name in (selected, other):
            await request_json(api, "DELETE", f"/api/v1/namespaces/{name}")
        await api.close()
    return results


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks/webhook.md"))
    args = parser.parse_args()
    with ControlPlane.from_environment(controller_manager=False) as plane:
        results = anyio.run(_bench, plane.kubeconfig_path, args.requests, args.runs)
        setting = f"{plane.describe()}; {args.requests} creates per run and namespace, {args.runs} runs"
    rows = ["| metric | median (min-max) over runs |", "|---|---|"]
    for key in ("webhook_p50", "floor_p50", "webhook_p99", "floor_p99"):
        rows.append(f"| {key.replace('_', ' ')} (ms) | {_spread([r[key] for r in results])} |")
    for q in ("p50", "p99"):
        ratios = [r[f"webhook_{q}"] / r[f"floor_{q}"] for r in results]
        rows.append(f"| webhook / floor {q} | {_spread(ratios)} |")
    table = "\n".join(rows)
    print(f"{setting}\n\n{table}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        "# Webhook latency\n\n"
        "What an allowing validating webhook (`failurePolicy: Fail`, served by `kctl_runtime.webhook` on\n"
        "127.0.0.1) adds to a ConfigMap create through the real kube-apiserver, against the same create in\n"
        "a namespace the webhook does not select (the floor), interleaved. Written by\n"
        "`python -m benchmarks.bench_webhook` (part of `make bench`).\n\n"
        f"{setting}, on {time.strftime('%Y-%m-%d')}.\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
