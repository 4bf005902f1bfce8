"""The short summary table printed at the end of a run, with the report's path."""

from __future__ import annotations

import io
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from inferbox.report.model import suite_of

# Long enough that a table piped to a file or another program is never cut to a terminal's width.
PIPE_WIDTH = 100_000


def make_console(stderr: bool = False) -> Console:
    """A console for tables: at a terminal its width; piped, wide enough to never cut a cell."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


def summary_table(report: dict[str, Any]) -> Table:
    """Outcomes per suite (security, serving, ...), then the total."""
    groups: dict[str, dict[str, int]] = {}
    for test in report["tests"]:
        counts = groups.setdefault(suite_of(test["id"]), {})
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    outcomes = ["passed", "failed", "error", "skipped"]
    table = Table(title=f"inferbox on {report['target']}", title_justify="left")
    table.add_column("suite")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for group, counts in sorted(groups.items()):
        table.add_row(Text(group), *(str(counts.get(o, 0)) for o in outcomes))
    table.add_row("total", *(str(report["summary"].get(o, 0)) for o in outcomes), style="bold")
    return table


def render(report: dict[str, Any], report_path: str, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    console.print(summary_table(report))
    mutation = report.get("mutation")
    if mutation:
        console.print(
            f"mutants (last run {mutation.get('when', '?')}): {mutation['killed']} killed of {mutation['total']}"
        )
    console.print(f"report: {report_path}", markup=False, soft_wrap=True)  # a path is copied whole
    return buffer.getvalue()
