"""Running benchmarks and keeping their results.

A benchmark is a module of ``bench`` with ``TITLE``, ``run() -> dict`` (the measurements, raw),
``figures(details) -> list[Figure]`` (what they mean against their targets) and ``report(details)``
(prints them). Running one saves ``bench/results/<name>.json``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from bench.results import RESULTS_DIR, Result, measuring, save, stamp

BENCHMARKS = [
    "load_accuracy",
    "load_ceiling",
    "gateway_overhead",
    "sidecar_overhead",
    "observability",
    "cold_start",
    "tracestore_memory",
    "recovery",
]


def module(name: str) -> ModuleType:
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name}; known: {', '.join(BENCHMARKS)}")
    return importlib.import_module(f"bench.{name}")


def run_benchmark(name: str, directory: Path = RESULTS_DIR) -> Result:
    """Runs one benchmark, prints its report and saves its result."""
    bench = module(name)
    with measuring() as machine:
        details = bench.run()
    result = stamp(Result(name, bench.TITLE, bench.figures(details), details), machine)
    bench.report(details)
    path = save(result, directory)
    print(f"  saved {path}")
    return result


def main_of(name: str) -> None:
    """``python -m bench.<name>``: the same as ``python -m bench <name>``."""
    from bench.table import terminal_table

    result = run_benchmark(name)
    print(terminal_table([(name, result)]))
