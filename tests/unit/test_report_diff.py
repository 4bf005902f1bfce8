from __future__ import annotations

from typing import Any

from inferbox.report.diff import diff_reports


def _report(tests: list[dict[str, Any]], versions: dict[str, str]) -> dict[str, Any]:
    return {
        "schema": "inferbox.io/report/v1",
        "target": "kind",
        "started": "t",
        "versions": versions,
        "tests": tests,
        "mutation": None,
    }


def test_a_version_bump_with_one_regression_and_a_slower_cold_start() -> None:
    old = _report(
        [
            {"id": "a", "outcome": "passed", "figures": {"cold_start_s": {"p50": 2.0}}},
            {"id": "b", "outcome": "passed"},
            {"id": "c", "outcome": "failed"},
            {"id": "gone", "outcome": "passed"},
        ],
        {"istio": "1.26.2", "kserve": "v0.15.2"},
    )
    new = _report(
        [
            {"id": "a", "outcome": "passed", "figures": {"cold_start_s": {"p50": 3.0}}},
            {"id": "b", "outcome": "failed"},
            {"id": "c", "outcome": "passed"},
            {"id": "new", "outcome": "passed"},
        ],
        {"istio": "1.27.0", "kserve": "v0.15.2"},
    )
    diff = diff_reports(old, new)
    assert diff.versions == {"istio": ("1.26.2", "1.27.0")}
    assert diff.regressions == [("b", "passed", "failed")]
    assert diff.fixes == [("c", "failed", "passed")]
    assert diff.removed == [("gone", "passed")]
    assert diff.added == [("new", "passed")]
    [change] = diff.figures
    assert (change.name, change.old, change.new) == ("cold_start_s.p50", 2.0, 3.0)
    assert not diff.ok


def test_identical_runs_have_no_regressions() -> None:
    run = _report([{"id": "a", "outcome": "passed"}], {"istio": "1.26.2"})
    diff = diff_reports(run, run)
    assert diff.ok
    assert not diff.versions
    assert not diff.figures


def test_a_newly_skipped_check_is_a_regression() -> None:
    old = _report([{"id": "a", "outcome": "passed"}], {})
    new = _report([{"id": "a", "outcome": "skipped"}], {})
    assert diff_reports(old, new).regressions == [("a", "passed", "skipped")]
