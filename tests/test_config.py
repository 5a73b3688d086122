"""Tests for kctl_runtime.config: where configuration comes from, and one-line errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kctl_runtime.client import Client
from kctl_runtime.config import ConfigError, connect, load_config
from kctl_runtime.resource import NAMESPACES
from kctl_runtime.testing.pytest_plugin import KubeTarget

GOOD = """
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u1
  user: {token: abc}
contexts:
- name: one
  context: {cluster: c1, user: u1}
- name: two
  context: {cluster: c1, user: u1}
current-context: one
"""


def write(tmp_path: Path, text: str, name: str = "config") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


async def config_error(*args: Any, **kwargs: Any) -> str:
    """The one-line error of :func:`load_config`, which :func:`connect` must report identically."""
    messages = []
    for loader in (load_config, connect):
        with pytest.raises(ConfigError) as caught:
            await loader(*args, **kwargs)
        messages.append(str(caught.value))
    message = messages[0]
    assert messages[1] == message
    assert "\n" not in message
    assert "Traceback" not in message
    return message


async def test_an_explicit_kubeconfig_is_loaded_and_talks_to_the_server(kube: KubeTarget) -> None:
    api_client = await load_config(kube.kubeconfig, environ={})
    try:
        ns = await Client(api_client).get(NAMESPACES, kube.namespace)
        assert ns["metadata"]["name"] == kube.namespace
    finally:
        await api_client.close()


async def test_kubeconfig_env_is_used_when_no_path_is_given(kube: KubeTarget) -> None:
    api_client = await load_config(environ={"KUBECONFIG": f"/does/not/exist{os.pathsep}{kube.kubeconfig}"})
    try:
        assert (await Client(api_client).get(NAMESPACES, kube.namespace))["metadata"][
            "name"
        ] == kube.namespace
    finally:
        await api_client.close()


async def test_home_kubeconfig_is_the_last_resort(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube", GOOD)
    api_client = await load_config(environ={"HOME": str(tmp_path)})
    try:
        assert api_client.configuration.host == "http://127.0.0.1:1"
    finally:
        await api_client.close()


async def test_a_context_can_be_chosen(tmp_path: Path) -> None:
    api_client = await load_config(write(tmp_path, GOOD), context="two")
    await api_client.close()


async def test_a_missing_kubeconfig_is_one_line(tmp_path: Path) -> None:
    assert await config_error(tmp_path / "nope") == f"kubeconfig {tmp_path / 'nope'}: no such file"


async def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "clusters: [\n  - name: x\n  oops: : :\n")
    message = await config_error(path)
    assert message.startswith(f"kubeconfig {path}: not valid YAML (line ")


async def test_a_kubeconfig_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert "expected a mapping" in await config_error(write(tmp_path, "- just\n- a list\n"))


async def test_an_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    message = await config_error(write(tmp_path, GOOD), context="three")
    assert message.endswith("context 'three' not found (available: one, two)")


async def test_a_context_pointing_at_an_undefined_cluster_says_so(tmp_path: Path) -> None:
    broken = GOOD.replace(
        "context: {cluster: c1, user: u1}\ncurrent", "context: {cluster: c9, user: u1}\ncurrent"
    )
    message = await config_error(write(tmp_path, broken), context="two")
    assert message.endswith("context 'two' refers to undefined cluster 'c9'")


async def test_an_empty_kubeconfig_has_no_current_context(tmp_path: Path) -> None:
    assert "no current-context" in await config_error(write(tmp_path, ""))


async def test_kubeconfig_env_naming_only_missing_files_is_an_error(tmp_path: Path) -> None:
    message = await config_error(environ={"KUBECONFIG": str(tmp_path / "gone")})
    assert message == f"$KUBECONFIG={tmp_path / 'gone'}: no such file"


async def test_no_configuration_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    message = await config_error(environ={"HOME": str(tmp_path)})
    assert message.startswith("no Kubernetes configuration found")
    assert str(tmp_path / ".kube" / "config") in message


async def test_in_cluster_without_a_token_is_one_line(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": str(tmp_path)}
    message = await config_error(environ=env, service_account_dir=tmp_path)
    assert message == f"in-cluster config: service account token {tmp_path / 'token'} does not exist"


async def test_in_cluster_uses_the_service_account_token_and_ca(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text(_self_signed_ca())
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    api_client = await load_config(environ=env, service_account_dir=tmp_path)
    try:
        assert api_client.configuration.host == "https://10.0.0.1:443"
        assert api_client.configuration.ssl_ca_cert == str(tmp_path / "ca.crt")
    finally:
        await api_client.close()
    assert "in-cluster" in await config_error(environ=env, context="x", service_account_dir=tmp_path)


def _self_signed_ca() -> str:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
    return pem.decode()


def test_run_cli_prints_one_error_line_and_exits_2_without_a_traceback(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from kctl_runtime.config import load_config, run_cli

        async def main() -> None:
            await load_config({str(tmp_path / "missing")!r})

        run_cli(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr == f"error: kubeconfig {tmp_path / 'missing'}: no such file\n"
    assert done.stdout == ""


def test_run_cli_exits_with_the_status_main_returns() -> None:
    script = "from kctl_runtime.config import run_cli\nasync def main():\n    return 3\nrun_cli(main)\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3


def test_run_cli_turns_other_fatal_errors_into_one_line_and_status_1() -> None:
    script = textwrap.dedent(
        """
        from kctl_runtime.config import run_cli
        from kctl_runtime.manager import CacheSyncTimeout

        async def main() -> None:
            raise CacheSyncTimeout("caches did not sync within 1s: widgets.example.com")

        run_cli(main, prog="demo")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr == "demo: error: caches did not sync within 1s: widgets.example.com\n"


def test_run_cli_keeps_the_traceback_of_bugs() -> None:
    script = "from kctl_runtime.config import run_cli\nasync def main():\n    raise KeyError('bug')\n"
    script += "run_cli(main)\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "KeyError: 'bug'" in done.stderr
