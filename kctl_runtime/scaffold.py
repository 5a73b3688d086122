"""Project scaffolding: ``python -m kctl_runtime init NAME`` writes a controller project to start from.

Contract
--------
:func:`init_project` (and :func:`main`, its command line) renders the templates shipped in
``kctl_runtime/scaffold_templates`` into a new directory (default ``./NAME``) and returns it. The
project holds:

* ``PACKAGE/api.py`` -- a namespaced custom resource ``KIND`` (``GROUP/VERSION``) declared as a
  :class:`~kctl_runtime.customresource.CustomResource` class: spec and status models with schema
  constraints, a model-only validator for what a structural schema cannot say, printer columns;
* ``PACKAGE/permissions.py`` -- the controller's :class:`~kctl_runtime.rbac.Permissions` (reads
  from its informers, declared writes);
* ``PACKAGE/controller.py`` -- a reconciler using the library's helpers: it parses each cached
  object with ``KIND.from_object`` (an object that does not parse is ``Ready=False``/``InvalidSpec``,
  a Warning event and :class:`~kctl_runtime.customresource.InvalidObject`, never a crash),
  server-side apply of an owned ConfigMap, a ``Ready`` condition through the status subresource;
  ``PACKAGE/__main__.py`` -- the command, with the standard manager flags;
* ``tests/`` -- the controller and the generated schema on both tiers through the shipped pytest
  plugin's ``kube`` fixture, the model, and "CRD/RBAC are current" checks
  (:func:`~kctl_runtime.generated.assert_current`);
* ``manifests/`` -- kustomize: ``crd.yaml`` and ``rbac.yaml`` *generated at init time* by
  :func:`~kctl_runtime.crdgen.crd_yaml` and :func:`~kctl_runtime.rbac.rbac_yaml` from the new
  project's ``api.py`` and ``permissions.py`` (imported for the moment it takes: ``sys.path`` and
  ``sys.modules`` are restored, no bytecode is written), namespace, service account, the reviews
  secure metrics need and a metrics-reader ClusterRole, a hardened Deployment serving HTTPS
  metrics; a ``Dockerfile``; a ``README.md`` with its two commands (run, test) and the two
  regenerate commands; a ``pyproject.toml`` with pytest, ruff and ``mypy --strict`` configured.

The generated code passes ruff, ``mypy --strict`` and its own tests (``tests/test_scaffold.py``
checks all three on a freshly generated project, and that the project's tests catch a stale CRD or
RBAC that the README's commands then regenerate).

Names are checked before anything is written, and every problem is a :class:`ValueError` with one
line saying what to change (on the command line: ``error: ...``, exit status 2): ``NAME`` must be a
DNS label (it names the namespace, service account and image) whose Python form is a free module
name; ``--kind`` an UpperCamelCase word whose lower case is not a Python keyword; ``--group`` a
DNS subdomain with a dot; ``--version`` a Kubernetes API version. A kind or plural that would bind
a name twice in a generated module (``--kind Model``, ``--plural configmaps``) or a builtin's name
is refused. An existing non-empty target directory is never written to; if generating the
manifests fails, what was written is removed (an empty target directory is left empty).

Not done: ``create api`` (a second resource in an existing project); webhooks in the scaffold.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import importlib
import keyword
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from types import ModuleType

from kctl_runtime.crdgen import crd_yaml
from kctl_runtime.customresource import CustomResource
from kctl_runtime.rbac import Permissions, rbac_yaml

__all__ = ["ProjectNames", "init_project", "main", "project_names"]

TEMPLATES = "scaffold_templates"
_SUFFIX = ".tmpl"
_PACKAGE_DIR = "__package__"
_MIN_KCTL_VERSION = "0.1"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,19}$")
_GROUP = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_VERSION = re.compile(r"^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$")
_RESERVED = frozenset({"kctl_runtime", "kubernetes_asyncio", "tests", "test", "conftest", "setup"})


@dataclass(frozen=True)
class ProjectNames:
    """Every name a project is rendered with (see :func:`project_names`)."""

    name: str
    package: str
    kind: str
    singular: str
    plural: str
    group: str
    version: str

    @property
    def constant(self) -> str:
        """The Python constant naming the resource, e.g. ``GUESTBOOKS``."""
        return self.plural.upper()

    def values(self) -> dict[str, str]:
        """Placeholder -> text, for the templates' ``{{placeholder}}`` marks."""
        return {
            "name": self.name,
            "package": self.package,
            "kind": self.kind,
            "singular": self.singular,
            "plural": self.plural,
            "group": self.group,
            "version": self.version,
            "constant": self.constant,
            "kctl_version": _MIN_KCTL_VERSION,
        }


