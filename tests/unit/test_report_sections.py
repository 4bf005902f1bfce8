"""The HTML summary's cold-start section, built from the figures the cold-start check records."""

from __future__ import annotations

from pathlib import Path

from inferbox.report.html import write_html
from inferbox.report.sections import extra_sections

CYCLE = {"cycle": 1, "activation": 0.01, "pod_start": 0.05, "model_load": 2.5, "first_response": 0.03, "total": 2.59}


def _report(figures: dict[str, object]) -> dict[str, object]:
    test = {
        "id": "suites/serving/test_scale_to_zero.py::test_cold_start[tenant-c/pytorch-resnet]",
        "outcome": "passed",
        "duration_s": 1.0,
        "figures": figures,
    }
    return {"target": "embedded", "started": "t", "duration_s": 1.0, "summary": {}, "versions": {}, "tests": [test]}


def test_cold_starts_get_a_table_and_one_bar_per_cycle(tmp_path: Path) -> None:
    report = _report(
        {
            "cold_start_s": {"n": 1, "min": 2.59, "median": 2.59, "p90": 2.59, "max": 2.59},
            "cold_start_breakdown_median_s": {"model_load": 2.5},
            "cold_start_cycles": [CYCLE],
            "cold_start_budget_s": 10,
        }
    )
    [section] = extra_sections(report)
    assert "<h2>Cold starts</h2>" in section
    assert "tenant-c/pytorch-resnet" in section
    assert section.count("<rect") == 4, "one segment per part of the cycle"
    assert "budget" in section
    page = write_html(report, tmp_path, sections=extra_sections(report)).read_text()
    assert "Cold starts" in page


def test_no_cold_start_figures_no_section() -> None:
    assert extra_sections(_report({"other": 1})) == []
