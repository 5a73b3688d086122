"""The real control plane (envtest): start, readiness, kubeconfig, controllers, cleanup, command.

Tests that need binaries skip with the reason when none are found, except in CI (``CI=true``) or
with ``KCTL_REQUIRE_REAL=1``, where they fail: the same policy as the ``kube`` fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from kctl_runtime.testing import envtest
from kctl_runtime.testing.pytest_plugin import (
    envtest_binaries,
    eventually,
    real_tier_unavailable,
    unique_name,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def plane() -> Iterator[envtest.ControlPlane]:
    try:
        running = envtest.ControlPlane.from_environment()
        running.start()
    except envtest.EnvtestUnavailable as exc:
        real_tier_unavailable(exc)
        raise
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def api(plane: envtest.ControlPlane) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(plane.kubeconfig_path), client_configuration=configuration)
    async with client.ApiClient(configuration) as api_client:
        yield api_client


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


# -- without binaries ------------------------------------------------------------------------------


def test_pinned_version_is_the_one_the_build_recipe_builds() -> None:
    go_mod = (envtest.BUILD_SCRIPT.parent / "go.mod").read_text()
    pinned = re.search(r"^(?:require )?\s*k8s\.io/kubernetes (v\S+)$", go_mod, re.MULTILINE)
    assert pinned is not None
    assert pinned.group(1) == envtest.KUBERNETES_VERSION
    minor = envtest.KUBERNETES_VERSION.replace("v1.", "v0.", 1)
    for staging in ("api", "apimachinery", "apiserver", "client-go", "component-base", "kubectl"):
        assert f"k8s.io/{staging} => k8s.io/{staging} {minor}\n" in go_mod


@pytest.mark.parametrize(
    "command",
    [
        ["bash", str(REPO / "hack" / "envtest" / "build.sh")],
        [sys.executable, "-m", "kctl_runtime.testing.envtest", "build"],
    ],
    ids=["repository-script", "package-command"],
)
def test_build_command_and_library_agree_on_the_asset_folder(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    for name in ("KCTL_ENVTEST_ASSETS_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    printed = subprocess.run(
        [*command, "--print-dir"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    assert Path(printed) == envtest.default_assets_dir()
    assert envtest.default_assets_dir().name == envtest.KUBERNETES_VERSION


def test_the_repository_build_script_runs_the_one_shipped_in_the_package() -> None:
    wrapper = (REPO / "hack" / "envtest" / "build.sh").read_text()
    assert "kctl_runtime/testing/envtest/gobuild/build.sh" in wrapper
    assert sorted(p.name for p in (REPO / "hack" / "envtest").iterdir()) == ["build.sh"]
    assert {p.name for p in envtest.BUILD_SCRIPT.parent.iterdir()} >= {
        "build.sh",
        "go.mod",
        "go.sum",
        "tools.go",
    }


def test_the_build_command_says_what_is_wrong_with_the_go_it_was_given(tmp_path: Path) -> None:
    env = {**os.environ, "KCTL_ENVTEST_ASSETS_DIR": str(tmp_path / "assets"), "GO": str(tmp_path / "no-go")}
    env.pop("KUBEBUILDER_ASSETS", None)
    done = subprocess.run(
        [sys.executable, "-m", "kctl_runtime.testing.envtest", "build"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"GO={tmp_path / 'no-go'} is not a command" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "assets").exists()


def test_missing_binaries_tell_a_pip_user_both_ways_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("KCTL_ENVTEST_ASSETS_DIR", str(tmp_path))
    with pytest.raises(envtest.EnvtestUnavailable) as caught:
        envtest.Binaries.find()
    message = str(caught.value)
    assert "KUBEBUILDER_ASSETS" in message
    assert "setup-envtest" in message
    assert "python -m kctl_runtime.testing.envtest build" in message
    assert "hack/" not in message


def test_an_incomplete_kubebuilder_assets_folder_is_reported_not_worked_around(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(envtest.EnvtestUnavailable, match=r"no etcd or kube-apiserver in KUBEBUILDER_ASSETS="):
        envtest.ControlPlane.from_environment()


# -- with binaries ---------------------------------------------------------------------------------


def test_a_process_that_fails_to_start_is_named_with_the_tail_of_its_log() -> None:
    found = envtest_binaries()
    # etcd as the "API server": a real program that rejects kube-apiserver's flags and exits.
    broken = envtest.Binaries(
        etcd=found.etcd,
        kube_apiserver=found.etcd,
        kube_controller_manager=None,
        kubectl=None,
        source="test",
    )
    plane = envtest.ControlPlane(broken, start_timeout=30)
    with pytest.raises(envtest.EnvtestUnavailable) as raised:
        plane.start()
    message = str(raised.value)
    assert "\n" not in message
    assert "kube-apiserver exited with code" in message
    assert not plane.running
    log = re.search(r"log (\S+/logs/kube-apiserver\.log): (.*)$", message)
    assert log is not None, message
    log_path = Path(log.group(1))
    try:
        text = log_path.read_text()
        assert "flag provided but not defined: -etcd-servers" in text  # the whole log is kept
        last_line = [line for line in text.splitlines() if line.strip()][-1].strip()
        assert log.group(2).endswith(last_line)  # ... and its tail is in the message
    finally:
        shutil.rmtree(log_path.parent.parent)


def test_start_reports_the_server_version_and_startup_time(plane: envtest.ControlPlane) -> None:
    assert plane.running
    assert re.fullmatch(r"v1\.\d+\.\d+.*", plane.server_version)
    if plane.binaries.source.startswith("cache "):
        assert plane.server_version == envtest.KUBERNETES_VERSION
    assert 0 < plane.startup_seconds < envtest.DEFAULT_START_TIMEOUT
    description = plane.describe()
    assert plane.server_version in description
    assert "ready in" in description
    assert plane.api_url.startswith("https://127.0.0.1:")


async def test_the_kubeconfig_works_with_kubernetes_asyncio(api: client.ApiClient) -> None:
    namespaces = await client.CoreV1Api(api).list_namespace()
    names = {ns.metadata.name for ns in namespaces.items}
    assert {"default", "kube-system", "kube-public"} <= names


async def test_the_kubeconfig_authenticates_raw_requests_too(api: client.ApiClient) -> None:
    # No auth_settings: only the client certificate of the connection says who is asking.
    response = await api.call_api("/api/v1/namespaces/default", "GET", _preload_content=False)
    try:
        assert response.status == 200
    finally:
        response.release()


def test_the_kubeconfig_works_with_kubectl(plane: envtest.ControlPlane, tmp_path: Path) -> None:
    if plane.kubectl_path is None:
        pytest.skip(f"no kubectl in {plane.binaries.source}")
    done = subprocess.run(
        [
            str(plane.kubectl_path),
            f"--kubeconfig={plane.kubeconfig_path}",
            f"--cache-dir={tmp_path / 'kube-cache'}",
            "get",
            "namespace",
            "default",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "namespace/default"


async def test_rbac_is_enforced_for_a_service_account_token(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    namespace = unique_name("rbac")
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    await core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot"))
    )
    token = await core.create_namespaced_service_account_token(
        "robot",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    robot_config = client.Configuration()
    robot_config.host = api.configuration.host
    robot_config.ssl_ca_cert = api.configuration.ssl_ca_cert
    robot_config.api_key = {"BearerToken": token.status.token}
    robot_config.api_key_prefix = {"BearerToken": "Bearer"}
    async with client.ApiClient(robot_config) as robot:
        with pytest.raises(ApiException) as denied:
            await client.CoreV1Api(robot).list_namespaced_secret(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:robot" in str(denied.value.body)


async def test_services_get_cluster_ips_from_a_16_range(api: client.ApiClient) -> None:
    service = await client.CoreV1Api(api).create_namespaced_service(
        "default",
        client.V1Service(
            metadata=client.V1ObjectMeta(name=unique_name("svc")),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
        ),
    )
    assert service.spec.cluster_ip.startswith("10.0.")


async def test_the_controller_manager_creates_default_service_accounts(
    plane: envtest.ControlPlane, api: client.ApiClient
) -> None:
    if not plane.controller_manager:
        pytest.skip("kube-controller-manager is off")
    core = client.CoreV1Api(api)
    namespace = unique_name("sa")
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))

    async def default_account() -> bool:
        accounts = await core.list_namespaced_service_account(namespace)
        return "default" in {a.metadata.name for a in accounts.items}

    await eventually(default_account, timeout=30, message="no default ServiceAccount")


async def test_the_controller_manager_collects_garbage(
    plane: envtest.ControlPlane, api: client.ApiClient
) -> None:
    if not plane.controller_manager:
        pytest.skip("kube-controller-manager is off")
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=unique_name("owner")))
    )
    dependent = unique_name("dependent")
    await core.create_namespaced_config_map(
        "default",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=dependent,
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name=owner.metadata.name, uid=owner.metadata.uid
                    )
                ],
            )
        ),
    )
    await core.delete_namespaced_config_map(owner.metadata.name, "default")

    async def dependent_gone() -> bool:
        names = {cm.metadata.name for cm in (await core.list_namespaced_config_map("default")).items}
        return dependent not in names

    await eventually(dependent_gone, timeout=30, message="dependent ConfigMap not garbage-collected")


def test_stop_leaves_no_process_and_no_files() -> None:
    with envtest.ControlPlane(envtest_binaries()) as plane:
        work = plane.work_dir
        pids = list(plane.pids.values())
        assert len(pids) == (3 if plane.controller_manager else 2)
        assert all(_pid_alive(pid) for pid in pids)
    assert not plane.running
    assert not any(_pid_alive(pid) for pid in pids)
    assert not work.exists()
    plane.stop()  # idempotent


def test_the_command_starts_a_plane_that_outlives_it_and_stops_it(tmp_path: Path) -> None:
    envtest_binaries()
    work = tmp_path / "plane"
    command = [sys.executable, "-m", "kctl_runtime.testing.envtest"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args, "--dir", str(work)], capture_output=True, text=True, timeout=120, check=False
        )

    started = run("start")
    try:
        assert started.returncode == 0, started.stderr
        kubeconfig = Path(started.stdout.strip().splitlines()[-1])
        assert kubeconfig == work.resolve() / "kubeconfig"
        assert kubeconfig.is_file()
        status = run("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith("ready: kube-apiserver v1.")
        again = run("start")
        assert again.returncode == 1
        assert "already running" in again.stderr
        pids = list(envtest.ControlPlane.attach(work.resolve()).pids.values())
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not any(_pid_alive(pid) for pid in pids)
    assert run("status").returncode == 1
    assert (work / "logs" / "kube-apiserver.log").is_file()
    assert not (work / "etcd-data").exists()
