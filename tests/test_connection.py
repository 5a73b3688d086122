"""Tests for kctl_runtime.connection and config.connect: the runtime's own transport.

What is checked: ``connect`` reaches the fake and the real API server from their kubeconfigs
(client certificates on the real tier); the credential sources client-go reads (token, token file
re-read on a clock, exec plugins with expiry, basic auth) put the header a server sees, over real
HTTP; exec plugin failures are one line; relative paths follow the kubeconfig; ``NO_PROXY``; and the
point of it all: a controller process that connects this way never imports kubernetes-asyncio.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from kctl_runtime.client import Client, RetryPolicy
from kctl_runtime.clock import FakeClock
from kctl_runtime.config import ConfigError, connect
from kctl_runtime.connection import Connection, CredentialError, ExecPlugin, TokenFile
from kctl_runtime.errors import TRANSPORT_ERRORS, expected_failure_level
from kctl_runtime.resource import NAMESPACES
from kctl_runtime.testing.pytest_plugin import KubeTarget

REPO = Path(__file__).resolve().parents[1]


def kubeconfig(tmp_path: Path, server: str, user: dict[str, Any], name: str = "config") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def plugin(tmp_path: Path, status: dict[str, Any], *, name: str = "plugin.py", exit_code: int = 0) -> Path:
    """An exec plugin: counts its runs in ``<name>.runs`` and prints an ExecCredential."""
    script = tmp_path / name
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, os, sys
            info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
            assert info["spec"]["interactive"] is False, info
            runs = {str(script) + ".runs"!r}
            with open(runs, "a") as f:
                f.write(os.environ.get("EXTRA", "-") + "\\n")
            if {exit_code}:
                print("plugin says no", file=sys.stderr)
                sys.exit({exit_code})
            print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                               "status": {status!r}}}))
            """
        )
    )
    script.chmod(0o755)
    return script


def runs(script: Path) -> list[str]:
    path = Path(str(script) + ".runs")
    return path.read_text().split() if path.exists() else []


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[str]]]:
    """A tiny HTTP API on 127.0.0.1 that records the Authorization header of each request."""
    seen: list[str] = []

    async def namespace(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        name = request.match_info["name"]
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{name}", namespace)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_connect_reaches_the_server_from_its_kubeconfig(kube: KubeTarget) -> None:
    connection = await connect(kube.kubeconfig, environ={})
    async with connection:
        assert isinstance(connection, Connection)
        ns = await Client(connection).get(NAMESPACES, kube.namespace)
        assert ns["metadata"]["name"] == kube.namespace
        cluster = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]
        ca = cluster.get("certificate-authority-data")
        assert connection.configuration.ca_pem == (base64.b64decode(ca) if ca else None)


async def test_an_exec_plugin_supplies_the_credentials_on_both_tiers(
    kube: KubeTarget, tmp_path: Path
) -> None:
    original = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = original["clusters"][0]["cluster"]
    user = original["users"][0]["user"]
    status: dict[str, Any] = {"token": "from-the-plugin"}
    if user.get("client-certificate-data"):  # the real tier authenticates by certificate
        status = {
            "clientCertificateData": base64.b64decode(user["client-certificate-data"]).decode(),
            "clientKeyData": base64.b64decode(user["client-key-data"]).decode(),
        }
    script = plugin(tmp_path, status)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": f"./{script.name}",  # relative to the kubeconfig's directory, as client-go
            "env": [{"name": "EXTRA", "value": "passed"}],
            "interactionMode": "Never",
        }
    }
    path = kubeconfig(tmp_path, cluster["server"], exec_user)
    config = yaml.safe_load(path.read_text())
    config["clusters"][0]["cluster"] = cluster
    path.write_text(yaml.safe_dump(config))
    async with await connect(path, environ={}) as connection:
        ns = await Client(connection).get(NAMESPACES, kube.namespace)
        assert ns["metadata"]["name"] == kube.namespace
    assert runs(script) == ["passed"]  # once at connect; the credential has no expiry


