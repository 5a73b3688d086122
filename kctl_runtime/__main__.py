"""``python -m kctl_runtime``: the developer commands, one sub-command each.

Contract
--------
* ``crd MODULE:CLASS [MODULE:CLASS ...]`` prints the CustomResourceDefinition generated from the
  :class:`~kctl_runtime.customresource.CustomResource` classes (one per version) as YAML;
  ``-o FILE`` writes it instead, ``--check`` exits 1 when ``FILE`` differs from what it would write.
* ``rbac MODULE:FACTORY`` prints the RBAC manifests for the :class:`~kctl_runtime.rbac.Permissions`
  at ``MODULE:FACTORY`` (the object, or a zero-argument callable returning one); ``--watch-namespace
  NS`` gives the namespace-scoped variant, ``--sharded`` the overlay that running sharded adds
  (:func:`~kctl_runtime.rbac.manifests`). ``-o`` and ``--check`` as above.
* ``init NAME`` creates a controller project to start from (:mod:`kctl_runtime.scaffold`; its
  options are ``python -m kctl_runtime init --help``).
* A user mistake (a target that does not import, a model that is not structural, a bad declaration)
  is one ``python -m kctl_runtime <cmd>: error: ...`` line on stderr and exit status 2, never a
  traceback.

Adding a sub-command: write ``add_<name>(subparsers)`` that registers its parser with
``set_defaults(run=...)`` (a function of the parsed arguments returning the exit status) and append
it to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kctl_runtime.crdgen import StructuralSchemaError, crd_yaml
from kctl_runtime.customresource import CustomResource
from kctl_runtime.rbac import Permissions, rbac_yaml

__all__ = ["COMMANDS", "load_object", "main"]

PROG = "python -m kctl_runtime"


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""


def load_object(target: str) -> Any:
    """The object named ``MODULE:NAME`` (``NAME`` may be dotted); :class:`UsageError` if absent."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{target!r} is not MODULE:NAME")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _emit(text: str, output: str | None, check: bool) -> int:
    if check:
        if output is None:
            raise UsageError("--check needs -o FILE")
        path = Path(output)
        if not path.exists() or path.read_text() != text:
            print(f"{PROG}: {output} is stale; regenerate it without --check", file=sys.stderr)
            return 1
        return 0
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
    return 0


def _run_crd(args: argparse.Namespace) -> int:
    models: list[type[CustomResource]] = []
    for target in args.classes:
        found = load_object(target)
        if not (isinstance(found, type) and issubclass(found, CustomResource)):
            raise UsageError(f"{target} is not a CustomResource class")
        models.append(found)
    return _emit(crd_yaml(*models), args.output, args.check)


def _run_rbac(args: argparse.Namespace) -> int:
    found = load_object(args.factory)
    if not isinstance(found, Permissions | type) and callable(found):
        found = found()
    if not isinstance(found, Permissions):
        raise UsageError(f"{args.factory} is neither Permissions nor a function returning Permissions")
    if args.sharded and args.watch_namespace:
        raise UsageError("--sharded and --watch-namespace do not combine: one overlay at a time")
    text = rbac_yaml(found, source=args.factory, watch_namespace=args.watch_namespace, sharded=args.sharded)
    return _emit(text, args.output, args.check)


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="write to FILE instead of standard output")
    parser.add_argument("--check", action="store_true", help="exit 1 if FILE is not what would be written")


def add_crd(subparsers: Any) -> None:
    parser = subparsers.add_parser("crd", help="print the CRD generated from CustomResource classes")
    parser.add_argument("classes", nargs="+", metavar="MODULE:CLASS", help="one class per version")
    _output_options(parser)
    parser.set_defaults(run=_run_crd)


def add_rbac(subparsers: Any) -> None:
    parser = subparsers.add_parser("rbac", help="print least-privilege RBAC for declared Permissions")
    parser.add_argument("factory", metavar="MODULE:FACTORY")
    parser.add_argument("--watch-namespace", help="a Role in this namespace instead of a ClusterRole")
    parser.add_argument(
        "--sharded", action="store_true", help="the overlay that sharding adds to the cluster-wide RBAC"
    )
    _output_options(parser)
    parser.set_defaults(run=_run_rbac)


def add_init(subparsers: Any) -> None:
    # Listed here for --help; main() hands ``init ...`` to the scaffold's own parser unparsed.
    subparsers.add_parser("init", help="create a controller project (init --help lists the options)")


COMMANDS: list[Callable[[Any], None]] = [add_crd, add_rbac, add_init]
"""Each registers one sub-command (module doc)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["init"]:
        from kctl_runtime.scaffold import main as init

        return init(args_list[1:], prog=f"{PROG} init")
    parser = argparse.ArgumentParser(prog=PROG, description="kctl-runtime developer commands")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(subparsers)
    args = parser.parse_args(args_list)
    try:
        status: int = args.run(args)
    except (UsageError, StructuralSchemaError, ValueError, TypeError) as exc:
        print(f"{PROG} {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
