"""Tests for the standard controller command-line options and preflight (kctl_runtime.cli)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from kctl_runtime.cli import (
    DEFAULT_WORKERS,
    add_manager_arguments,
    leader_election_from_args,
    positive_int,
    positive_seconds,
    preflight,
)
from kctl_runtime.config import ConfigError
from kctl_runtime.resource import CONFIGMAPS, Resource
from kctl_runtime.testing.pytest_plugin import KubeTarget


def parse(argv: list[str], environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctl")
    add_manager_arguments(parser, lease_name="ctl-lease", environ=environ)
    return parser.parse_args(argv)


def test_defaults_are_safe_for_a_laptop() -> None:
    args = parse([], {})
    assert args.namespace is None
    assert args.leader_elect is False
    assert args.lease_name == "ctl-lease"
    assert (args.health_bind, args.metrics_bind) == ("127.0.0.1:8081", "127.0.0.1:8080")
    assert (args.log_format, args.log_level) == ("console", "info")


def test_flags_win_over_the_environment_and_the_environment_over_defaults() -> None:
    env = {"KCTL_NAMESPACE": "team-a", "KCTL_LEADER_ELECT": "yes", "KCTL_METRICS_BIND": "off"}
    args = parse([], env)
    assert (args.namespace, args.leader_elect, args.metrics_bind) == ("team-a", True, None)
    args = parse(["--namespace", "team-b", "--no-leader-elect", "--log-format", "json"], env)
    assert (args.namespace, args.leader_elect, args.log_format) == ("team-b", False, "json")


@pytest.mark.parametrize(
    "environ", [{"KCTL_LEADER_ELECT": "maybe"}, {"KCTL_LOG_FORMAT": "xml"}], ids=["bool", "log-format"]
)
def test_a_bad_environment_value_is_a_usage_error(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse([], environ)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_flag_overrides_a_bad_log_format_in_the_environment() -> None:
    assert parse(["--log-format", "json"], {"KCTL_LOG_FORMAT": "xml"}).log_format == "json"


def test_positive_seconds_rejects_zero_and_words() -> None:
    assert positive_seconds("2.5") == 2.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_seconds(bad)


def test_workers_default_suits_an_io_bound_reconciler_and_can_be_set_by_flag_or_environment() -> None:
    assert parse([], {}).workers == DEFAULT_WORKERS > 1
    assert parse([], {"KCTL_WORKERS": "4"}).workers == 4
    assert parse(["--workers", "2"], {"KCTL_WORKERS": "4"}).workers == 2


@pytest.mark.parametrize("bad", ["0", "-3", "many", "1.5"])
def test_a_bad_worker_count_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(bad)
    for argv, environ in (([f"--workers={bad}"], {}), ([], {"KCTL_WORKERS": bad})):
        with pytest.raises(SystemExit) as exited:
            parse(argv, environ)
        assert exited.value.code == 2
        assert "--workers" in capsys.readouterr().err


def test_leader_election_takes_the_pods_namespace_in_a_cluster(tmp_path: Path) -> None:
    assert leader_election_from_args(parse([], {})) is None
    args = parse(["--leader-elect"], {})
    with pytest.raises(ConfigError, match="--lease-namespace"):
        leader_election_from_args(args, tmp_path / "absent")
    pod_namespace = tmp_path / "namespace"
    pod_namespace.write_text("controllers\n")
    config = leader_election_from_args(args, pod_namespace)
    assert config is not None
    assert (config.lease_namespace, config.lease_name) == ("controllers", "ctl-lease")
    explicit = leader_election_from_args(parse(["--leader-elect", "--lease-namespace", "x"], {}))
    assert explicit is not None
    assert explicit.lease_namespace == "x"


async def test_preflight_passes_when_the_resources_are_served(kube: KubeTarget) -> None:
    await preflight(kube.api_client, [CONFIGMAPS])


async def test_preflight_names_a_missing_resource_and_how_to_install_it(kube: KubeTarget) -> None:
    missing = Resource("nothing.example.com", "v1", "widgets", "Widget")
    with pytest.raises(ConfigError, match=r"does not serve nothing.example.com/v1 Widget: apply crd.yaml"):
        await preflight(kube.api_client, [missing], install_hint="apply crd.yaml")


async def test_preflight_says_when_the_api_server_cannot_be_reached(kube: KubeTarget) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again on exit: nothing listens there
    client = await kube.new_api_client()
    client.configuration.host = f"http://127.0.0.1:{port}"
    with pytest.raises(ConfigError, match="cannot reach the API server"):
        await preflight(client, [CONFIGMAPS])


@pytest.mark.parametrize(
    "program", ["examples.website_controller", "examples.user_controller", "examples.loadtest"]
)
def test_help_shows_every_flags_help_environment_variable_and_default(program: str) -> None:
    import re
    import subprocess
    import sys

    parser = argparse.ArgumentParser(prog="ctl")
    add_manager_arguments(parser, lease_name="ctl-lease", environ={})
    for action in parser._actions:
        if action.dest != "help":
            assert action.help, action.dest
            assert "(env KCTL_" in action.help, action.dest
            assert "; default: " in action.help, action.dest
    shown = subprocess.run(
        [sys.executable, "-m", program, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "1000", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    options = " ".join(shown.split("options:", 1)[1].split())  # one line; each option starts "--name"
    blocks = re.split(r" (?=--[a-z][a-z-]* [A-Z_]+ |--[a-z][a-z-]*, --no-)", options)[1:]
    assert len(blocks) >= len(parser._actions) - 1, blocks
    for block in blocks:
        assert re.search(r"\(env KCTL_[A-Z_]+; default: [^)]+\)$", block), block
