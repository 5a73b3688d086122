"""Smoke test of the seeds' workload benchmark (benchmarks/bench_workload.py) at a tiny N, so it
cannot rot: both workloads, floor and controller, on the real tier (envtest). Not timed: it checks
that every phase converges and the page is written with one row per workload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kctl_runtime.testing.pytest_plugin import envtest_binaries

ROOT = Path(__file__).resolve().parent.parent


def test_the_workload_benchmark_runs_both_controllers_end_to_end_at_a_tiny_n(tmp_path: Path) -> None:
    envtest_binaries()  # skips, or fails in CI, without them
    page = tmp_path / "workload.md"
    done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted below
        [sys.executable, "-m", "benchmarks.bench_workload", "--quick", "--n", "5", "--output", str(page)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = page.read_text()
    assert "| website | 5 |" in text
    assert "| user | 5 |" in text
    for phase in ("website controller create", "website floor update", "user controller move"):
        assert phase in done.stdout
