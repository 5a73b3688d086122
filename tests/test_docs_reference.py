"""The API reference (docs/reference/, mkdocstrings) covers every public module; the site config is clean."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import yaml

import kctl_runtime

REPO = Path(__file__).resolve().parent.parent


def public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(kctl_runtime.__path__, "kctl_runtime."):
        if info.name.endswith("__main__") or "._" in info.name:
            continue
        if info.name.startswith("kctl_runtime.testing.fakeapi."):
            continue  # the fake server's internals: its package page documents the public surface
        names.append(info.name)
    return names


def test_every_public_module_has_a_reference_page_in_the_nav() -> None:
    mkdocs = (REPO / "mkdocs.yml").read_text()
    pages = {
        line.split("::: ", 1)[1].strip(): path.relative_to(REPO / "docs").as_posix()
        for path in (REPO / "docs" / "reference").glob("*.md")
        for line in path.read_text().splitlines()
        if line.startswith("::: ")
    }
    missing = [name for name in public_modules() if name not in pages]
    assert not missing, f"add docs/reference/<module>.md with '::: <module>' and a nav line for: {missing}"
    for name, page in pages.items():
        importlib.import_module(name)
        assert f": {page}\n" in mkdocs, f"{page} is not in mkdocs.yml's nav"


def test_the_site_config_names_no_placeholder_address() -> None:
    text = (REPO / "mkdocs.yml").read_text()
    config = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: mkdocs' !!python tags stay text
    assert "example.invalid" not in text
    assert "repo_url" not in config or not config["repo_url"].endswith(".invalid")
    assert any(isinstance(p, dict) and "mkdocstrings" in p for p in config["plugins"])
