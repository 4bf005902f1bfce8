"""Small inline SVG charts for the HTML reports: timelines, distributions, an interval, a grid.

Geometry is computed here; the markup is in ``templates/plots/``. Charts are inline SVG so a
report folder stays one self-contained page that opens from disk, with no script or font to fetch.

``timeline`` is the shared chart for anything over time (load, replicas, chaos): series of
(seconds, value) points plus shaded spans for intervals such as a fault being active.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from inferbox.report.templating import render

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a", "#e16f24", "#0a7e8c")
GOOD, BAD, NEUTRAL, SPAN = "#1a7f37", "#cf222e", "#8c959f", "#fb8500"


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    colour: str = ""
    dashed: bool = False
    step: bool = False  # a count that holds until the next sample (replicas), not a measurement


@dataclass
class Span:
    start: float
    end: float
    label: str
    colour: str = SPAN


@dataclass
class Frame:
    """A plot area inside an SVG of ``width`` x ``height`` with room for axis labels."""

    width: int = 860
    height: int = 260
    left: int = 64
    right: int = 72  # room for a label at the right end (the budget, the last tick)
    top: int = 16
    bottom: int = 56
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 1.0)
    y_log: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + self.plot_width * (min(max(value, low), high) - low) / ((high - low) or 1.0)

    def y(self, value: float) -> float:
        low, high = self.y_range
        if self.y_log:
            value, low, high = (math.log10(max(v, 1e-9)) for v in (value, low, high))
        frac = (min(max(value, low), high) - low) / ((high - low) or 1.0)
        return self.top + (1 - frac) * self.plot_height


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def label(value: float, unit: str = "") -> str:
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def _log_ticks(low: float, high: float) -> list[float]:
    return [10.0**p for p in range(math.floor(math.log10(max(low, 1e-9))), math.ceil(math.log10(max(high, 1e-9))) + 1)]


def timeline(
    series: Sequence[Series],
    spans: Sequence[Span] = (),
    *,
    title: str,
    y_label: str,
    x_label: str = "seconds",
    y_log: bool = False,
    width: int = 860,
    height: int = 260,
) -> Markup:
    """Lines over time (seconds from the start), with shaded spans; a log axis for latencies."""
    xs = [x for s in series for x, _ in s.points] + [v for span in spans for v in (span.start, span.end)]
    ys = [y for s in series for _, y in s.points]
    if not xs or not ys:
        return Markup("<p class='nodata'>no data to plot: {}</p>").format(title)
    x_range = (min(0.0, min(xs)), max(xs) if max(xs) > min(0.0, min(xs)) else min(xs) + 1.0)
    if y_log:
        positive = [y for y in ys if y > 0] or [1.0]
        ticks = _log_ticks(min(positive), max(positive))
        y_range = (ticks[0], ticks[-1] if ticks[-1] > ticks[0] else ticks[0] * 10)
    else:
        ticks = nice_ticks(0.0, max(max(ys), 1e-9))
        y_range = (0.0, max(ticks[-1], max(ys)))
    frame = Frame(width=width, height=height, x_range=x_range, y_range=y_range, y_log=y_log)
    lines = []
    for index, one in enumerate(series):
        points = sorted(one.points)
        if one.step:
            stepped: list[tuple[float, float]] = []
            for (x0, y0), (x1, _) in itertools.pairwise(points):
                stepped += [(x0, y0), (x1, y0)]
            points = stepped + points[-1:]
        lines.append(
            {
                "label": one.label,
                "colour": one.colour or PALETTE[index % len(PALETTE)],
                "dashed": one.dashed,
                "path": " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points),
                "single": len(points) == 1,
                "cx": frame.x(points[0][0]) if points else 0.0,
                "cy": frame.y(points[0][1]) if points else 0.0,
            }
        )
    shaded = [
        {
            "x": frame.x(s.start),
            "w": max(frame.x(s.end) - frame.x(s.start), 1.5),
            "label": s.label,
            "colour": s.colour,
        }
        for s in spans
    ]
    x_ticks = [(frame.x(t), label(t)) for t in nice_ticks(x_range[0], x_range[1], 8)]
    y_ticks = [(frame.y(t), label(t)) for t in ticks if y_range[0] <= t <= y_range[1]]
    # Legend entries side by side, each as wide as its label (about 6.5 px a character at 11 px).
    legend, x = [], float(frame.left + 8)
    for entry in [*lines, *{s["label"]: s for s in shaded}.values()]:
        legend.append({"x": x, "label": entry["label"], "colour": entry["colour"], "span": "w" in entry})
        x += 30 + 6.5 * len(str(entry["label"]))
    return render(
        "plots/timeline.svg.j2",
        legend=legend,
        frame=frame,
        title=title,
        lines=lines,
        spans=shaded,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        x_label=x_label,
        y_label=y_label,
    )


def distribution(
    values: Sequence[float], *, title: str, unit: str = "s", budget: float | None = None, width: int = 860
) -> Markup:
    """Every sample as a dot on one axis, with the median and the budget marked."""
    if not values:
        return Markup("<p class='nodata'>no samples: {}</p>").format(title)
    high = max([*values, *([budget] if budget is not None else [])])
    ticks = nice_ticks(0.0, high * 1.05)
    frame = Frame(width=width, height=92, bottom=40, top=12, x_range=(0.0, max(ticks[-1], high)))
    ordered = sorted(values)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else sum(ordered[len(ordered) // 2 - 1 :][:2]) / 2
    # Samples that land on the same pixel are stacked upwards rather than hidden behind each other.
    seen: dict[int, int] = {}
    dots = []
    for value in ordered:
        x = frame.x(value)
        lane = seen.get(round(x / 6), 0)
        seen[round(x / 6)] = lane + 1
        over = budget is not None and value > budget
        dots.append({"x": x, "y": frame.top + 30 - 7 * lane, "colour": BAD if over else PALETTE[0], "value": value})
    return render(
        "plots/distribution.svg.j2",
        frame=frame,
        title=title,
        dots=dots,
        unit=unit,
        median={"x": frame.x(median), "text": label(median, unit)},
        budget={"x": frame.x(budget), "text": label(budget, unit)} if budget is not None else None,
        x_ticks=[(frame.x(t), label(t, unit)) for t in ticks],
    )


def interval(
    *, title: str, observed: float, low: float, high: float, total: float, expected: float, unit: str = "requests"
) -> Markup:
    """An observed count against the interval a correct platform lands in, on a 0..total axis."""
    frame = Frame(height=86, top=14, bottom=40, x_range=(0.0, max(total, high, observed, 1.0)))
    inside = low <= observed <= high
    return render(
        "plots/interval.svg.j2",
        frame=frame,
        title=title,
        band={"x": frame.x(low), "w": max(frame.x(high) - frame.x(low), 2.0), "low": low, "high": high},
        expected={"x": frame.x(expected), "text": label(expected)},
        observed={"x": frame.x(observed), "text": label(observed), "colour": GOOD if inside else BAD},
        inside=inside,
        unit=unit,
        x_ticks=[(frame.x(t), label(t)) for t in nice_ticks(0.0, frame.x_range[1], 8)],
    )


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, float, str]]]],
    *,
    title: str,
    unit: str = "s",
    budget: float | None = None,
    width: int = 860,
) -> Markup:
    """One horizontal bar per row, split into coloured parts (name, value, colour)."""
    totals = [sum(v for _, v, _ in parts) for _, parts in rows]
    high = max([*totals, *([budget] if budget is not None else []), 1e-9])
    ticks = nice_ticks(0.0, high * 1.05)
    bar, gap = 14, 6
    frame = Frame(width=width, height=len(rows) * (bar + gap) + 52, left=90, top=8, bottom=44, x_range=(0.0, ticks[-1]))
    bars = []
    for index, ((name, parts), total) in enumerate(zip(rows, totals, strict=True)):
        y, x = frame.top + index * (bar + gap), frame.x(0.0)
        segments = []
        for part, value, colour in parts:
            w = frame.x(value) - frame.x(0.0)
            segments.append({"x": x, "w": max(w, 0.5), "colour": colour, "title": f"{part}: {label(value, unit)}"})
            x += w
        bars.append({"name": name, "y": y, "segments": segments, "end": x, "total": label(total, unit)})
    return render(
        "plots/bars.svg.j2",
        frame=frame,
        title=title,
        bars=bars,
        bar=bar,
        budget={"x": frame.x(budget), "text": label(budget, unit)} if budget is not None else None,
        x_ticks=[(frame.x(t), label(t, unit)) for t in ticks],
    )
