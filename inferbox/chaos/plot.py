"""The timeline plot of one chaos experiment (PNG): success ratio and latency per second, the fault
window shaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt

START_MARKS = ("fault", "gateway-killed", "key-staged")
END_MARKS = ("healed", "replacement-ready", "key-retired")


def fault_window(marks: dict[str, float]) -> tuple[float, float] | None:
    starts = [marks[m] for m in START_MARKS if m in marks]
    if not starts:
        return None
    start = min(starts)
    ends = [marks[m] for m in END_MARKS if m in marks and marks[m] >= start]
    return start, max(ends) if ends else start + 1.0


def timeline_png(judgement: dict[str, Any], path: Path) -> Path:
    rows = judgement["per_second"]
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    top.plot(t, [r["success_ratio"] if r["success_ratio"] is not None else float("nan") for r in rows], color="#1a7f37")
    top.set_ylabel("success ratio")
    top.set_ylim(-0.05, 1.05)
    for key, colour in (("p50_ms", "#0969da"), ("p99_ms", "#cf222e")):
        bottom.plot(t, [r[key] if r[key] is not None else float("nan") for r in rows], color=colour, label=key[:3])
    bottom.set_yscale("log")
    bottom.set_ylabel("wait (ms)")
    bottom.set_xlabel("seconds since the prober started")
    bottom.legend(loc="upper right", fontsize=8)
    window = fault_window(judgement.get("marks") or {})
    if window is not None:
        for axis in (top, bottom):
            axis.axvspan(*window, color="#fb8500", alpha=0.2, label="fault")
    fig.suptitle(f"{judgement.get('promise', '')}: {'kept' if judgement.get('kept') else 'broken'}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
