"""summary.html: the run's results for people, one self-contained page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#cf222e", "skipped": "#9a6700"}


def _figures(figures: dict[str, Any]) -> str:
    return "<br>".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in figures.items())


def write_html(report: dict[str, Any], folder: Path, sections: list[str] | None = None) -> Path:
    rows = []
    for test in report["tests"]:
        colour = COLOURS.get(test["outcome"], "#57606a")
        detail = test.get("skip_reason") or test.get("message") or ""
        rows.append(
            f"<tr><td><code>{html.escape(test['id'])}</code></td>"
            f"<td style='color:{colour};font-weight:600'>{test['outcome']}</td>"
            f"<td>{test['duration_s']:.2f}s</td><td>{html.escape(', '.join(test.get('features', [])))}</td>"
            f"<td><pre>{html.escape(detail[:2000])}</pre>{_figures(test.get('figures', {}))}</td></tr>"
        )
    summary = ", ".join(f"{n} {k}" for k, n in sorted(report["summary"].items()))
    versions = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(report["versions"].items()))
    mutation = report.get("mutation")
    mutation_html = ""
    if mutation:
        mutation_html = (
            f"<h2>Mutants</h2><p>{mutation.get('killed')} killed of {mutation.get('total')} "
            f"({html.escape(str(mutation.get('when', '')))})</p>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>inferbox report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
pre{{white-space:pre-wrap;margin:0;font-size:12px}}</style></head><body>
<h1>inferbox: {html.escape(report["target"])} target</h1>
<p>{html.escape(report["started"])}, {report["duration_s"]:.1f}s. {html.escape(summary)}</p>
<h2>Versions</h2><ul>{versions}</ul>{mutation_html}{"".join(sections or [])}
<h2>Tests</h2><table><tr><th>test</th><th>outcome</th><th>time</th><th>features</th><th>detail</th></tr>
{"".join(rows)}</table></body></html>"""
    path = folder / "summary.html"
    path.write_text(page)
    return path
