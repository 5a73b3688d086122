"""``python -m kctl_runtime init NAME``: the generated project lints, type-checks and passes its tests.

Its CRD and RBAC are generated at init time from its ``api.py`` and ``permissions.py``; its own tests
fail when they go stale, and the README's regenerate commands bring them back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kctl_runtime import scaffold
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
        ("ok", {"kind": "ValueError"}),
        ("ok", {"group": "nodot"}),
        ("ok", {"version": "1"}),
    ]:
        with pytest.raises(ValueError, match=r"must|taken|keyword|builtin"):
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
    # Names that would bind a generated module's name twice are refused before anything is written.
    for argv, problem in [
        (["--kind", "Model"], "--kind: the name 'Model' is already used in thing/api.py"),
        (["--kind", "Field"], "--kind: the name 'Field' is already used in thing/api.py"),
        (
            ["--plural", "configmaps"],
            "--plural: the name 'CONFIGMAPS' is already used in thing/controller.py",
        ),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["thing", "--dir", str(tmp_path / "thing"), *argv])
        assert exited.value.code == 2
        assert problem in capsys.readouterr().err
        assert not (tmp_path / "thing").exists()
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
    # Per tier: four controller tests and the schema test; once: six model tests and four manifest checks.
    expected = 5 * len(backends.split(",")) + 10
    assert f"{expected} passed" in result.stdout, result.stdout[-2000:]
    assert "skipped" not in result.stdout, result.stdout[-2000:]


def test_the_manifests_are_generated_from_the_declarations_and_regenerated_as_the_readme_says(
    tmp_path: Path,
) -> None:
    project = generate(tmp_path, "guestbook")
    crd = yaml.safe_load((project / "manifests" / "crd.yaml").read_text().split("\n", 1)[1])
    (version,) = crd["spec"]["versions"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "ConfigMap", "Age"]
    data = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["data"]
    assert data["maxProperties"] == 64
    rules = yaml.safe_load_all((project / "manifests" / "rbac.yaml").read_text())
    (cluster_role,) = [d for d in rules if d["kind"] == "ClusterRole"]
    owned = {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    }
    assert owned in cluster_role["rules"]

    # Change both declarations: the project's own tests say which file is stale and how to fix it.
    api = project / "guestbook" / "api.py"
    api.write_text(api.read_text().replace("MAX_KEYS = 64", "MAX_KEYS = 32"))
    permissions = project / "guestbook" / "permissions.py"
    permissions.write_text(permissions.read_text().replace("    EVENT_RECORDER,", "    # EVENT_RECORDER,"))
    pytest_manifests = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_manifests.py",
    ]
    stale = run(pytest_manifests, project)
    assert stale.returncode == 1, stale.stdout[-3000:]
    assert "2 failed" in stale.stdout, stale.stdout[-3000:]
    for hint in (
        "crd.yaml is stale: regenerate it with `python -m kctl_runtime crd guestbook.api:Guestbook >",
        "rbac.yaml is stale: regenerate it with `python -m kctl_runtime rbac guestbook.permissions:",
    ):
        assert hint in stale.stdout, stale.stdout[-3000:]

    # The README's regenerate commands, as written there, make them current again.
    readme = (project / "README.md").read_text()
    section = readme.split("## Regenerating the CRD and the RBAC", 1)[1].split("## ", 1)[0]
    commands = re.findall(r"^python -m kctl_runtime .*$", section, flags=re.MULTILINE)
    assert len(commands) == 2, section
    for command in commands:
        done = run([sys.executable, *command.split()[1:]], project)
        assert done.returncode == 0, done.stderr
    current = run(pytest_manifests, project)
    assert current.returncode == 0, current.stdout[-3000:]
    assert "maxProperties: 32" in (project / "manifests" / "crd.yaml").read_text()
    assert "events" not in (project / "manifests" / "rbac.yaml").read_text()


def test_a_failure_while_generating_the_manifests_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(names: scaffold.ProjectNames, target: Path) -> None:
        assert (target / "guestbook" / "api.py").exists()  # the sources are written first
        raise RuntimeError("generation failed")

    monkeypatch.setattr(scaffold, "_generate_manifests", broken)
    for target, existed in [(tmp_path / "new", False), (tmp_path / "empty", True)]:
        if existed:
            target.mkdir()
        with pytest.raises(RuntimeError, match="generation failed"):
            scaffold.init_project(project_names("guestbook"), target)
        assert target.exists() == existed
        assert not existed or not any(target.iterdir())


def test_init_imports_the_new_project_without_leaving_it_imported(tmp_path: Path) -> None:
    saved_path = list(sys.path)
    target = scaffold.init_project(project_names("guestbook"), tmp_path / "guestbook")
    assert (
        (target / "manifests" / "crd.yaml")
        .read_text()
        .startswith("# Generated by `python -m kctl_runtime crd guestbook.api:Guestbook`")
    )
    assert sys.path == saved_path
    assert not [m for m in sys.modules if m == "guestbook" or m.startswith("guestbook.")]
    assert not list(target.rglob("__pycache__"))
