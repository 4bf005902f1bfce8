"""Inline SVG plots of a load run (no plotting dependency): latency over time and a histogram.

Latency axes are logarithmic: a run's interesting parts are a few milliseconds and the stalls of a
second that open-loop measurement exposes, on one picture.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from inferbox.load.records import OK, Floats, Records

WIDTH, HEIGHT = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 20, 40
COLOURS = {"p50": "#0969da", "p99": "#cf222e", "max": "#8250df", "error": "#cf222e", "event": "#fb8500"}


def _log_axis(low_ms: float, high_ms: float) -> tuple[float, float]:
    low = math.floor(math.log10(max(low_ms, 0.01)))
    high = math.ceil(math.log10(max(high_ms, low_ms * 10, 0.1)))
    return float(low), float(max(high, low + 1))


def _y(value_ms: float, axis: tuple[float, float]) -> float:
    low, high = axis
    frac = (math.log10(max(value_ms, 10**low)) - low) / (high - low)
    return TOP + (1 - frac) * (HEIGHT - TOP - BOTTOM)


def _y_ticks(axis: tuple[float, float]) -> list[str]:
    out = []
    for power in range(int(axis[0]), int(axis[1]) + 1):
        value = 10.0**power
        y = _y(value, axis)
        label = f"{value:g} ms" if value < 1000 else f"{value / 1000:g} s"
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>'
        )
    return out


def _duration(ms: float) -> str:
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms / 1000:.3g} s"


def _svg(body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui,sans-serif" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>' + "".join(body) + "</svg>"
    )


def latency_over_time(
    records: Records, total_s: float, warmup_s: float, events: Sequence[dict[str, Any]], basis: str
) -> str:
    """Per second of intended send time: p50, p99 and max latency of answered requests; errors as ticks."""
    answered = records.select(records.outcome == OK)
    seconds = max(1, math.ceil(total_s))
    rows: list[tuple[int, float, float, float]] = []
    for second in range(seconds):
        mask = (answered.intended >= second) & (answered.intended < second + 1)
        values = np.sort(answered.latency[mask]) * 1000
        if values.size:
            p99 = float(values[max(1, math.ceil(0.99 * values.size)) - 1])
            rows.append((second, float(np.median(values)), p99, float(values[-1])))
    high = max((r[3] for r in rows), default=1.0)
    low = min((r[1] for r in rows), default=0.1)
    axis = _log_axis(low, high)
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + plot_w * min(max(t, 0.0), total_s) / total_s

    body = _y_ticks(axis)
    body.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{x(warmup_s) - LEFT:.1f}" height="{HEIGHT - TOP - BOTTOM}" '
        f'fill="#f6f8fa"/><text x="{LEFT + 4}" y="{TOP + 12}" font-size="10" fill="#57606a">warm-up</text>'
    )
    for event in events:
        if "from_s" in event:
            start, end = x(event["from_s"]), x(event["to_s"])
            body.append(
                f'<rect x="{start:.1f}" y="{TOP}" width="{max(end - start, 1.5):.1f}" '
                f'height="{HEIGHT - TOP - BOTTOM}" fill="{COLOURS["event"]}" opacity="0.25">'
                f"<title>{html.escape(str(event['name']))}</title></rect>"
            )
    for key, column in (("p99", 2), ("p50", 1), ("max", 3)):
        points = " ".join(f"{x(r[0] + 0.5):.1f},{_y(r[column], axis):.1f}" for r in rows)
        dash = ' stroke-dasharray="2,3"' if key == "max" else ""
        body.append(f'<polyline points="{points}" fill="none" stroke="{COLOURS[key]}" stroke-width="1.5"{dash}/>')
    failed = records.select(records.outcome != OK)
    for t in failed.intended[:2000]:
        body.append(
            f'<line x1="{x(float(t)):.1f}" x2="{x(float(t)):.1f}" y1="{HEIGHT - BOTTOM}" '
            f'y2="{HEIGHT - BOTTOM - 8}" stroke="{COLOURS["error"]}"/>'
        )
    for tick in range(0, seconds + 1, max(1, seconds // 10)):
        body.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11">{tick}s</text>'
        )
    legend = [("p50", "p50"), ("p99", "p99"), ("max", "max"), ("error", "error (tick)"), ("event", "chaos action")]
    for i, (key, label) in enumerate(legend):
        lx = LEFT + 10 + i * 120
        body.append(
            f'<rect x="{lx}" y="{HEIGHT - 14}" width="12" height="4" fill="{COLOURS[key]}"/>'
            f'<text x="{lx + 16}" y="{HEIGHT - 9}" font-size="11">{label}</text>'
        )
    return _svg(body, f"latency over time (from the {basis}), per second")


def histogram(latency_s: Floats, marks: dict[str, float], bins: int = 48) -> str:
    """Counts of answered requests in logarithmic latency bins, with the percentiles marked."""
    values = latency_s * 1000
    if values.size == 0:
        return _svg([f'<text x="{LEFT}" y="{HEIGHT / 2}">no answered requests: no data</text>'], "histogram")
    axis = _log_axis(float(values.min()), float(values.max()))
    edges = np.logspace(axis[0], axis[1], bins + 1)
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max(1, int(counts.max()))

    def x(ms: float) -> float:
        return LEFT + plot_w * (math.log10(max(ms, edges[0])) - axis[0]) / (axis[1] - axis[0])

    body = []
    for count, (left, right) in zip(counts, itertools.pairwise(edges), strict=True):
        if count:
            # Square-root heights keep a tail of a few requests visible beside thousands.
            h = plot_h * math.sqrt(count / peak)
            body.append(
                f'<rect x="{x(left):.1f}" y="{TOP + plot_h - h:.1f}" width="{max(x(right) - x(left) - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="#57606a"><title>{left:.3g}-{right:.3g} ms: {int(count)}</title></rect>'
            )
    for power in range(int(axis[0]), int(axis[1]) + 1):
        value = 10.0**power
        label = f"{value:g} ms" if value < 1000 else f"{value / 1000:g} s"
        body.append(
            f'<text x="{x(value):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11">{label}</text>'
        )
    for i, (name, ms) in enumerate(marks.items()):
        body.append(
            f'<line x1="{x(ms):.1f}" x2="{x(ms):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#cf222e" '
            f'stroke-dasharray="3,2"/><text x="{x(ms) + 3:.1f}" y="{TOP + 12 + 12 * i}" font-size="11" '
            f'fill="#cf222e">{html.escape(name)} {_duration(ms)}</text>'
        )
    body.append(
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="11" fill="#57606a">'
        "answered requests per latency bin (bar height: square root of the count)</text>"
    )
    return _svg(body, "latency histogram")