async def test_a_token_reaches_the_server_and_basic_auth_is_encoded(
    echo: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = echo
    async with await connect(kubeconfig(tmp_path, url, {"token": "t0k"}), environ={}) as connection:
        await Client(connection).get(NAMESPACES, "a")
    basic = kubeconfig(tmp_path, url, {"username": "ann", "password": "pw"}, name="basic")
    async with await connect(basic, environ={}) as connection:
        await Client(connection).get(NAMESPACES, "a")
    assert seen == ["Bearer t0k", "Basic " + base64.b64encode(b"ann:pw").decode()]


async def test_a_token_file_is_re_read_once_its_reload_interval_has_passed(
    echo: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = echo
    (tmp_path / "token").write_text("first\n")
    clock = FakeClock()
    path = kubeconfig(tmp_path, url, {"tokenFile": "token"})  # relative to the kubeconfig
    async with await connect(path, environ={}, clock=clock) as connection:
        client = Client(connection)
        await client.get(NAMESPACES, "a")
        (tmp_path / "token").write_text("second\n")
        await client.get(NAMESPACES, "a")
        await clock.advance(61)
        await client.get(NAMESPACES, "a")
        (tmp_path / "token").unlink()  # mid-rotation: keep the token we have
        await clock.advance(61)
        await client.get(NAMESPACES, "a")
    assert seen == ["Bearer first", "Bearer first", "Bearer second", "Bearer second"]


async def test_an_exec_token_is_cached_until_shortly_before_it_expires(
    echo: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = echo
    clock = FakeClock(wall_start=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    script = plugin(tmp_path, {"token": "short-lived", "expirationTimestamp": "2030-01-01T00:01:00Z"})
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}}
    async with await connect(kubeconfig(tmp_path, url, user), environ={}, clock=clock) as connection:
        client = Client(connection)
        await client.get(NAMESPACES, "a")
        await client.get(NAMESPACES, "a")
        assert len(runs(script)) == 1
        await clock.advance(51)  # within 10 s of the expiry: the plugin runs again
        await client.get(NAMESPACES, "a")
        assert len(runs(script)) == 2
    assert seen == ["Bearer short-lived"] * 3


async def test_a_plugin_that_fails_at_refresh_fails_requests_until_it_recovers(
    echo: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = echo
    clock = FakeClock(wall_start=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    mode = tmp_path / "mode"
    script = tmp_path / "flaky.sh"
    answer = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "again", "expirationTimestamp": "2030-01-01T00:01:00Z"},
    }
    script.write_text(
        f"#!/bin/sh\nif [ \"$(cat {mode})\" = fail ]; then echo 'token service down' >&2; exit 1; fi\n"
        f"echo '{orjson.dumps(answer).decode()}'\n"
    )
    script.chmod(0o755)
    mode.write_text("ok")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)}}
    async with await connect(kubeconfig(tmp_path, url, user), environ={}, clock=clock) as connection:
        client = Client(connection, retry=RetryPolicy(attempts=2, initial_backoff=0.001, jitter=0.0))
        await client.get(NAMESPACES, "a")
        mode.write_text("fail")
        await clock.advance(60)
        with pytest.raises(CredentialError, match=r"exited with status 1: token service down$"):
            await client.get(NAMESPACES, "a")
        mode.write_text("ok")
        await client.get(NAMESPACES, "a")
    assert seen == ["Bearer again", "Bearer again"]


