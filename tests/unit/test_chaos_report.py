"""The Chaos section of summary.html and the timeline plot, from the figures the chaos checks record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferbox.chaos.plot import fault_window, timeline_png
from inferbox.report.html import write_html
from inferbox.report.sections import extra_sections

JUDGEMENT: dict[str, Any] = {
    "promise": "replica-loss",
    "kept": False,
    "verdicts": [
        {"name": "success-ratio-during-fault", "value": 0.95, "bound": 0.99, "passed": False, "detail": ""},
        {"name": "replacement-ready-s", "value": 4.2, "bound": 45, "passed": True, "detail": ""},
    ],
    "figures": {
        "windows": [
            {"name": "before", "from_s": 1, "to_s": 6},
            {"name": "during", "from_s": 6.0, "to_s": 11.0, "success_ratio": 0.95, "p50_ms": 12.0, "p99_ms": 480.0},
        ]
    },
    "marks": {"fault": 6.0, "replacement-ready": 10.2},
    "per_second": [
        {"t": t, "requests": 10, "success_ratio": 1.0 if t < 6 else 0.9, "p50_ms": 10.0, "p99_ms": 30.0}
        for t in range(15)
    ],
}


def _report(png: str) -> dict[str, Any]:
    test = {
        "id": "suites/chaos/test_experiments.py::test_replica_loss_under_load",
        "outcome": "failed",
        "duration_s": 40.0,
        "figures": {
            "chaos": {
                "experiment": "1-replica-loss",
                "title": "Replica loss",
                "before": True,
                "after": True,
                "judgement": JUDGEMENT,
            },
            "chaos_timeline_png": png,
        },
    }
    return {"target": "embedded", "started": "t", "duration_s": 1.0, "summary": {}, "versions": {}, "tests": [test]}


def test_each_experiment_gets_a_row_and_its_timeline(tmp_path: Path) -> None:
    png = timeline_png(JUDGEMENT, tmp_path / "artifacts" / "chaos" / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [chaos] = [s for s in extra_sections(_report("artifacts/chaos/timeline.png")) if s.anchor == "chaos"]
    assert chaos.title == "Chaos experiments"
    section = str(chaos.body)
    assert "<td>Replica loss</td>" in section
    assert "<td>6.0 - 11.0</td>" in section, "the fault window"
    assert "<td>0.95</td>" in section
    assert "<td>12.0 / 480.0</td>" in section
    assert "<td>4.2</td>" in section, "the recovery time"
    assert "broken: success-ratio-during-fault" in section
    assert "src='artifacts/chaos/timeline.png'" in section
    page = write_html(_report("artifacts/chaos/timeline.png"), tmp_path)
    assert "Chaos experiments" in page.read_text()


def test_the_fault_window_is_shaded_from_the_fault_to_recovery() -> None:
    assert fault_window({"prober-start": -1.0, "fault": 6.0, "replacement-ready": 10.2}) == (6.0, 10.2)
    assert fault_window({"prober-start": -1.0}) is None


def test_no_chaos_figures_no_section() -> None:
    report = _report("x")
    report["tests"][0]["figures"] = {}
    assert extra_sections(report) == []
