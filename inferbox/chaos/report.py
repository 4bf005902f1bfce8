"""The chaos section of summary.html: per experiment the hypothesis before and after, the fault
window, the success ratio and p50/p99 during the fault, the recovery time, and the timeline plot."""

from __future__ import annotations

import html
from typing import Any

COLUMNS = (
    "experiment",
    "before",
    "after",
    "fault window (s)",
    "success ratio",
    "p50 / p99 (ms)",
    "recovery (s)",
    "promises",
)


def _during(judgement: dict[str, Any]) -> dict[str, Any]:
    windows = (judgement.get("figures") or {}).get("windows") or []
    named = [w for w in windows if w.get("name") not in ("before", "after")]
    return named[0] if named else {}


def _recovery(judgement: dict[str, Any]) -> str:
    for verdict in judgement.get("verdicts") or []:
        if (verdict["name"].endswith("-s") and "recover" in verdict["name"]) or verdict[
            "name"
        ] == "replacement-ready-s":
            return str(verdict["value"])
    return ""


INTRO = (
    "Each experiment under load: the steady-state hypothesis before and after, the fault window on the "
    "prober's timeline, valid requests answered and their wait during it, and the recovery time."
)


def chaos_section(report: dict[str, Any]) -> str:
    """The section's body, or "" when no chaos check ran (timeline plots are paths relative to the report)."""
    rows, plots = [], []
    for test in report.get("tests", []):
        figure = (test.get("figures") or {}).get("chaos")
        if not isinstance(figure, dict):
            continue
        judgement = figure.get("judgement") or {}
        during = _during(judgement)
        broken = [v["name"] for v in judgement.get("verdicts") or [] if not v["passed"]]
        cells = [
            html.escape(str(figure.get("title", figure.get("experiment")))),
            str(figure.get("before")),
            str(figure.get("after")),
            f"{during.get('from_s', '')} - {during.get('to_s', '')}" if during else "",
            str(during.get("success_ratio", "")),
            f"{during.get('p50_ms', '')} / {during.get('p99_ms', '')}" if during else "",
            _recovery(judgement),
            "kept"
            if judgement.get("kept")
            else html.escape("broken: " + ", ".join(broken) if broken else "not judged"),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        png = (test.get("figures") or {}).get("chaos_timeline_png")
        if png:
            plots.append(f"<h3>{cells[0]}</h3><img src='{html.escape(png)}' alt='timeline of {cells[0]}' width='810'>")
    if not rows:
        return ""
    header = "".join(f"<th>{c}</th>" for c in COLUMNS)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>{''.join(plots)}"