def _plural(singular: str) -> str:
    if singular.endswith(("s", "x", "z", "ch", "sh")):
        return singular + "es"
    if singular.endswith("y") and singular[-2:-1] not in ("a", "e", "i", "o", "u"):
        return singular[:-1] + "ies"
    return singular + "s"


def project_names(
    name: str,
    *,
    kind: str | None = None,
    group: str | None = None,
    version: str = "v1alpha1",
    plural: str | None = None,
) -> ProjectNames:
    """Check and derive a project's names; raises :class:`ValueError` saying what to change."""
    if not _DNS_LABEL.match(name):
        raise ValueError(
            f"project name {name!r} must be a DNS label of at most 40 characters: lower-case letters, "
            "digits and '-', starting with a letter (it names the namespace, service account and image)"
        )
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in _RESERVED:
        raise ValueError(f"project name {name!r} would make the Python package {package!r}, which is taken")
    kind = kind or "".join(part.capitalize() for part in name.split("-"))
    if not _KIND.match(kind):
        raise ValueError(
            f"--kind {kind!r} must be UpperCamelCase letters and digits (at most 20), e.g. Guestbook"
        )
    if kind in vars(builtins):
        raise ValueError(f"--kind {kind!r} is a Python builtin name; choose another kind")
    singular = kind.lower()
    if keyword.iskeyword(singular) or not singular.isidentifier():
        raise ValueError(
            f"--kind {kind!r}: its lower case {singular!r} is a Python keyword; choose another kind"
        )
    plural = plural or _plural(singular)
    if not re.fullmatch(r"[a-z][a-z0-9]*", plural) or plural == singular:
        raise ValueError(f"--plural {plural!r} must be lower-case letters and digits, unlike the singular")
    group = group or f"{name}.example.com"
    if not _GROUP.match(group) or len(group) > 253:
        raise ValueError(f"--group {group!r} must be a DNS subdomain with a dot, e.g. apps.example.com")
    if not _VERSION.match(version):
        raise ValueError(
            f"--version {version!r} must be a Kubernetes API version such as v1, v1beta1, v1alpha1"
        )
    return ProjectNames(name, package, kind, singular, plural, group, version)


