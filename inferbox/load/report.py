"""A load run's outputs for people: load.html with the verdicts, the figures and inline SVG plots,
beside Locust's own HTML report and CSV files."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from inferbox.load.plots import histogram, latency_over_time
from inferbox.load.profiles import LoadProfile
from inferbox.load.records import OK, RATE_LIMITED, Records
from inferbox.report.sections import load_timeline_plots

LOCUST_FILES = (
    "locust.html",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
)


def _table(rows: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _errors(errors: dict[str, Any], limited_by_tenant: dict[str, int]) -> str:
    """Errors by status, tenant and kind, and the platform's 429s apart; a sentence when there are none."""
    parts = []
    if errors["by_status"]:
        rows = [[html.escape(str(k)), str(v)] for k, v in sorted(errors["by_status"].items())]
        parts.append(_table(rows, ["status", "errors"]))
        rows = [
            [html.escape(tenant), html.escape(str(status)), str(n)]
            for tenant, by_status in sorted(errors["by_tenant"].items())
            for status, n in sorted(by_status.items())
        ]
        parts.append(_table(rows, ["tenant", "status", "errors"]))
        rows = [[html.escape(str(k)), str(v)] for k, v in sorted(errors["by_outcome"].items())]
        parts.append(_table(rows, ["kind", "errors"]))
    else:
        parts.append("<p>No errors: every request in the window was answered (429s are counted apart).</p>")
    if limited_by_tenant:
        rows = [[html.escape(t), str(n)] for t, n in sorted(limited_by_tenant.items())]
        parts.append("<h3>Rate-limited (429) by tenant</h3>" + _table(rows, ["tenant", "429s"]))
    else:
        parts.append("<p>No request was rate-limited (429).</p>")
    return "".join(parts)


def _streams(summary: dict[str, Any]) -> str:
    """Streamed chat completions: tokens per second, overall and per stream, and where counts came from."""
    if "streams" not in summary:
        return ""
    streams = summary["streams"]
    rate = summary.get("stream_tokens_per_s") or {}
    per_target = [
        [html.escape(label), *_ms(t["ttft_ms"])[:5], str(t["stream_tokens_per_s"].get("p50", "-"))]
        for label, t in summary["by_target"].items()
        if "ttft_ms" in t
    ]
    source = streams.get("tokens_from") or {}
    tokens = streams.get("completion_tokens_per_stream") or {}
    aggregate = summary.get("tokens_per_s")
    rates = _table(
        [[str(rate.get(k, "-")) for k in ("p50", "p10", "p1", "min", "mean", "count")]],
        ["per-stream tokens/s p50", "p10 (slowest 10%)", "p1", "min", "mean", "streams with a rate"],
    )
    return f"""<h2>Streams (tokens)</h2>
<p>{streams.get("answered", 0)} streams answered in the window, {streams.get("completion_tokens", 0)} completion tokens
(per stream min {tokens.get("min", "-")}, mean {tokens.get("mean", "-")}, max {tokens.get("max", "-")}; taken from
the usage chunk for {source.get("usage", 0)} streams, counted as chunks with content for
{source.get("counted_chunks", 0)} streams without usage).
Aggregate: <b>{"no data" if aggregate is None else aggregate} tokens/s</b> over the window.</p>
{rates}
<p>A stream's tokens/s is its tokens after the first over the time from its first token to its end;
{streams.get("without_a_rate", 0)} streams had none (a single token, or every token in one read).</p>
{_table(per_target, ["streamed target", "TTFT p50", "p90", "p99", "p99.9", "max", "tokens/s p50"])}"""


