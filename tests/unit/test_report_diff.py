"""`inferbox report diff`: regressions by full test id, figures per case judged against their noise,
three output formats, exit 1 only on a regression; on real report pairs too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inferbox.report.diff import NOT_RUN, OutcomeChange, diff_reports
from inferbox.report.tolerances import Tolerance, load_tolerances

DATA = Path(__file__).resolve().parent / "data" / "reports"
RULES = load_tolerances()
CANARY = "suites/serving/test_canary.py::test_split[tenant-a/sklearn-iris-wrong-audience]"
OTHER = "suites/serving/test_canary.py::test_split[tenant-c/pytorch-resnet]"


def _report(tests: list[dict[str, Any]], versions: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "schema": "inferbox.io/report/v1",
        "target": "kind",
        "started": "t",
        "versions": versions or {},
        "tests": tests,
        "mutation": None,
    }


def _inferbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferbox.cli", "report", "diff", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )


def _write(tmp_path: Path, name: str, report: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report))
    return str(path)


def test_a_version_bump_with_regressions_fixes_and_a_slower_cold_start() -> None:
    old = _report(
        [
            {"id": "a", "outcome": "passed", "figures": {"cold_start_s": {"median": 2.0}}},
            {"id": "b", "outcome": "passed"},
            {"id": "c", "outcome": "failed"},
            {"id": "gone", "outcome": "passed"},
        ],
        {"istio": "1.26.2", "kserve": "v0.15.2"},
    )
    new = _report(
        [
            {"id": "a", "outcome": "passed", "figures": {"cold_start_s": {"median": 9.0}}},
            {"id": "b", "outcome": "failed"},
            {"id": "c", "outcome": "passed"},
            {"id": "new", "outcome": "passed"},
        ],
        {"istio": "1.27.0", "kserve": "v0.15.2"},
    )
    diff = diff_reports(old, new, RULES)
    assert diff.versions == {"istio": ("1.26.2", "1.27.0")}
    assert diff.regressions == [OutcomeChange("b", "passed", "failed"), OutcomeChange("gone", "passed", NOT_RUN)]
    assert diff.fixes == [OutcomeChange("c", "failed", "passed")]
    assert diff.added == [("new", "passed")]
    [change] = diff.figures
    assert (change.test, change.name, change.old, change.new, change.verdict) == (
        "a",
        "cold_start_s.median",
        2.0,
        9.0,
        "regression",
    )
    assert not diff.ok


def test_a_subset_run_has_no_regression_for_what_it_did_not_run() -> None:
    old = _report([{"id": "a", "outcome": "passed"}, {"id": "b", "outcome": "passed"}])
    new = _report([{"id": "a", "outcome": "passed"}])
    assert not diff_reports(old, new).ok
    subset = diff_reports(old, new, subset=True)
    assert subset.ok
    assert subset.removed == [("b", "passed")]


def test_a_newly_skipped_check_is_a_regression() -> None:
    old = _report([{"id": "a", "outcome": "passed"}])
    new = _report([{"id": "a", "outcome": "skipped"}])
    assert diff_reports(old, new).regressions == [OutcomeChange("a", "passed", "skipped")]


def test_figures_are_compared_per_case_and_zero_is_no_infinity() -> None:
    rule = (Tolerance("*", "higher", 0.1, 0.0),)
    old = _report(
        [
            {"id": CANARY, "outcome": "passed", "figures": {"errors": 0, "p": 1.0}},
            {"id": OTHER, "outcome": "passed", "figures": {"errors": 0, "p": 1.0}},
        ]
    )
    new = _report(
        [
            {"id": CANARY, "outcome": "passed", "figures": {"errors": 0, "p": 1.0}},
            {"id": OTHER, "outcome": "passed", "figures": {"errors": 3, "p": 1.0}},
        ]
    )
    [change] = diff_reports(old, new, rule).figures
    assert (change.test, change.name, change.relative) == (OTHER, "errors", None)


def test_the_spread_of_repeated_runs_is_the_noise() -> None:
    rule = (Tolerance("*", "higher", 0.1, 0.0),)

    def run(value: float) -> dict[str, Any]:
        return _report([{"id": "a", "outcome": "passed", "figures": {"latency_s": value}}])

    # One run a side: 1.0 -> 1.5 is beyond a 10 % tolerance.
    assert diff_reports(run(1.0), run(1.5), rule).figure_regressions
    # Repeated runs of OLD spread from 0.8 to 1.6: the same move is noise.
    assert not diff_reports([run(1.0), run(0.8), run(1.6)], [run(1.5)], rule).figures
    # Beyond the spread it is flagged again.
    [change] = diff_reports([run(1.0), run(0.8), run(1.6)], [run(3.0)], rule).figures
    assert change.basis == "spread of 3+1 runs"


def test_the_table_shows_full_ids_and_json_and_markdown_agree(tmp_path: Path) -> None:
    old = _write(tmp_path, "old", _report([{"id": CANARY, "outcome": "passed"}, {"id": OTHER, "outcome": "passed"}]))
    new = _write(tmp_path, "new", _report([{"id": CANARY, "outcome": "failed"}, {"id": OTHER, "outcome": "failed"}]))
    table = _inferbox(old, new)
    assert table.returncode == 1
    assert CANARY in table.stdout, "the bracketed case must not be read as console markup"
    assert OTHER in table.stdout
    assert "verdict: 2 test regression(s)" in table.stdout
    as_json = json.loads(_inferbox(old, new, "--format", "json").stdout)
    assert [r["test"] for r in as_json["regressions"]] == [CANARY, OTHER]
    assert as_json["ok"] is False
    markdown = _inferbox(old, new, "--format", "markdown").stdout
    assert f"| `{CANARY}` | passed | failed |" in markdown


def test_exit_code_and_verdict_agree_on_a_subset(tmp_path: Path) -> None:
    old = _write(tmp_path, "old", _report([{"id": "a", "outcome": "passed"}, {"id": "b", "outcome": "passed"}]))
    new = _write(tmp_path, "new", _report([{"id": "a", "outcome": "passed"}]))
    whole = _inferbox(old, new)
    assert whole.returncode == 1
    assert "verdict: 1 test regression(s)" in whole.stdout
    subset = _inferbox(old, new, "--subset")
    assert subset.returncode == 0
    assert "verdict: no regressions" in subset.stdout


def _real(name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return report


@pytest.mark.parametrize(("old", "new"), [(a, b) for a in "abc" for b in "abc" if a != b])
def test_identical_code_shows_no_figure_regression(old: str, new: str) -> None:
    """Three conformance runs of one commit on the embedded target (tests/unit/data/reports): a on a
    quiet machine, b and c while other work loaded it (their timings up to 3.7x a's)."""
    diff = diff_reports(_real(old), _real(new), RULES)
    assert diff.compared_figures > 60
    assert not diff.figure_regressions, [(f.test, f.name, f.old, f.new) for f in diff.figure_regressions]


def test_repeated_runs_keep_tight_tolerances_from_crying_wolf() -> None:
    """Rules tight enough for a quiet machine flag identical code on a busy one; a rerun of OLD shows
    the noise, and only a change beyond that spread is left."""
    tight = (Tolerance("cold_start_s.*", "higher", 0.2, 0.1),)
    single = diff_reports(_real("a"), _real("c"), tight).figure_regressions
    assert len(single) == 8
    rerun = diff_reports([_real("a"), _real("b")], [_real("c")], tight).figure_regressions
    assert len(rerun) < len(single)
    assert all(f.basis == "spread of 2+1 runs" and abs(f.change) > f.allowed for f in rerun)


def test_a_real_regression_is_still_found() -> None:
    """A broken isolation (one cell differs) and a model five times slower to cold-start, on a real report."""
    broken = _real("c")
    for test in broken["tests"]:
        figures = test.get("figures") or {}
        if "isolation_differences" in figures:
            figures["isolation_differences"] = 1
        if isinstance(figures.get("cold_start_s"), dict):
            figures["cold_start_s"]["median"] *= 5
    names = {f.name for f in diff_reports(_real("a"), broken, RULES).figure_regressions}
    assert {"isolation_differences", "cold_start_s.median"} <= names
