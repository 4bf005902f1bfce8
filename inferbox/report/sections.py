"""Extra sections of summary.html, built from the figures the checks recorded.

Each provider takes the run's report and returns HTML (or nothing when its figures are absent), so
an area adds its own section here without touching the page's layout.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

Provider = Callable[[dict[str, Any]], str]
PART_COLOURS = {
    "activation": "#8250df",
    "pod_start": "#bf8700",
    "model_load": "#0969da",
    "first_response": "#1a7f37",
}


def _model_of(test_id: str) -> str:
    return test_id.rsplit("[", 1)[-1].rstrip("]") if "[" in test_id else test_id


def _cycle_bars(cycles: list[dict[str, Any]], scale_s: float, budget_s: float | None) -> str:
    """One horizontal bar per cold start, split into its parts (an inline SVG)."""
    width, bar, gap, left = 560, 14, 6, 70
    height = len(cycles) * (bar + gap) + 24
    px = (width - left - 10) / max(scale_s, 1e-6)
    out = [f'<svg width="{width}" height="{height}" role="img" aria-label="cold starts by part">']
    for row, cycle in enumerate(cycles):
        y, x = row * (bar + gap), float(left)
        out.append(f'<text x="0" y="{y + bar - 3}" font-size="11">cycle {cycle.get("cycle", row + 1)}</text>')
        for part, colour in PART_COLOURS.items():
            span = float(cycle.get(part, 0.0)) * px
            title = f"{part}: {float(cycle.get(part, 0.0)):.3f}s"
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(span, 0.5):.1f}" height="{bar}" fill="{colour}">'
                f"<title>{html.escape(title)}</title></rect>"
            )
            x += span
        out.append(f'<text x="{x + 4:.1f}" y="{y + bar - 3}" font-size="11">{float(cycle["total"]):.2f}s</text>')
    if budget_s is not None and budget_s <= scale_s:
        bx = left + budget_s * px
        out.append(
            f'<line x1="{bx:.1f}" x2="{bx:.1f}" y1="0" y2="{height - 20}" stroke="#cf222e" stroke-dasharray="4"/>'
        )
        out.append(f'<text x="{bx + 3:.1f}" y="{height - 8}" font-size="11" fill="#cf222e">budget</text>')
    out.append("</svg>")
    return "".join(out)


def cold_starts(report: dict[str, Any]) -> str:
    """Cold starts per model: distribution, breakdown medians and one bar per cycle."""
    rows, plots = [], []
    for test in report.get("tests", []):
        figures = test.get("figures") or {}
        stats = figures.get("cold_start_s")
        if not isinstance(stats, dict):
            continue
        model = html.escape(_model_of(test["id"]))
        parts = figures.get("cold_start_breakdown_median_s") or {}
        rows.append(
            f"<tr><td>{model}</td>"
            + "".join(f"<td>{stats.get(k, '')}</td>" for k in ("n", "min", "median", "p90", "max"))
            + "".join(f"<td>{parts.get(p, '')}</td>" for p in PART_COLOURS)
            + "</tr>"
        )
        cycles = figures.get("cold_start_cycles") or []
        if cycles:
            budget = figures.get("cold_start_budget_s")
            scale = max([float(c["total"]) for c in cycles] + ([float(budget)] if budget else []))
            plots.append(f"<h3>{model}</h3>{_cycle_bars(cycles, scale * 1.1, budget)}")
    if not rows:
        return ""
    legend = " ".join(
        f'<span style="color:{colour}">&#9632;</span> {part.replace("_", " ")}' for part, colour in PART_COLOURS.items()
    )
    header = "".join(f"<th>{h}</th>" for h in ("model", "n", "min", "median", "p90", "max", *PART_COLOURS))
    return (
        "<h2>Cold starts</h2><p>Seconds from the client's request at zero replicas to its answer; the parts are "
        "medians (activation: until the platform asked for a replica; pod start; model load: process start to "
        f"ready; first response).</p><table><tr>{header}</tr>{''.join(rows)}</table><p>{legend}</p>{''.join(plots)}"
    )


def chaos(report: dict[str, Any]) -> str:
    from inferbox.chaos.report import chaos_section

    return chaos_section(report)


PROVIDERS: list[Provider] = [cold_starts, chaos]


def extra_sections(report: dict[str, Any]) -> list[str]:
    return [section for provider in PROVIDERS if (section := provider(report))]
