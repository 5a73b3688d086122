"""The shipped pytest plugin in a user's project: registered once, fixtures under strict and auto modes.

The user's project is tests/user_project, copied to a temporary folder and run by a separate pytest
process that imports this checkout's kctl_runtime. Here the plugin is named with ``-p`` (the venv
may hold an editable install made before the entry point existed); tests/test_packaging.py checks
that a wheel's entry point alone loads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
USER_PROJECT = Path(__file__).resolve().parent / "user_project"
PLUGIN = "kctl_runtime.testing.pytest_plugin"


def run_pytest(
    project: Path, *args: str, pythonpath: list[Path] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KCTL_TEST_BACKENDS"))}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*(pythonpath or []), REPO])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider", "-q", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return Path(shutil.copytree(USER_PROJECT, tmp_path / "project"))


def test_the_entry_point_names_the_plugin_module_so_it_never_loads_twice() -> None:
    metadata = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert metadata["project"]["entry-points"]["pytest11"] == {PLUGIN: PLUGIN}
    assert "pytest_plugins" not in (REPO / "conftest.py").read_text().replace('"pytest_plugins"', "")


def test_this_session_has_the_plugin_exactly_once(request: pytest.FixtureRequest) -> None:
    loaded = [
        plugin
        for plugin in request.config.pluginmanager.get_plugins()
        if getattr(plugin, "__name__", None) == PLUGIN
    ]
    assert len(loaded) == 1


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_kube_fixtures_work_in_a_users_project(project: Path, mode: str) -> None:
    done = run_pytest(project, "-o", f"asyncio_mode={mode}", "--backend", "fake")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout


def test_a_project_that_uses_no_fixture_sees_nothing_of_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_plain() -> None:\n    assert True\n")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    done = run_pytest(tmp_path, "-rA")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "REAL TIER" not in done.stdout
    assert "real tier" not in done.stdout


def test_without_pytest_asyncio_the_fixtures_say_what_to_install(tmp_path: Path) -> None:
    shim = tmp_path / "no_pytest_asyncio"
    (shim / "pytest_asyncio").mkdir(parents=True)
    (shim / "pytest_asyncio" / "__init__.py").write_text("raise ImportError('not installed')\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_needs_kube.py").write_text("def test_needs_kube(kube: object) -> None:\n    pass\n")
    # pytest-asyncio's own entry point is blocked, and importing it fails as if it were not installed
    done = run_pytest(project, "-p", "no:asyncio", "--backend", "fake", pythonpath=[shim])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "needs pytest-asyncio: pip install 'kctl-runtime[test]'" in done.stdout
    assert "Traceback" not in done.stdout
