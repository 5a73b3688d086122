"""``python -m kctl_runtime COMMAND``: the library's commands.

Commands: ``init NAME`` -- create a controller project (:mod:`kctl_runtime.scaffold`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python -m kctl_runtime init NAME [--help]"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; an unknown one is a usage error (exit status 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "init":
        from kctl_runtime.scaffold import main as init

        return init(args[1:])
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    print(USAGE, file=sys.stderr)
    problem = f"unknown command {args[0]!r}" if args else "a command is needed"
    print(f"python -m kctl_runtime: error: {problem}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
