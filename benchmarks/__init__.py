"""Benchmarks: speed and memory targets live here, not in timed unit tests.

Run them all with ``python -m benchmarks`` (``make bench``) or one with
``python -m benchmarks.bench_<name>``; each prints a markdown table and writes it into
``docs/benchmarks/<name>.md``.
"""
