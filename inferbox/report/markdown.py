"""summary.md: the run in Markdown for CI pages (GitHub's job summary, a PR comment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferbox.report.model import OUTCOME_ORDER, suite_of

FAILED = ("failed", "error", "xpassed")
MESSAGE_LINES = 12


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    """Inline code that survives backticks in the text (a test id can hold any character)."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


def _outcomes(summary: dict[str, int]) -> str:
    icons = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️", "xfailed": "◽", "xpassed": "❗"}
    return ", ".join(f"{icons.get(o, '')} {summary[o]} {o}".strip() for o in OUTCOME_ORDER if summary.get(o))


def render_markdown(report: dict[str, Any], folder: Path | None = None) -> str:
    tests = report["tests"]
    lines = [f"## inferbox on {report['target']}: {_outcomes(report['summary']) or 'no tests'}", ""]
    lines.append(f"Started {report['started']}, {report['duration_s']:g} s.")
    mutation = report.get("mutation")
    if mutation:
        lines.append(
            f"Mutants killed (last run {mutation.get('when', '?')}): {mutation['killed']} of {mutation['total']}."
        )
    lines.append("")
    suites: dict[str, dict[str, int]] = {}
    for test in tests:
        counts = suites.setdefault(suite_of(test["id"]), {})
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    shown = [o for o in OUTCOME_ORDER if any(c.get(o) for c in suites.values())]
    lines.append("| suite | " + " | ".join(shown) + " |")
    lines.append("|---|" + "---:|" * len(shown))
    for suite, counts in sorted(suites.items()):
        lines.append(f"| {cell(suite)} | " + " | ".join(str(counts.get(o, 0)) for o in shown) + " |")
    failures = [t for t in tests if t["outcome"] in FAILED]
    if failures:
        lines += ["", f"### Failures ({len(failures)})", ""]
        for test in failures:
            message = (test.get("message") or "").strip().splitlines()
            clipped = message[:MESSAGE_LINES] + (["…"] if len(message) > MESSAGE_LINES else [])
            lines.append(f"- **{test['outcome']}** {code(test['id'])}")
            if clipped:
                lines += ["", "  ```text", *(f"  {line}" for line in clipped), "  ```", ""]
    if report.get("versions"):
        lines += ["", "<details><summary>Versions</summary>", "", "| component | version |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(str(v))} |" for k, v in sorted(report["versions"].items())]
        lines += ["", "</details>"]
    if folder is not None:
        lines += ["", f"Full report: `{folder / 'summary.html'}` (with `report.json`, `junit.xml`, `logs/`)."]
    return "\n".join(lines) + "\n"
