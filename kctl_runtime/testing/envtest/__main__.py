"""``python -m kctl_runtime.testing.envtest start|status|stop|build``: a plane outside pytest; binaries.

``start`` starts a control plane that outlives the command, writes ``kubeconfig`` and ``state.json``
(pids, port) into DIR and prints the kubeconfig path as its last stdout line; ``status`` exits 0 when
it is running and ready, 1 otherwise; ``stop`` stops it (exit 0 also when nothing was running).
Errors go to stderr as one line, exit status 1.

``build [--quiet-if-unavailable] [--print-dir]`` compiles etcd, kube-apiserver,
kube-controller-manager and kubectl from the Go module shipped in this package (``gobuild/``; needs
Go 1.26, once, several minutes) into :func:`~kctl_runtime.testing.envtest.default_assets_dir`, and
prints that folder as its last stdout line; ``hack/envtest/build.sh`` in the repository runs the
same script. Its exit status is the script's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kctl_runtime.testing.envtest._binaries import BUILD_SCRIPT
from kctl_runtime.testing.envtest._errors import EnvtestUnavailable
from kctl_runtime.testing.envtest._plane import DEFAULT_START_TIMEOUT, ControlPlane


def default_dir() -> Path:
    """Where ``start``, ``status`` and ``stop`` meet when ``--dir`` is not given."""
    return Path(tempfile.gettempdir()) / f"kctl-envtest-{os.getuid()}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kctl_runtime.testing.envtest",
        description="Run a real Kubernetes control plane (etcd, kube-apiserver, "
        "kube-controller-manager) on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("start", "start a control plane that keeps running; print the kubeconfig path"),
        ("status", "exit 0 if the plane in DIR is running and ready"),
        ("stop", "stop the plane in DIR"),
    ):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("--dir", type=Path, default=None, help=f"state folder (default {default_dir()})")
        if name == "start":
            cmd.add_argument(
                "--no-controller-manager",
                action="store_true",
                help="run only etcd and kube-apiserver",
            )
            cmd.add_argument(
                "--timeout",
                type=float,
                default=None,
                help=f"seconds to wait for readiness (default $KCTL_ENVTEST_START_TIMEOUT or "
                f"{DEFAULT_START_TIMEOUT:.0f})",
            )
    build = sub.add_parser(
        "build",
        help="compile etcd, kube-apiserver, kube-controller-manager and kubectl (needs Go 1.26); "
        "print the folder to use as KUBEBUILDER_ASSETS",
    )
    build.add_argument(
        "--quiet-if-unavailable",
        action="store_true",
        help="without Go: say so on stderr and exit 0 instead of failing",
    )
    build.add_argument("--print-dir", action="store_true", help="print the asset folder, build nothing")
    return parser


def build(quiet_if_unavailable: bool = False, print_dir: bool = False) -> int:
    """Run the shipped build script (module doc); its output passes through. Returns its exit status."""
    bash = shutil.which("bash")
    if bash is None:
        print(
            "envtest: the build script needs bash; or set KUBEBUILDER_ASSETS to a folder with etcd and "
            "kube-apiserver (setup-envtest's output works)",
            file=sys.stderr,
        )
        return 1
    argv = [bash, str(BUILD_SCRIPT)]
    argv += ["--quiet-if-unavailable"] if quiet_if_unavailable else []
    argv += ["--print-dir"] if print_dir else []
    return subprocess.run(argv, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        return build(args.quiet_if_unavailable, args.print_dir)
    work: Path = (args.dir or default_dir()).resolve()
    try:
        if args.command == "start":
            plane = ControlPlane.from_environment(
                work_dir=work,
                controller_manager=False if args.no_controller_manager else None,
                start_timeout=args.timeout,
            )
            plane.start()
            plane.detach()
            print(plane.describe(), file=sys.stderr)
            print(plane.kubeconfig_path)
            return 0
        if args.command == "status":
            plane = ControlPlane.attach(work)
            alive = ", ".join(
                f"{name} {'up' if up else 'DOWN'}" for name, up in plane.processes_alive().items()
            )
            ready = plane.is_ready()
            print(f"{'ready' if ready else 'NOT READY'}: {plane.describe()}; {alive}")
            print(plane.kubeconfig_path)
            return 0 if ready else 1
        try:
            plane = ControlPlane.attach(work)
        except EnvtestUnavailable:
            print(f"no control plane in {work}", file=sys.stderr)
            return 0
        plane.stop()
        print(f"stopped the control plane in {work}", file=sys.stderr)
        return 0
    except EnvtestUnavailable as exc:
        print(f"envtest: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