def _render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _walk(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found: list[tuple[tuple[str, ...], Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.extend(_walk(entry, (*prefix, entry.name)))
        elif entry.name.endswith(_SUFFIX):
            found.append(((*prefix, entry.name[: -len(_SUFFIX)]), entry))
    return found


def _bound_names(node: ast.stmt) -> list[str]:
    """The module-level names one statement binds (imports, assignments, definitions)."""
    if isinstance(node, ast.Import):
        return [alias.asname or alias.name.partition(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [] if node.module == "__future__" else [alias.asname or alias.name for alias in node.names]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _check_collisions(names: ProjectNames, rendered: Sequence[tuple[Path, str]], target: Path) -> None:
    """Refuse names that bind a module-level name twice in a generated module (kind ``Model``, ...)."""
    for path, text in rendered:
        if path.suffix != ".py":
            continue
        seen: set[str] = set()
        for node in ast.parse(text, filename=str(path)).body:
            for bound in _bound_names(node):
                if bound in seen and bound in (names.kind, names.constant):
                    option = "--kind" if bound == names.kind else "--plural"
                    raise ValueError(
                        f"{option}: the name {bound!r} is already used in {path.relative_to(target)}; "
                        "choose another kind or plural"
                    )
                seen.add(bound)


@contextlib.contextmanager
def _imported_from(directory: Path, package: str) -> Iterator[None]:
    """Make ``package`` importable from ``directory`` for a moment; leave ``sys`` as it was."""

    def ours() -> dict[str, ModuleType]:
        return {k: v for k, v in sys.modules.items() if k == package or k.startswith(package + ".")}

    saved_modules, saved_path, saved_bytecode = ours(), list(sys.path), sys.dont_write_bytecode
    for key in saved_modules:
        del sys.modules[key]
    sys.path.insert(0, str(directory))
    sys.dont_write_bytecode = True  # no __pycache__ in the new project
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for key in ours():
            del sys.modules[key]
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode


def _generate_manifests(names: ProjectNames, target: Path) -> None:
    """Write ``manifests/crd.yaml`` and ``manifests/rbac.yaml`` from the new project's declarations.

    The same calls the regenerate commands make (``python -m kctl_runtime crd``/``rbac``), so the
    project's "manifests are current" tests pass from the start.
    """
    with _imported_from(target, names.package):
        api = importlib.import_module(f"{names.package}.api")
        permissions = importlib.import_module(f"{names.package}.permissions")
        model = getattr(api, names.kind)
        declared = permissions.permissions()
        if not (isinstance(model, type) and issubclass(model, CustomResource)):
            raise TypeError(f"{names.package}.api.{names.kind} is not a CustomResource")
        if not isinstance(declared, Permissions):
            raise TypeError(f"{names.package}.permissions.permissions() did not return Permissions")
        crd = crd_yaml(model)
        rbac = rbac_yaml(declared, source=f"{names.package}.permissions:permissions")
    (target / "manifests" / "crd.yaml").write_text(crd, encoding="utf-8")
    (target / "manifests" / "rbac.yaml").write_text(rbac, encoding="utf-8")


def init_project(names: ProjectNames, directory: Path | None = None) -> Path:
    """Write the project for ``names`` into ``directory`` (default ``./NAME``); return the directory.

    Renders every template, checks the result, writes it, then generates the CRD and RBAC from the
    project's ``api.py`` and ``permissions.py``. If generating fails, what was written is removed.
    """
    target = Path(directory) if directory is not None else Path.cwd() / names.name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} already exists and is not an empty directory; choose another --dir")
    values = names.values()
    rendered: list[tuple[Path, str]] = []
    for parts, template in _walk(files("kctl_runtime").joinpath(TEMPLATES)):
        relative = Path(*(names.package if part == _PACKAGE_DIR else part for part in parts))
        rendered.append((target / relative, _render(template.read_text(encoding="utf-8"), values)))
    _check_collisions(names, rendered, target)
    existed = target.exists()
    for path, text in rendered:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    try:
        _generate_manifests(names, target)
    except BaseException:
        if existed:
            for child in list(target.iterdir()):
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(target)
        raise
    return target


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m kctl_runtime init") -> int:
    """``init NAME [--dir DIR] [--kind KIND] [--group GROUP] [--version VERSION] [--plural PLURAL]``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Create a controller project: a custom resource, a reconciler, tests on both tiers, "
        "a Dockerfile and kustomize manifests with least-privilege RBAC.",
    )
    parser.add_argument("name", help="project name, a DNS label (e.g. guestbook)")
    parser.add_argument("--dir", type=Path, default=None, help="where to create it (default: ./NAME)")
    parser.add_argument("--kind", default=None, help="the resource's kind (default: NAME in UpperCamelCase)")
    parser.add_argument("--group", default=None, help="the API group (default: NAME.example.com)")
    parser.add_argument("--version", default="v1alpha1", help="the API version (default: v1alpha1)")
    parser.add_argument(
        "--plural", default=None, help="the resource's plural (default: derived from the kind)"
    )
    args = parser.parse_args(argv)
    try:
        names = project_names(
            args.name, kind=args.kind, group=args.group, version=args.version, plural=args.plural
        )
        target = init_project(names, args.dir)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    print(f"created {names.name} ({names.kind}, {names.group}/{names.version}) in {target}")
    print(f"next: cd {target} && python -m pytest --backend fake   (README.md has the rest)")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m kctl_runtime.scaffold"))
