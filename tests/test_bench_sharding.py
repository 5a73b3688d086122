"""Smoke test of the sharding benchmark (benchmarks/bench_sharding.py) at a tiny N, so it cannot rot:
1, 2 and 3 shard processes of the Website example on envtest, converge and rebalance after a kill.
Not timed: it checks that every run converges and the page has one row per shard count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kctl_runtime.testing.pytest_plugin import envtest_binaries

ROOT = Path(__file__).resolve().parent.parent


def test_the_sharding_benchmark_runs_one_two_and_three_shards_at_a_tiny_n(tmp_path: Path) -> None:
    envtest_binaries()  # skips, or fails in CI, without them
    page = tmp_path / "sharding.md"
    done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted below
        [sys.executable, "-m", "benchmarks.bench_sharding", "--quick", "--n", "6", "--output", str(page)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = page.read_text()
    for shards in (1, 2, 3):
        assert f"\n| {shards} | " in text
    assert done.stdout.count("rebalanced") == 2
