"""Everything a finished run writes into its report folder, and where CI reads the summary."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from inferbox.report.html import write_html
from inferbox.report.markdown import render_markdown
from inferbox.report.model import RunReport, utc_now

GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class Written:
    report: Path
    html: Path
    markdown: Path


def write_run(run: RunReport, folder: Path) -> Written:
    """report.json, summary.html and summary.md; the Markdown is also appended to the file CI names
    in ``$GITHUB_STEP_SUMMARY`` (GitHub Actions shows it on the run's page)."""
    run.finished = utc_now()
    started, finished = dt.datetime.fromisoformat(run.started), dt.datetime.fromisoformat(run.finished)
    run.duration_s = round((finished - started).total_seconds(), 1)
    path = run.write(folder)
    body = run.to_json()
    html = write_html(body, folder)
    markdown = folder / "summary.md"
    text = render_markdown(body, folder)
    markdown.write_text(text)
    step_summary = os.environ.get(GITHUB_STEP_SUMMARY)
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(text + "\n")
    return Written(path, html, markdown)