def per_second(records: Records, profile: LoadProfile) -> dict[str, Any]:
    """The run per second of its timeline: requested and achieved (sent) rates, errors, and latency
    percentiles of the requests answered in that second (by intended send time)."""
    seconds = max(1, math.ceil(profile.total_s))
    out: dict[str, list[Any]] = {k: [] for k in ("seconds", "requested", "achieved", "errors", "p50_ms", "p99_ms")}
    for second in range(seconds):
        sent = (records.sent >= second) & (records.sent < second + 1)
        due = (records.intended >= second) & (records.intended < second + 1)
        answered = np.sort(records.latency[due & (records.outcome == OK)]) * 1000
        failed = due & (records.outcome != OK) & (records.outcome != RATE_LIMITED)
        out["seconds"].append(second)
        out["requested"].append(round(profile.requested(second, second + 1), 3))
        out["achieved"].append(int(sent.sum()))
        out["errors"].append(int(failed.sum()))
        out["p50_ms"].append(round(float(answered[(answered.size - 1) // 2]), 3) if answered.size else None)
        out["p99_ms"].append(
            round(float(answered[max(1, math.ceil(0.99 * answered.size)) - 1]), 3) if answered.size else None
        )
    return out


def _ms(figures: dict[str, Any]) -> list[str]:
    return [str(figures.get(k, "-")) for k in ("p50", "p90", "p99", "p99.9", "max", "count")]


def write_outputs(folder: Path, summary: dict[str, Any], records: Records, profile: LoadProfile) -> dict[str, str]:
    """Writes load.html; returns the run's output files by role (names relative to the folder)."""
    basis = summary["latency_basis"]
    window = records.select((records.intended >= profile.warmup_s) & (records.intended < profile.total_s))
    answered = window.select(window.outcome == OK)
    marks = {k: summary["latency_ms"][k] for k in ("p50", "p99", "p99.9") if k in summary["latency_ms"]}
    over_time = latency_over_time(records, profile.total_s, profile.warmup_s, summary["events"], basis)
    hist = histogram(answered.latency, marks)
    verdicts = [
        [
            html.escape(v["name"]),
            "<b style='color:#1a7f37'>passed</b>" if v["passed"] else "<b style='color:#cf222e'>FAILED</b>",
            html.escape(v["detail"]),
        ]
        for v in summary["slos"]
    ]
    figures = [
        [f"latency (from the {html.escape(basis)})", *_ms(summary["latency_ms"])],
        ["service time (from the actual send)", *_ms(summary["service_time_ms"])],
    ]
    if summary.get("schedule_delay_ms"):
        figures.append(["schedule delay (sent late by)", *_ms(summary["schedule_delay_ms"])])
    if "ttft_ms" in summary:
        figures.append([f"time to first token (from the {html.escape(basis)})", *_ms(summary["ttft_ms"])])
    overhead = summary.get("gateway_overhead_ms") or {}
    for key in ("direct", "gateway", "added"):
        if key in overhead:
            figures.append([f"overhead mode: {key}", *_ms(overhead[key])])
    per_target = [
        [html.escape(label), str(t["requests"]), str(t["ok"]), *_ms(t["latency_ms"])[:5]]
        for label, t in summary["by_target"].items()
    ]
    streams = _streams(summary)
    requests = summary["requests"]
    errors = summary["errors"]
    links = " · ".join(
        f"<a href='{name}'>{name}</a>"
        for name in (*LOCUST_FILES, "summary.json", "plan.json")
        if (folder / name).exists() or name == "summary.json"
    )
    events = "".join(
        f"<li>{html.escape(str(e.get('name')))}: {e.get('from_s', '?')}s to {e.get('to_s', '?')}s"
        f"{' — ' + html.escape(str(e['error'])) if 'error' in e else ''}</li>"
        for e in summary["events"]
    )
    verdict = "passed" if summary["passed"] else "FAILED"
    versions = html.escape(", ".join(f"{k} {v}" for k, v in sorted((summary.get("versions") or {}).items())))
    scheduled = "" if requests["scheduled"] is None else f", {requests['scheduled']} scheduled in all"
    error_text = _errors(errors, summary["rate_limited"]["by_tenant"])
    timeline = per_second(records, profile)
    (folder / "timeline.json").write_text(json.dumps(timeline))
    rate_chart, _ = load_timeline_plots(timeline, summary["events"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>load {html.escape(summary["profile"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}}</style></head><body>
<h1>Load profile {html.escape(summary["profile"])}: {verdict}</h1>
<p>{html.escape(summary.get("description", ""))}</p>
<p>Target <b>{html.escape(str(summary.get("target")))}</b>, {summary["mode"]} loop ({summary["arrival"]} arrivals),
started {html.escape(str(summary.get("started")))}; measured window {summary["window_s"]["from"]}s to
{summary["window_s"]["to"]}s. Requested {summary["requested_rate"]} req/s, achieved {summary["achieved_rate"]} req/s
(ratio {summary["achieved_ratio"]}), goodput {summary["goodput_rate"]} req/s.
Requests: {requests["in_window"]} in the window, {requests["ok"]} answered, {requests["errors"]} errors,
{requests["rate_limited"]} rate-limited (429){scheduled}.</p>
<p>Versions: {versions}</p>
<h2>SLOs</h2>{_table(verdicts, ["SLO", "verdict", "detail"])}
<h2>Latency (ms)</h2>{_table(figures, ["", "p50", "p90", "p99", "p99.9", "max", "count"])}
{streams}
<h2>Achieved rate</h2>{rate_chart}
<h2>Latency over time</h2>{over_time}
<h2>Histogram</h2>{hist}
<h2>Per target</h2>{_table(per_target, ["target", "requests", "answered", "p50", "p90", "p99", "p99.9", "max"])}
<h2>Errors</h2>{error_text}
{f"<h2>Chaos actions</h2><ul>{events}</ul>" if events else ""}
<h2>Files</h2><p>{links}</p>
<p style="color:#57606a">Percentiles are exact (nearest rank over every raw request), not Locust's rounded buckets.
Locust's own report (locust.html) rounds response times to about two significant digits.</p>
</body></html>"""
    (folder / "load.html").write_text(page)
    files = {
        "html": "load.html",
        "summary": "summary.json",
        "plan": "plan.json",
        "samples": "samples.bin",
        "timeline": "timeline.json",
    }
    for name in LOCUST_FILES:
        if (folder / name).exists():
            files[
                name.removesuffix(".csv").removesuffix(".html").replace("locust_", "locust-")
                if name != "locust.html"
                else "locust-html"
            ] = name
    return files
