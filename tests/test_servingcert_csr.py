"""The webhook serving certificate through the cluster's CertificateSigningRequest flow, on both tiers.

The real tier is kube-apiserver with kube-controller-manager signing ``kubernetes.io/*`` signers
with the plane's CA; the fake tier is the fake API server's own signer and CA. The same assertions
hold on both: the certificate is issued for the generated key with the requested SANs, verifies
against the returned CA, is served by a WebhookServer the API server then calls; denial, a signer's
refusal and a missing approval are clear errors; the CSR never outlives the call.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from kctl_runtime._rest import request_json
from kctl_runtime.clock import FakeClock
from kctl_runtime.errors import Forbidden, NotFound
from kctl_runtime.resource import CERTIFICATESIGNINGREQUESTS as CSRS
from kctl_runtime.servingcert import KUBELET_SERVING, CertificateRequestFailed, CertWatcher
from kctl_runtime.testing.envtest.webhooks import install_webhooks
from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually, unique_name
from kctl_runtime.webhook import WebhookServer
from kctl_runtime.webhook_admission import AdmissionRequest, AdmissionResponse

from .conformance._support import configmap, core_api


async def _ours(kube: KubeTarget, prefix: str) -> list[dict[str, Any]]:
    """The CSRs whose generated name starts with ``prefix-`` (only this test's)."""
    listed = await request_json(kube.api_client, "GET", CSRS.path())
    return [o for o in listed["items"] if o["metadata"]["name"].startswith(f"{prefix}-")]


@contextlib.asynccontextmanager
async def _deciding(
    kube: KubeTarget, prefix: str, decide: Callable[[dict[str, Any]], dict[str, Any]]
) -> AsyncIterator[list[str]]:
    """A second party that writes ``decide(csr)``'s condition through ``approval`` once the CSR appears."""
    decided: list[str] = []

    async def decider() -> None:
        async def appeared() -> list[dict[str, Any]]:
            return await _ours(kube, prefix)

        found = await eventually(appeared, timeout=20, interval=0.05, message=f"no CSR {prefix}-*")
        csr = found[0]
        csr.setdefault("status", {})["conditions"] = [decide(csr)]
        await request_json(
            kube.api_client, "PUT", CSRS.path(name=csr["metadata"]["name"], subresource="approval"), body=csr
        )
        decided.append(csr["metadata"]["name"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(decider)
        yield decided
        tg.cancel_scope.cancel()


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.DNSName), [
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    ]


async def _deny_forbidden(request: AdmissionRequest) -> AdmissionResponse:
    if "forbidden" in ((request.object or {}).get("data") or {}):
        return AdmissionResponse.deny("served with the cluster-signed certificate")
    return AdmissionResponse.allow()


def _hook(kube: KubeTarget) -> dict[str, Any]:
    return {
        "metadata": {"name": unique_name("csr-wh")},
        "webhooks": [
            {
                "name": "csr.kctl.example.com",
                "clientConfig": {"service": {"name": "unused", "namespace": "default", "path": "/deny"}},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["configmaps"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube.namespace}},
            }
        ],
    }


# --8<-- [start:csr]
from kctl_runtime.servingcert import request_certificate  # noqa: E402


async def cluster_signed(api_client: ApiClient, cert_dir: Path, namespace: str, *ips: str) -> bytes:
    """Before the WebhookServer starts: tls.key/tls.crt signed by the cluster; returns the caBundle."""
    issued = await request_certificate(
        api_client,
        cert_dir,
        name="loadtest-webhook",
        dns_names=[f"loadtest-webhook.{namespace}.svc"],  # the webhook Service's DNS name
        ip_addresses=ips,
        approve=True,  # needs the RBAC below; without it an administrator approves the CSR
        root_ca_namespace=namespace,  # kube-root-ca.crt, when the client trusts no CA file
    )
    if issued.ca_pem is None:
        raise RuntimeError(f"cannot tell which CA {issued.signer_name} signs with: pass ca_bundle=")
    return issued.ca_pem


# --8<-- [end:csr]


async def test_an_approved_request_is_issued_served_and_called_by_the_api_server(
    kube: KubeTarget, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    ca = await cluster_signed(kube.api_client, certs, kube.namespace, "127.0.0.1")
    if kube.fake is not None:
        assert ca == kube.fake.ca_pem
    else:
        assert kube.plane is not None
        assert ca == (kube.plane.work_dir / "pki" / "ca.crt").read_bytes()
    cert = x509.load_pem_x509_certificate((certs / "tls.crt").read_bytes())
    assert (certs / "ca.crt").read_bytes() == ca
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert _sans(cert) == ([f"loadtest-webhook.{kube.namespace}.svc"], ["127.0.0.1"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:loadtest-webhook"
    key = serialization.load_pem_private_key((certs / "tls.key").read_bytes(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    assert key.public_key().public_bytes(pem, spki) == cert.public_key().public_bytes(pem, spki)
    assert await _ours(kube, "loadtest-webhook") == []  # cleaned up after issuing

    server = WebhookServer(bind="127.0.0.1:0", cert_dir=certs)
    server.validating("/deny", _deny_forbidden)
    async with (
        server,
        install_webhooks(kube.api_client, server, ca, validating=[_hook(kube)]),
    ):

        async def denied() -> bool:
            try:
                await core_api(kube.api_client).create_namespaced_config_map(
                    kube.namespace, configmap(unique_name("probe"), data={"forbidden": "1"})
                )
            except ApiException as exc:
                return exc.status == 403 and "served with the cluster-signed certificate" in str(exc.body)
            return False

        await eventually(denied, timeout=30, interval=0.2, message="the API server never called the webhook")

        # a renewal lands in the same directory; the server's watcher loads it without a restart
        prefix = unique_name("renew")
        watcher = CertWatcher(certs)
        renewed = await request_certificate(
            kube.api_client,
            certs,
            name=prefix,
            ip_addresses=["127.0.0.1"],
            approve=True,
            expiration_seconds=3600,
            root_ca_namespace=kube.namespace,
            timeout=30,
        )
        assert renewed.signer_name == KUBELET_SERVING
        assert renewed.csr_name.startswith(f"{prefix}-")
        assert renewed.cert_pem == (certs / "tls.crt").read_bytes() != cert.public_bytes(pem)
        assert renewed.ca_pem == ca
        assert watcher.reload()
        assert watcher.loads == 2
        again = x509.load_pem_x509_certificate(renewed.cert_pem)
        assert again.not_valid_after_utc == renewed.not_after
        lifetime = again.not_valid_after_utc - again.not_valid_before_utc
        # expiration_seconds from now; the signer backdates the start 5 minutes (kube-controller-
        # manager's policy: under 8 hours the end is not moved back with it)
        assert lifetime.total_seconds() == 3600 + 300
        assert _sans(again) == ([], ["127.0.0.1"])
        assert await _ours(kube, prefix) == []


async def test_a_denied_request_raises_with_the_reason_and_is_deleted(
    kube: KubeTarget, tmp_path: Path
) -> None:
    prefix = unique_name("den")

    def deny(csr: dict[str, Any]) -> dict[str, Any]:
        return {"type": "Denied", "status": "True", "reason": "NotThisCluster", "message": "ask the admins"}

    async with _deciding(kube, prefix, deny) as decided:
        with pytest.raises(CertificateRequestFailed) as failed:
            await request_certificate(
                kube.api_client, tmp_path, name=prefix, dns_names=["a.example"], timeout=30
            )
    assert failed.value.condition == "Denied"
    assert failed.value.reason == "NotThisCluster"
    assert failed.value.csr_name == decided[0]
    assert str(failed.value) == (
        f"CertificateSigningRequest {decided[0]} (signer kubernetes.io/kubelet-serving) was denied: "
        "NotThisCluster: ask the admins"
    )
    assert await _ours(kube, prefix) == []
    assert not (tmp_path / "tls.key").exists()


async def test_a_request_the_signer_refuses_fails_with_the_signers_message(
    kube: KubeTarget, tmp_path: Path
) -> None:
    prefix = unique_name("cli")
    with pytest.raises(CertificateRequestFailed) as failed:
        await request_certificate(
            kube.api_client,
            tmp_path,
            name=prefix,
            dns_names=["a.example"],
            signer_name="kubernetes.io/kube-apiserver-client",
            approve=True,
            timeout=30,
        )
    assert (failed.value.condition, failed.value.reason) == ("Failed", "SignerValidationFailure")
    assert failed.value.message == "invalid usage for client certificate: server auth"
    assert "was failed" in str(failed.value)
    assert await _ours(kube, prefix) == []


async def test_the_kubelet_serving_signer_refuses_a_subject_that_is_not_a_node(kube: KubeTarget) -> None:
    """The signer's own check, on a CSR written by hand (request_certificate always writes a node subject)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    name = unique_name("notnode")
    body = {
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": KUBELET_SERVING,
            "usages": ["digital signature", "server auth"],
        },
    }
    created = await request_json(kube.api_client, "POST", CSRS.path(), body=body)
    try:
        created["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Test"}]}
        await request_json(kube.api_client, "PUT", CSRS.path(name=name, subresource="approval"), body=created)

        async def failed() -> dict[str, Any] | None:
            csr = await request_json(kube.api_client, "GET", CSRS.path(name=name))
            return next((c for c in csr["status"].get("conditions", ()) if c["type"] == "Failed"), None)

        condition = await eventually(failed, timeout=20, message="the signer never answered")
        assert condition is not None
        assert condition["reason"] == "SignerValidationFailure"
        assert condition["message"] == "subject organization is not system:nodes"
    finally:
        await request_json(kube.api_client, "DELETE", CSRS.path(name=name))


@pytest.mark.parametrize(
    ("signer", "approve", "says"),
    [
        (KUBELET_SERVING, False, "is still pending after 5s: nobody approved it"),
        ("example.com/nobody-signs", True, "was approved but not signed within 5s"),
    ],
)
async def test_a_request_nobody_finishes_times_out_on_the_injected_clock(
    kube: KubeTarget, tmp_path: Path, signer: str, approve: bool, says: str
) -> None:
    prefix = unique_name("pend")
    clock = FakeClock()
    outcome: list[BaseException] = []

    async def requester() -> None:
        try:
            await request_certificate(
                kube.api_client,
                tmp_path,
                name=prefix,
                dns_names=["a.example"],
                signer_name=signer,
                approve=approve,
                timeout=5,
                poll_interval=1,
                clock=clock,
            )
        except Exception as exc:
            outcome.append(exc)

    with anyio.fail_after(20):  # real-time bound: the clock below drives the timeout
        async with anyio.create_task_group() as tg:
            tg.start_soon(requester)
            while not outcome:
                # once the poll (a real HTTP GET) sleeps next to the timeout, move virtual time on
                if clock.sleepers >= 2:
                    await clock.advance(1)
                else:
                    await anyio.sleep(0.01)
    assert isinstance(outcome[0], TimeoutError), outcome
    message = str(outcome[0])
    assert says in message
    assert signer in message
    if not approve:
        assert "kubectl certificate approve" in message
    assert await _ours(kube, prefix) == []


@pytest.mark.real_only
async def test_the_documented_rbac_is_enough_and_approval_needs_approve_on_the_signer(
    kube: KubeTarget, tmp_path: Path
) -> None:
    """kube-apiserver's CertificateApproval admission (the fake does no authorization)."""
    user = unique_name("csr-requester")
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests"],
            "verbs": ["create", "get", "delete"],
        },
        {
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests/approval"],
            "verbs": ["update"],
        },
    ]
    approve_rule = {
        "apiGroups": ["certificates.k8s.io"],
        "resources": ["signers"],
        "resourceNames": [KUBELET_SERVING],
        "verbs": ["approve"],
    }
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = {"metadata": {"name": user}, "rules": [*rules, approve_rule]}
    binding = {
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    await request_json(kube.api_client, "POST", f"{rbac}/clusterroles", body=role)
    await request_json(kube.api_client, "POST", f"{rbac}/clusterrolebindings", body=binding)
    client = await kube.new_api_client()
    client.default_headers["Impersonate-User"] = user
    try:
        issued = await request_certificate(
            client, tmp_path, name=user, dns_names=["a.example"], approve=True, timeout=30
        )
        assert issued.ca_pem is not None
        role["rules"] = rules  # without `approve` on the signer
        current = await request_json(kube.api_client, "GET", f"{rbac}/clusterroles/{user}")
        await request_json(
            kube.api_client, "PUT", f"{rbac}/clusterroles/{user}", body={**current, "rules": rules}
        )

        async def refused() -> Forbidden:
            try:
                await request_certificate(
                    client, tmp_path, name=user, dns_names=["a.example"], approve=True, timeout=30
                )
            except Forbidden as exc:
                return exc
            raise AssertionError("approved without `approve` on the signer")

        forbidden = await refused()
        assert "kubernetes.io/kubelet-serving" in str(forbidden)
        assert await _ours(kube, user) == []  # deleted after the refusal too
    finally:
        for path in (f"{rbac}/clusterrolebindings/{user}", f"{rbac}/clusterroles/{user}"):
            with contextlib.suppress(NotFound):
                await request_json(kube.api_client, "DELETE", path)


def test_bad_arguments_are_refused_before_anything_is_created(tmp_path: Path) -> None:
    async def main() -> None:
        for kwargs, message in (
            ({"name": "x"}, "at least one DNS name or IP address"),
            ({"name": "", "dns_names": ["a"]}, "name is required"),
            ({"name": "x", "dns_names": ["a"], "expiration_seconds": 60}, "at least 600"),
            ({"name": "x", "dns_names": ["a"], "timeout": 0}, "must be positive"),
        ):
            with pytest.raises(ValueError, match=message):
                await request_certificate(None, tmp_path, **kwargs)

    anyio.run(main)
    assert list(tmp_path.iterdir()) == []
