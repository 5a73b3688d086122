"""``python -m kctl_runtime``: the crd and rbac sub-commands, and one-line errors for user mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kctl_runtime.__main__ import main
from kctl_runtime.crdgen import crd, crd_yaml
from tests.typed_models import Gadget, WidgetV1, WidgetV1alpha1

ROOT = Path(__file__).resolve().parents[1]


def test_crd_prints_the_generated_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd", "tests.typed_models:Gadget"]) == 0
    out = capsys.readouterr().out
    assert out == crd_yaml(Gadget)
    assert yaml.safe_load(out) == crd(Gadget)


def test_crd_writes_and_checks_a_file_of_several_versions(tmp_path: Path) -> None:
    path = tmp_path / "crd.yaml"
    targets = ["tests.typed_models:WidgetV1alpha1", "tests.typed_models:WidgetV1"]
    assert main(["crd", *targets, "-o", str(path), "--check"]) == 1
    assert main(["crd", *targets, "-o", str(path)]) == 0
    assert path.read_text() == crd_yaml(WidgetV1alpha1, WidgetV1)
    assert main(["crd", *targets, "-o", str(path), "--check"]) == 0


def test_rbac_prints_the_examples_generated_rbac(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rbac", "examples.website_controller.permissions:permissions"]) == 0
    out = capsys.readouterr().out
    assert out == (ROOT / "examples/website_controller/manifests/rbac.yaml").read_text()
    assert main(["rbac", "examples.website_controller.permissions:permissions", "--sharded"]) == 0
    out = capsys.readouterr().out
    assert out == (ROOT / "examples/website_controller/manifests-sharded/rbac.yaml").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["crd", "no_such_module:X"], "cannot import 'no_such_module'"),
        (["crd", "tests.typed_models"], "is not MODULE:NAME"),
        (["crd", "tests.typed_models:Nope"], "has no attribute 'Nope'"),
        (["crd", "tests.typed_models:GadgetSpec"], "is not a CustomResource class"),
        (["crd", "tests.test_crdgen:Forest"], "Forest.spec.children[*]: the model Tree contains itself"),
        (["rbac", "tests.typed_models:Gadget"], "neither Permissions nor a function"),
        (
            [
                "rbac",
                "examples.website_controller.permissions:permissions",
                "--sharded",
                "--watch-namespace=w",
            ],
            "--sharded and --watch-namespace do not combine",
        ),
    ],
)
def test_user_mistakes_are_one_line_and_exit_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"python -m kctl_runtime {argv[0]}: error: ")
    assert message in err


def test_the_module_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kctl_runtime", "crd", "tests.typed_models:Gadget"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert yaml.safe_load(result.stdout)["metadata"]["name"] == crd(Gadget)["metadata"]["name"]
