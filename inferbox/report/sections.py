"""Sections of summary.html built from what the checks recorded: plots where people would rather
look than read.

Each provider takes the run's report (and its folder, for artifacts and load outputs) and returns a
``Section``, or None when the run has nothing for it. A new area adds its section by decorating a
provider with ``@section``; the page lays sections out in registration order. A chaos timeline, for
example, is a provider that reads the chaos checks' figures (fault start/end, prober results) and
draws them with ``plots.timeline`` (series of (seconds, value) and ``Span``s for the fault).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from inferbox.report import plots
from inferbox.report.templating import render


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: Markup
    intro: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)


Provider = Callable[[dict[str, Any], Path | None], Section | None]
PROVIDERS: list[Provider] = []


def section(provider: Provider) -> Provider:
    """Registers a provider of a summary.html section."""
    PROVIDERS.append(provider)
    return provider


def extra_sections(report: dict[str, Any], folder: Path | None = None) -> list[Section]:
    """Every provider's section; one that fails on unexpected figures says so in its place, so the
    page (and the run's other outputs) is still written."""
    sections = []
    for provider in PROVIDERS:
        try:
            found = provider(report, folder)
        except Exception as exc:  # a report must be written whatever one section makes of its data
            name = provider.__name__.replace("_", " ")
            found = Section(
                provider.__name__,
                name.capitalize(),
                Markup("<p class='nodata'>{}</p>").format(
                    f"this section could not be drawn: {type(exc).__name__}: {exc}"
                ),
            )
        if found is not None:
            sections.append(found)
    return sections


def case_of(test_id: str) -> str:
    """The parametrised case of a test id (``tenant-c/pytorch-resnet``), or the function's name."""
    name = test_id.rsplit("::", 1)[-1]
    return name.split("[", 1)[1].removesuffix("]") if "[" in name else name


def _tests_with(report: dict[str, Any], figure: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for test in report.get("tests", []):
        figures = test.get("figures") or {}
        if figure in figures:
            yield test, figures


def _artifact(folder: Path | None, figures: dict[str, Any], suffix: str) -> list[tuple[str, Any]]:
    """(name, parsed JSON) of the test's artifacts whose name ends with ``suffix``."""
    if folder is None:
        return []
    found = []
    for key, relative in figures.items():
        if key.startswith("artifact:") and key.endswith(suffix) and (folder / str(relative)).is_file():
            try:
                found.append((key.removeprefix("artifact:"), json.loads((folder / str(relative)).read_text())))
            except ValueError:
                continue
    return found


PART_COLOURS = {
    "activation": "#8250df",
    "pod_start": "#bf8700",
    "model_load": "#0969da",
    "first_response": "#1a7f37",
}


@section
def cold_starts(report: dict[str, Any], _folder: Path | None) -> Section | None:
    """Cold starts per model: every sample against the budget, and each cycle split into its parts."""
    models = []
    for test, figures in _tests_with(report, "cold_start_s"):
        stats = figures["cold_start_s"]
        if not isinstance(stats, dict):
            continue
        cycles = [c for c in figures.get("cold_start_cycles") or [] if isinstance(c, dict) and "total" in c]
        samples = figures.get("cold_start_samples_s") or [float(c["total"]) for c in cycles]
        budget = figures.get("cold_start_budget_s")
        budget = float(budget) if isinstance(budget, int | float) else None
        rows = [
            (
                f"cycle {c.get('cycle', i + 1)}",
                [(p, float(c.get(p, 0.0)), colour) for p, colour in PART_COLOURS.items()],
            )
            for i, c in enumerate(cycles)
        ]
        models.append(
            {
                "name": case_of(test["id"]),
                "test": test["id"],
                "outcome": test["outcome"],
                "stats": stats,
                "parts": figures.get("cold_start_breakdown_median_s") or {},
                "distribution": plots.distribution(
                    [float(v) for v in samples], title=f"cold starts of {case_of(test['id'])}", budget=budget
                ),
                "bars": plots.stacked_bars(rows, title="cold start by part", budget=budget) if rows else None,
            }
        )
    if not models:
        return None
    body = render("sections/cold_starts.html.j2", models=models, parts=PART_COLOURS)
    return Section(
        "cold-starts",
        "Cold starts",
        body,
        "Seconds from the client's request at zero replicas to its answer. Each dot is one cycle; the parts are "
        "activation (until the platform asked for a replica), pod start, model load (process start to ready) "
        "and first response.",
    )


def _canary_revision(figures: dict[str, Any], routed: dict[str, int]) -> str | None:
    named = figures.get("canary_revision")
    if isinstance(named, str) and named in routed:
        return named
    # Knative numbers revisions (-00001, -00002): the canary is the latest one.
    return max(routed) if routed else None


@section
def chaos(report: dict[str, Any], _folder: Path | None) -> Section | None:
    """Per chaos experiment: the hypothesis before and after, the fault, the prober's figures, the timeline."""
    from inferbox.chaos.report import INTRO, chaos_section

    body = chaos_section(report)  # every value in it is escaped where it is built
    return Section("chaos", "Chaos experiments", Markup(body), intro=INTRO) if body else None  # noqa: S704


@section
def canary(report: dict[str, Any], _folder: Path | None) -> Section | None:
    """The canary's observed share against the interval a correct platform lands in."""
    cases = []
    for test, figures in _tests_with(report, "canary_interval"):
        routed = figures.get("canary_routed") or {}
        bounds = figures["canary_interval"]
        revision = _canary_revision(figures, routed)
        if not isinstance(routed, dict) or revision is None or not isinstance(bounds, list) or len(bounds) != 2:
            continue
        total = float(sum(routed.values()))
        declared = float(figures.get("canary_declared_percent", 0.0))
        observed = float(routed.get(revision, 0))
        cases.append(
            {
                "name": case_of(test["id"]),
                "test": test["id"],
                "revision": revision,
                "routed": routed,
                "declared": declared,
                "share": 100 * observed / total if total else 0.0,
                "plot": plots.interval(
                    title=f"canary {revision}",
                    observed=observed,
                    low=float(bounds[0]),
                    high=float(bounds[1]),
                    total=total,
                    expected=total * declared / 100,
                ),
            }
        )
    if not cases:
        return None
    return Section(
        "canary",
        "Canary split",
        render("sections/canary.html.j2", cases=cases),
        "Requests the canary revision served, against the exact binomial interval a correct platform lands in "
        "for the profile's false-failure rate.",
    )


SYMBOL_MEANING = {
    "A": "the model answered",
    "C": "connected, but the workload's sidecar refused",
    "-": "no connection",
}


@section
def matrices(report: dict[str, Any], folder: Path | None) -> Section | None:
    """Isolation and policy-engine truth tables as coloured grids: source rows, destination columns."""
    grids = []
    for test in report.get("tests", []):
        for name, cells in _artifact(folder, test.get("figures") or {}, ".json"):
            if not (isinstance(cells, list) and cells and all(isinstance(c, dict) for c in cells)):
                continue
            if not {"source", "destination", "expected", "observed"} <= set(cells[0]):
                continue
            sources = list(dict.fromkeys(str(c["source"]) for c in cells))
            destinations = list(dict.fromkeys(str(c["destination"]) for c in cells))
            by_key = {(str(c["source"]), str(c["destination"])): c for c in cells}
            grids.append(
                {
                    "name": name,
                    "test": test["id"],
                    "sources": sources,
                    "destinations": destinations,
                    "cells": by_key,
                    "differences": sum(1 for c in cells if c["expected"] != c["observed"]),
                }
            )
    if not grids:
        return None
    return Section(
        "matrices",
        "Isolation matrices",
        render("sections/matrices.html.j2", grids=grids, meaning=SYMBOL_MEANING),
        "Every caller (rows) against every model pod and port (columns). A cell shows what was observed; "
        "red cells differ from the profile's promise, which the cell's tooltip shows with the probe's detail.",
    )


def _load_runs(folder: Path) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for summary_path in sorted((folder / "load").glob("*/summary.json")):
        timeline_path = summary_path.parent / "timeline.json"
        if not timeline_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        yield summary_path.parent.name, summary, json.loads(timeline_path.read_text())


def load_timeline_plots(timeline: dict[str, Any], events: list[dict[str, Any]]) -> tuple[Markup, Markup]:
    """Achieved against requested rate, and latency percentiles, per second of the run."""
    seconds = [float(s) + 0.5 for s in timeline["seconds"]]
    spans = [
        plots.Span(float(e["from_s"]), float(e["to_s"]), str(e.get("name", "event"))) for e in events if "from_s" in e
    ]
    rate = plots.timeline(
        [
            plots.Series("requested", list(zip(seconds, timeline["requested"], strict=True)), "#57606a", dashed=True),
            plots.Series("achieved (sent)", list(zip(seconds, timeline["achieved"], strict=True)), "#0969da"),
            plots.Series("errors", list(zip(seconds, timeline["errors"], strict=True)), "#cf222e"),
        ],
        spans,
        title="achieved rate",
        y_label="requests/s",
    )
    latency_series = []
    for key, colour in (("p50_ms", "#0969da"), ("p99_ms", "#cf222e")):
        points = [(s, v) for s, v in zip(seconds, timeline[key], strict=True) if v is not None]
        latency_series.append(plots.Series(key.removesuffix("_ms"), points, colour))
    latency = plots.timeline(latency_series, spans, title="latency", y_label="ms", y_log=True)
    return rate, latency


@section
def timelines(report: dict[str, Any], folder: Path | None) -> Section | None:
    """Load runs (rate and latency per second) and replicas under load, over time."""
    if folder is None:
        return None
    runs = []
    for name, summary, timeline in _load_runs(folder):
        rate, latency = load_timeline_plots(timeline, summary.get("events") or [])
        runs.append(
            {
                "name": name,
                "summary": summary,
                "rate": rate,
                "latency": latency,
                "link": f"load/{name}/load.html",
            }
        )
    scaling = []
    for test in report.get("tests", []):
        for name, data in _artifact(folder, test.get("figures") or {}, ".json"):
            if not name.startswith("scale-timeline") or not isinstance(data, dict):
                continue
            samples = data.get("timeline") or []
            revisions = sorted({rev for _, counts in samples for rev in counts})
            series = [
                plots.Series(rev, [(float(t), float(counts.get(rev, 0))) for t, counts in samples], step=True)
                for rev in revisions
            ]
            scaling.append(
                {
                    "name": case_of(test["id"]),
                    "test": test["id"],
                    "plot": plots.timeline(series, title=f"ready replicas of {name}", y_label="ready replicas"),
                }
            )
    if not runs and not scaling:
        return None
    return Section(
        "timelines",
        "Timelines",
        render("sections/timelines.html.j2", runs=runs, scaling=scaling),
        "Load runs per second of their timeline (requested against achieved rate, errors, latency percentiles "
        "of answered requests) and ready replicas while a model was under load.",
    )
