"""From ``pip install`` to a user's passing tests: the wheel, in a fresh virtual environment.

The wheel is built from a copy of the package sources (nothing is written into the checkout) with
pip's isolated build, so the setuptools it uses is the one pyproject.toml asks for; it is installed
into a new venv (dependencies from PyPI or pip's cache), first bare, then with the ``test`` extra,
and tests/user_project runs there with the plugin found through the wheel's entry point only: under
pytest-asyncio's strict and auto modes, on the fake API server and, when envtest binaries are found
(required in CI), on the real control plane too. Builds and installs must print no deprecation or
warning. Bounded: every subprocess has a timeout; the whole test takes 1-3 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from kctl_runtime.testing import envtest
from kctl_runtime.testing.pytest_plugin import real_tier_required

REPO = Path(__file__).resolve().parent.parent
USER_PROJECT = Path(__file__).resolve().parent / "user_project"

pytestmark = pytest.mark.slow


def run(argv: list[str | Path], *, cwd: Path, timeout: float = 600) -> str:
    """Run a command with a clean environment (no PYTHONPATH, no pytest variables); return its output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYTEST_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{output}"
    return output


def assert_quiet(output: str, what: str) -> None:
    noisy = [
        line
        for line in output.splitlines()
        # setuptools' banners (e.g. "project.license as a TOML table is deprecated", framed by "!!")
        # and pip's own "WARNING:" lines; not distutils' "byte-compiling is disabled" notes.
        if "deprecat" in line.lower() or line.strip().startswith("!!") or line.startswith("WARNING")
    ]
    assert not noisy, f"{what} printed:\n" + "\n".join(noisy)


def build_wheel(work: Path) -> Path:
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "kctl_runtime",
        source / "kctl_runtime",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    output = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", work / "dist", source], cwd=work
    )
    assert_quiet(output, "building the wheel")
    (wheel,) = (work / "dist").glob("kctl_runtime-*.whl")
    return wheel


def test_a_fresh_project_installs_the_wheel_and_its_tests_pass_with_the_shipped_plugin(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    wheel = build_wheel(tmp_path)
    print(f"wheel built: {time.monotonic() - started:.0f} s")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert f"{dist_info}/licenses/LICENSE" in names
    for shipped in ("py.typed", "testing/envtest/gobuild/build.sh", "testing/envtest/gobuild/go.mod"):
        assert f"kctl_runtime/{shipped}" in names, shipped
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert (
        "[pytest11]\nkctl_runtime.testing.pytest_plugin = kctl_runtime.testing.pytest_plugin" in entry_points
    )

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    assert_quiet(run([python, "-m", "pip", "install", wheel], cwd=tmp_path), "pip install kctl-runtime")
    print(f"installed: {time.monotonic() - started:.0f} s")
    # What the README's library section promises from a bare install: the library, the fake API
    # server and the envtest commands, without pytest.
    bare = run(
        [
            python,
            "-c",
            "import sys, kctl_runtime, kctl_runtime.testing, kctl_runtime.testing.fakeapi;"
            "print(kctl_runtime.__file__); print('pytest' in sys.modules)",
        ],
        cwd=tmp_path,
    ).split()
    assert bare[0].startswith(str(venv)), bare
    assert bare[1] == "False"
    assert "usage:" in run([python, "-m", "kctl_runtime.testing.fakeapi", "--help"], cwd=tmp_path)
    printed = run([python, "-m", "kctl_runtime.testing.envtest", "build", "--print-dir"], cwd=tmp_path)
    assert printed.strip().endswith(envtest.KUBERNETES_VERSION)
    installed = f"{wheel}[test]"
    assert_quiet(run([python, "-m", "pip", "install", installed], cwd=tmp_path), "pip install [test]")

    print(f"installed [test]: {time.monotonic() - started:.0f} s")
    project = Path(shutil.copytree(USER_PROJECT, tmp_path / "project"))
    backends = "fake"
    try:
        envtest.Binaries.find()
        backends = "fake,real"
    except envtest.EnvtestUnavailable as exc:
        if real_tier_required():
            pytest.fail(f"real control plane required (CI) but unavailable: {exc}")
    for mode in ("strict", "auto"):
        output = run(
            [
                python,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-o",
                f"asyncio_mode={mode}",
                "--backend",
                backends,
            ],
            cwd=project,
        )
        expected = 3 if backends == "fake,real" else 2
        assert f"{expected} passed" in output, output
        assert "warning" not in output.lower(), output
        print(f"user project, asyncio_mode={mode}, backends {backends}: {output.strip().splitlines()[-1]}")
        backends = "fake"  # the real tier once is enough: its start-up is most of its cost
    print(f"wheel -> fresh venv -> user project: {time.monotonic() - started:.0f} s")
