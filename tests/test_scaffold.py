"""``python -m kctl_runtime init NAME``: the generated project lints, type-checks and passes its tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kctl_runtime.scaffold import main, project_names
from kctl_runtime.testing.envtest import Binaries, EnvtestUnavailable

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "MYPYPATH": str(REPO), **env}
    environ.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        args, cwd=cwd, env=environ, capture_output=True, text=True, timeout=600, check=False
    )


def generate(tmp_path: Path, *argv: str) -> Path:
    result = run([sys.executable, "-m", "kctl_runtime", "init", *argv], tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / argv[0]


def real_assets() -> Path | None:
    try:
        return Binaries.find().kube_apiserver.parent
    except EnvtestUnavailable:
        return None


def test_names_are_derived_and_checked() -> None:
    names = project_names("guest-book")
    assert (names.package, names.kind, names.plural, names.group, names.constant) == (
        "guest_book",
        "GuestBook",
        "guestbooks",
        "guest-book.example.com",
        "GUESTBOOKS",
    )
    assert project_names("x1", kind="Policy").plural == "policies"
    for bad, kwargs in [
        ("Guestbook", {}),
        ("json", {}),
        ("a" * 41, {}),
        ("ok", {"kind": "lower"}),
        ("ok", {"kind": "Class"}),
        ("ok", {"group": "nodot"}),
        ("ok", {"version": "1"}),
    ]:
        with pytest.raises(ValueError, match=r"must|taken|keyword"):
            project_names(bad, **kwargs)


def test_bad_input_is_one_line_and_exit_2_and_nothing_is_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["Not_A_Name", "--dir", str(tmp_path / "x")])
    assert exited.value.code == 2
    assert "error: project name 'Not_A_Name' must be a DNS label" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit):
        main(["taken", "--dir", str(tmp_path / "taken")])
    assert "not an empty directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    result = run([sys.executable, "-m", "kctl_runtime", "frobnicate"], tmp_path)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        2,
        "python -m kctl_runtime: error: argument command: invalid choice: 'frobnicate' "
        "(choose from 'crd', 'rbac', 'init')",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["guestbook"],
        ["a-rather-long-project-name-for-a-controll", "--kind", "Memcached", "--group", "cache.example.org"],
        ["b-rather-long-project-name-for-a-control", "--kind", "AbcdefghijklmnopqrsT"],
    ],
    ids=["short", "long-name", "longest-names"],
)
def test_the_generated_project_is_lint_clean_and_strictly_typed(tmp_path: Path, argv: list[str]) -> None:
    if len(argv[0]) > 40:
        argv = [argv[0][:40], *argv[1:]]
    project = generate(tmp_path, *argv)
    for args in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        result = run([str(BIN / args[0]), *args[1:]], project)
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    assert "python -m pytest" in (project / "README.md").read_text()
    assert not list(project.rglob("*.tmpl"))
    for path in project.rglob("*"):
        if path.is_file() and ".mypy_cache" not in path.parts and ".ruff_cache" not in path.parts:
            text = path.read_text()
            for key in project_names("guestbook").values():
                assert "{{" + key + "}}" not in text, (path, key)


def test_the_generated_projects_tests_pass_on_both_tiers(tmp_path: Path) -> None:
    project = generate(tmp_path, "guestbook")
    assets = real_assets()
    backends = "fake,real" if assets is not None else "fake"
    env = {"KUBEBUILDER_ASSETS": str(assets)} if assets is not None else {}
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--backend", backends],
        project,
        **env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    expected = 3 * len(backends.split(",")) + 3  # three controller tests per tier, three manifest checks
    assert f"{expected} passed" in result.stdout, result.stdout[-2000:]
