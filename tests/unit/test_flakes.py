"""The flake report: pass rates per test over runs, the failures' messages, and the noise bounded
and stopped by its PID."""

from __future__ import annotations

import os

from inferbox.flakes import RunSummary, cpu_hog, first_error, markdown, rates

MESSAGE = """suites/x.py:10: in test
    assert count > 0
E   AssertionError: no 429 for 300 requests
E   assert 0 > 0
"""


def _run(number: int, outcomes: dict[str, str], messages: dict[str, str] | None = None) -> RunSummary:
    return RunSummary(number, 100.0, "1.0 1.0 1.0", "2.0 2.0 2.0", outcomes, messages or {}, 0)


def test_a_failure_is_told_by_its_assertion() -> None:
    assert first_error(MESSAGE) == "AssertionError: no 429 for 300 requests assert 0 > 0"
    assert first_error("no E lines\nlast line") == "last line"


def test_pass_rates_count_the_runs_a_test_ran_in_and_keep_why_it_failed() -> None:
    runs = [
        _run(1, {"a": "passed", "b": "passed", "c": "skipped"}),
        _run(2, {"a": "failed", "b": "passed", "c": "skipped"}, {"a": "AssertionError: boom"}),
        _run(3, {"a": "passed", "b": "error"}),
    ]
    table = rates(runs)
    assert "c" not in table  # skipped everywhere: no rate to give
    assert (table["a"].passed, table["a"].runs) == (2, 3)
    assert table["a"].messages == ["run 2: AssertionError: boom"]
    assert table["b"].messages == ["run 3: error"]
    text = markdown(runs, table, "make flakes RUNS=3 NOISE=1", noise=True)
    assert "**0 of 2 tests passed in every run they ran in.**" in text
    assert "| `a` | 2/3 | run 2: AssertionError: boom |" in text
    assert "CPU hog pinned to core 0" in text


def test_the_hog_is_pinned_to_one_core_and_gone_afterwards() -> None:
    with cpu_hog(True, 30) as pid:
        assert pid is not None
        assert os.sched_getaffinity(pid) == {0}
    assert not os.path.exists(f"/proc/{pid}"), "the hog was waited for: no zombie, no orphan"
    with cpu_hog(False, 30) as none:
        assert none is None
