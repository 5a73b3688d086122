"""Run every benchmark in turn (``make bench``); each writes its table into ``docs/benchmarks/``.

Each benchmark runs in a fresh interpreter so one's memory and garbage do not disturb the next.
``python -m benchmarks fakeapi queue`` runs a subset. ``workload`` needs envtest binaries
(``KUBEBUILDER_ASSETS``) and takes the longest (N = 300 and 3,000, three rounds).
Exits non-zero if any benchmark failed.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = ("fakeapi", "informer", "queue", "controller", "workload", "typed", "webhook")


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    summary: list[tuple[str, int, float]] = []
    for name in chosen:
        print(f"\n## {name}\n", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.bench_{name}"])
        summary.append((name, code, time.perf_counter() - start))
    print("\n| benchmark | result | seconds | written to |\n| --- | --- | --- | --- |")
    for name, code, seconds in summary:
        outcome = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"| {name} | {outcome} | {seconds:.1f} | docs/benchmarks/{name}.md |")
    return 0 if all(code == 0 for _, code, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
