"""``python -m bench [NAME ...]`` runs the named benchmarks (all by default) and prints their figures."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["gateway_overhead", "sidecar_overhead", "load_generator", "observability", "cold_start", "recovery"]


def main() -> None:
    names = sys.argv[1:] or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for name in names:
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
