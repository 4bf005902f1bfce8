"""``inferbox report diff`` output: a console table for people, JSON and Markdown for PR bots.

Test ids are data, never markup: ``[tenant-a/sklearn-iris]`` must print as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from inferbox.report.diff import FigureChange, ReportDiff
from inferbox.report.markdown import cell, code

SCHEMA = "inferbox.io/report-diff/v1"


@dataclass(frozen=True)
class Side:
    """Where one side's reports came from."""

    paths: list[str]
    target: str
    started: str


def number(value: float) -> str:
    return f"{value:.6g}"


def change_text(figure: FigureChange) -> str:
    """``+0.52 (+15%)``; from zero only the absolute change (a percentage would be infinite)."""
    relative = figure.relative
    text = f"{figure.change:+.6g}"
    return text if relative is None else f"{text} ({relative:+.0%})"


def verdict_line(diff: ReportDiff) -> str:
    if diff.ok:
        return "no regressions"
    parts = []
    if diff.regressions:
        parts.append(f"{len(diff.regressions)} test regression(s)")
    if diff.figure_regressions:
        parts.append(f"{len(diff.figure_regressions)} figure regression(s)")
    return ", ".join(parts)


def _score(mutation: dict[str, Any] | None) -> str:
    return f"{mutation['killed']}/{mutation['total']}" if mutation else "-"


def as_json(diff: ReportDiff, old: Side, new: Side) -> str:
    body = {
        "schema": SCHEMA,
        "old": vars(old),
        "new": vars(new),
        "ok": diff.ok,
        "verdict": verdict_line(diff),
        "versions": [{"component": k, "old": a, "new": b} for k, (a, b) in diff.versions.items()],
        "regressions": [vars(c) for c in diff.regressions],
        "fixed": [vars(c) for c in diff.fixes],
        "added": [{"test": t, "outcome": o} for t, o in diff.added],
        "removed": [{"test": t, "outcome": o} for t, o in diff.removed],
        "figures_compared": diff.compared_figures,
        "figures": [{**vars(f), "change": f.change, "relative": f.relative} for f in diff.figures],
        "mutation": {"old": diff.mutation[0], "new": diff.mutation[1]} if diff.mutation else None,
    }
    return json.dumps(body, indent=2)


def as_markdown(diff: ReportDiff, old: Side, new: Side) -> str:
    icon = "✅" if diff.ok else "❌"
    lines = [f"## inferbox report diff: {icon} {verdict_line(diff)}", ""]
    lines.append(f"Old: {', '.join(code(p) for p in old.paths)} ({old.target}, {old.started})  ")
    lines.append(f"New: {', '.join(code(p) for p in new.paths)} ({new.target}, {new.started})")
    if diff.versions:
        lines += ["", "### Versions", "", "| component | old | new |", "|---|---|---|"]
        lines += [f"| {cell(k)} | {cell(a or '-')} | {cell(b or '-')} |" for k, (a, b) in diff.versions.items()]
    for title, rows in (("Test regressions", diff.regressions), ("Fixed", diff.fixes)):
        if rows:
            lines += ["", f"### {title} ({len(rows)})", "", "| test | old | new |", "|---|---|---|"]
            lines += [f"| {code(cell(c.test))} | {c.old} | {c.new} |" for c in rows]
    if diff.figures:
        lines += ["", f"### Figures beyond their noise ({len(diff.figures)} of {diff.compared_figures} compared)", ""]
        lines += ["| verdict | test | figure | old | new | change | allowed |", "|---|---|---|---:|---:|---:|---:|"]
        for f in _ordered(diff.figures):
            lines.append(
                f"| {f.verdict} | {code(cell(f.test))} | {code(cell(f.name))} | {number(f.old)} | {number(f.new)} "
                f"| {cell(change_text(f))} | ±{number(f.allowed)} ({cell(f.basis)}) |"
            )
    if diff.removed:
        lines += ["", f"<details><summary>{len(diff.removed)} test(s) only in OLD</summary>", ""]
        lines += [f"- {code(t)} ({o})" for t, o in diff.removed]
        lines += ["", "</details>"]
    if diff.added:
        lines += ["", f"<details><summary>{len(diff.added)} test(s) only in NEW</summary>", ""]
        lines += [f"- {code(t)} ({o})" for t, o in diff.added]
        lines += ["", "</details>"]
    if diff.mutation:
        lines += ["", f"Mutants killed: {_score(diff.mutation[0])} → {_score(diff.mutation[1])}"]
    return "\n".join(lines) + "\n"


def _ordered(figures: list[FigureChange]) -> list[FigureChange]:
    rank = {"regression": 0, "changed": 1, "improvement": 2}
    return sorted(figures, key=lambda f: (rank[f.verdict], f.test, f.name))


def print_table(console: Console, diff: ReportDiff, old: Side, new: Side) -> None:
    console.print(Text(f"old: {', '.join(old.paths)} ({old.target}, {old.started})"))
    console.print(Text(f"new: {', '.join(new.paths)} ({new.target}, {new.started})"))
    if diff.versions:
        table = Table("component", "old", "new", title="versions", title_justify="left")
        for name, (before, after) in diff.versions.items():
            table.add_row(Text(name), Text(before or "-"), Text(after or "-"))
        console.print(table)
    for title, rows, style in (("test regressions", diff.regressions, "red"), ("fixed", diff.fixes, "green")):
        if rows:
            table = Table("test", "old", "new", title=title, title_justify="left", style=style)
            for change in rows:
                table.add_row(Text(change.test, overflow="fold"), Text(change.old), Text(change.new))
            console.print(table)
    if diff.removed:
        console.print(Text(f"{len(diff.removed)} test(s) only in OLD:", style="yellow"))
        for test, outcome in diff.removed:
            console.print(Text(f"  {test} ({outcome})"))
    if diff.added:
        console.print(Text(f"{len(diff.added)} test(s) only in NEW"))
    if diff.figures:
        table = Table(
            "verdict",
            "test",
            "figure",
            "old",
            "new",
            "change",
            "allowed",
            title=f"figures beyond their noise ({len(diff.figures)} of {diff.compared_figures} compared)",
            title_justify="left",
        )
        for f in _ordered(diff.figures):
            style = {"regression": "red", "improvement": "green"}.get(f.verdict, "")
            table.add_row(
                Text(f.verdict, style=style),
                Text(f.test, overflow="fold"),
                Text(f.name, overflow="fold"),
                number(f.old),
                number(f.new),
                change_text(f),
                Text(f"±{number(f.allowed)} ({f.basis})"),
            )
        console.print(table)
    else:
        console.print(Text(f"figures: none of {diff.compared_figures} moved beyond its noise"))
    if diff.mutation:
        console.print(Text(f"mutants killed: {_score(diff.mutation[0])} -> {_score(diff.mutation[1])}"))
    console.print(Text(f"verdict: {verdict_line(diff)}", style="green" if diff.ok else "red"))