@pytest.mark.parametrize(
    ("status", "exit_code", "expected"),
    [
        ({"token": "x"}, 3, "exited with status 3: plugin says no"),
        ({}, 0, "the ExecCredential has neither a token nor a client certificate"),
        ({"clientCertificateData": "x"}, 0, "clientCertificateData and clientKeyData must come together"),
        ({"token": "x", "expirationTimestamp": "soon"}, 0, "expirationTimestamp 'soon' is not RFC 3339"),
    ],
)
async def test_a_failing_exec_plugin_is_one_line_at_connect(
    tmp_path: Path, status: dict[str, Any], exit_code: int, expected: str
) -> None:
    script = plugin(tmp_path, status, exit_code=exit_code)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)}}
    path = kubeconfig(tmp_path, "http://127.0.0.1:1", user)
    with pytest.raises(ConfigError) as caught:
        await connect(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"kubeconfig {path}: user 'u': exec plugin {str(script)!r}")
    assert message.endswith(expected)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (  # a command that is not there: the plugin's install hint says what to do
            {"command": "kctl-no-such-plugin", "installHint": "install it from example.com"},
            r"cannot run: .*\(install it from example.com\)$",
        ),
        (  # a plugin that needs a terminal: a controller has none
            {"command": "login-helper", "interactiveMode": "Always"},
            r"needs a terminal \(interactiveMode: Always\)",
        ),
    ],
)
async def test_an_exec_plugin_that_cannot_run_here_is_refused_at_connect(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", **extra}}
    with pytest.raises(ConfigError, match=expected):
        await connect(kubeconfig(tmp_path, "http://127.0.0.1:1", user), environ={})


def test_a_credential_failure_is_an_expected_failure_logged_without_a_traceback() -> None:
    failure = CredentialError("exec plugin 'x' exited with status 1")
    assert expected_failure_level(failure) == "error"
    assert isinstance(failure, TRANSPORT_ERRORS)  # retried by the client, backed off by watches


async def test_exec_output_of_the_wrong_version_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "old.sh"
    answer = {"apiVersion": "client.authentication.k8s.io/v1alpha1", "kind": "ExecCredential", "status": {}}
    script.write_text(f"#!/bin/sh\necho '{orjson.dumps(answer).decode()}'\n")
    script.chmod(0o755)
    exec_plugin = ExecPlugin(str(script), api_version="client.authentication.k8s.io/v1")
    with pytest.raises(
        CredentialError, match=r"answered apiVersion 'client\.authentication\.k8s\.io/v1alpha1'"
    ):
        await exec_plugin.refresh()


async def test_bad_tls_material_and_combinations_are_one_line(tmp_path: Path) -> None:
    https = "https://127.0.0.1:1"
    cases = [
        ({"certificate-authority-data": "not base64!", "server": https}, {}, "is not valid base64"),
        ({"certificate-authority": "missing.crt", "server": https}, {}, "missing.crt: No such file"),
        (
            {"certificate-authority-data": base64.b64encode(b"junk").decode(), "server": https},
            {},
            "the certificate authority does not load",
        ),
        ({"server": https}, {"client-certificate-data": base64.b64encode(b"x").decode()}, "without its key"),
        ({"server": "ftp://h"}, {}, "is not an http(s) URL"),
    ]
    for cluster, user, expected in cases:
        path = kubeconfig(tmp_path, "unused", user)
        config = yaml.safe_load(path.read_text())
        config["clusters"][0]["cluster"] = cluster
        path.write_text(yaml.safe_dump(config))
        with pytest.raises(ConfigError) as caught:
            await connect(path, environ={})
        assert expected in str(caught.value), (cluster, user, str(caught.value))
        assert str(caught.value).startswith(f"kubeconfig {path}")


async def test_a_legacy_auth_provider_is_handed_to_kubernetes_asyncio(tmp_path: Path) -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")

    id_token = f"{part({'alg': 'none'})}.{part({'exp': 4102444800, 'iss': 'https://idp'})}.sig"
    provider = {
        "name": "oidc",
        "config": {"id-token": id_token, "idp-issuer-url": "https://idp", "client-id": "k"},
    }
    path = kubeconfig(tmp_path, "http://127.0.0.1:1", {"auth-provider": provider})
    api_client = await connect(path, environ={})
    try:
        assert not isinstance(api_client, Connection)  # kubernetes-asyncio's ApiClient
        assert api_client.configuration.api_key == {"BearerToken": f"Bearer {id_token}"}
    finally:
        await api_client.close()


async def test_environment_proxies_apply_unless_no_proxy_covers_the_host(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, "https://api.example.com:6443", {"token": "t"})
    proxy = "http://proxy.internal:3128"
    async with await connect(path, environ={"HTTPS_PROXY": proxy}) as connection:
        assert connection.rest_client.proxy == proxy
    async with await connect(path, environ={"HTTPS_PROXY": proxy, "NO_PROXY": ".example.com"}) as connection:
        assert connection.rest_client.proxy is None


async def test_in_cluster_reads_the_service_account_and_brackets_ipv6(tmp_path: Path) -> None:
    from tests.test_config import _self_signed_ca

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text(_self_signed_ca())
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    async with await connect(environ=env, service_account_dir=tmp_path) as connection:
        assert connection.host == "https://[fd00::1]:443"
        assert connection.configuration.ca_pem == (tmp_path / "ca.crt").read_bytes()
        assert isinstance(connection.credentials, TokenFile)
        assert await connection.credentials.authorization() == "Bearer sa-token"


def test_a_controller_that_connects_never_imports_kubernetes_asyncio(tmp_path: Path) -> None:
    """The point of Connection: the Website example's process stays free of the generated client."""
    path = kubeconfig(tmp_path, "http://127.0.0.1:1", {"token": "t"})
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        import examples.website_controller.__main__
        from kctl_runtime.config import connect
        from kctl_runtime.manager import Manager

        async def main():
            connection = await connect({str(path)!r}, environ={{}})
            Manager(connection)
            await connection.close()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.startswith("kubernetes_asyncio"))
        print(loaded)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
