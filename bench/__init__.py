"""Benchmarks: each prints figures measured side by side in one run; none asserts a wall-clock time."""
