"""summary.html: the run's results for people, one self-contained page (Jinja2 templates).

Failures come first, each with its assertion message on top and the whole traceback folded
below; every test links to its captured output and its evidence; figures are tables, and the
sections of ``inferbox.report.sections`` add plots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inferbox.report.failures import safe_name
from inferbox.report.model import OUTCOME_ORDER, suite_of
from inferbox.report.sections import extra_sections
from inferbox.report.templating import render

FAILED = ("failed", "error", "xpassed")
RUN_FILES = ("report.json", "junit.xml", "summary.md")
RUN_DEFAULTS: dict[str, Any] = {
    "schema": "",
    "target": "?",
    "started": "",
    "duration_s": 0.0,
    "command": "",
    "profile": "",
    "manifests": "",
    "versions": {},
    "platform": {},
    "mutation": None,
    "summary": {},
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _flat(prefix: str, value: Any, rows: list[tuple[str, str]], tables: list[dict[str, Any]]) -> None:
    """Figure ``value`` as rows of (dotted name, text), or a table for a list of records."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flat(f"{prefix}.{key}", inner, rows, tables)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for v in value for k in v))
        if all(_scalar(v.get(c)) for v in value for c in columns):
            tables.append(
                {"name": prefix, "columns": columns, "rows": [[_text(v.get(c, "")) for c in columns] for v in value]}
            )
        else:
            rows.append((prefix, _text(value)))
    elif isinstance(value, list) and all(_scalar(v) for v in value):
        rows.append((prefix, ", ".join(_text(v) for v in value)))
    else:
        rows.append((prefix, _text(value)))


def figure_tables(figures: dict[str, Any]) -> dict[str, Any]:
    """A test's figures as one table of named values plus a table per list of records."""
    rows: list[tuple[str, str]] = []
    tables: list[dict[str, Any]] = []
    for name, value in figures.items():
        if not name.startswith("artifact:"):
            _flat(name, value, rows, tables)
    return {"rows": rows, "tables": tables}


def _links(test: dict[str, Any], folder: Path | None) -> list[tuple[str, str]]:
    """(label, href relative to the report folder) of the test's own output and evidence."""
    links: list[tuple[str, str]] = []
    if test.get("log"):
        links.append(("output", str(test["log"])))
    for key, value in (test.get("figures") or {}).items():
        if key.startswith("artifact:"):
            links.append((key.removeprefix("artifact:"), str(value)))
    evidence = Path("failures") / safe_name(test["id"])
    if folder is not None and (folder / evidence).is_dir():
        links.append(("cluster evidence", evidence.as_posix() + "/"))
    return links


def _name(test_id: str) -> tuple[str, str]:
    """(file, test name with its case) of a test id."""
    path, _, name = test_id.partition("::")
    return path, name or path


def test_view(test: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    path, name = _name(test["id"])
    message = (test.get("message") or "").strip()
    return {
        "id": test["id"],
        "file": path,
        "name": name,
        "suite": suite_of(test["id"]),
        "outcome": test["outcome"],
        "duration": float(test.get("duration_s") or 0.0),
        "skip_reason": test.get("skip_reason") or "",
        "message": message,
        "headline": message.splitlines()[0] if message else "",
        "traceback": (test.get("traceback") or "").strip(),
        "figures": figure_tables(test.get("figures") or {}),
        "links": _links(test, folder),
        "retries": int(test.get("retries") or 0),
        "features": test.get("features") or [],
    }


def _component_logs(folder: Path | None) -> list[str]:
    if folder is None or not (folder / "logs").is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in (folder / "logs").glob("*.log"))


def _run_files(folder: Path | None) -> list[str]:
    if folder is None:
        return list(RUN_FILES)
    found = [name for name in RUN_FILES if (folder / name).exists() or name == "summary.md"]
    found += sorted(p.relative_to(folder).as_posix() for p in folder.glob("load/*/load.html"))
    return found


def render_html(report: dict[str, Any], folder: Path | None = None) -> str:
    report = {**RUN_DEFAULTS, **report}
    tests = [test_view(t, folder) for t in report["tests"]]
    summary = report.get("summary") or {}
    outcomes = [{"name": o, "count": summary[o]} for o in OUTCOME_ORDER if summary.get(o)]
    outcomes += [{"name": o, "count": n} for o, n in sorted(summary.items()) if o not in OUTCOME_ORDER and n]
    suites: dict[str, int] = {}
    for test in tests:
        suites[test["suite"]] = suites.get(test["suite"], 0) + 1
    return render(
        "summary.html.j2",
        report=report,
        outcomes=outcomes,
        suites=sorted(suites.items()),
        tests=tests,
        failures=[t for t in tests if t["outcome"] in FAILED],
        sections=extra_sections(report, folder),
        component_logs=_component_logs(folder),
        files=_run_files(folder),
    )


def write_html(report: dict[str, Any], folder: Path) -> Path:
    path = folder / "summary.html"
    path.write_text(render_html(report, folder))
    return path
