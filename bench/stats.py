"""Exact percentiles from raw samples."""

from __future__ import annotations

import math


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method on sorted raw samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    return {f"p{q:g}": round(percentile(samples_s, q) * 1000, 3) for q in (50, 90, 99)}
