"""``python -m bench [NAME ...]``: runs the named benchmarks (all by default), saves each result in
bench/results/<name>.json and prints every saved figure against its target.

``--table`` prints that table without running anything; ``--readme`` rewrites the generated result
blocks of README.md and docs/load.md from the saved results; ``--check`` exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import sys

from bench.suite import BENCHMARKS, run_benchmark
from bench.table import all_results, differences, rewrite, terminal_table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--table", action="store_true", help="print the saved results against their targets")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md and docs/load.md from saved results")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md or docs/load.md differ from them")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if args.readme:
        changed = rewrite(all_results())
        print("rewrote " + ", ".join(str(p) for p in changed) if changed else "README.md and docs/load.md are current")
        return
    if args.check:
        stale = differences(all_results())
        if stale:
            sys.exit("generated blocks differ from bench/results: " + "; ".join(stale) + " (make bench-readme)")
        return
    if not args.table:
        for name in args.names or BENCHMARKS:
            run_benchmark(name)
            print()
    print(terminal_table(all_results()))


if __name__ == "__main__":
    main()
