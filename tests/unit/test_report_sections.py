"""summary.html's layout and its plot sections, built from what the checks record."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from inferbox.report.html import render_html, write_html
from inferbox.report.sections import extra_sections

CYCLE = {"cycle": 1, "activation": 0.01, "pod_start": 0.05, "model_load": 2.5, "first_response": 0.03, "total": 2.59}
CELLS = [
    {"source": "tenant-a", "destination": "tenant-a/m:http/8080", "expected": "A", "observed": "A", "detail": "ok"},
    {"source": "tenant-b", "destination": "tenant-a/m:http/8080", "expected": "-", "observed": "A", "detail": "open"},
]


def _test(test_id: str, outcome: str = "passed", **fields: Any) -> dict[str, Any]:
    return {"id": test_id, "outcome": outcome, "duration_s": 1.0, **fields}


def _report(*tests: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, int] = {}
    for test in tests:
        summary[test["outcome"]] = summary.get(test["outcome"], 0) + 1
    return {
        "schema": "inferbox.io/report/v1",
        "target": "embedded",
        "started": "2026-01-01T00:00:00+00:00",
        "duration_s": 1.0,
        "summary": summary,
        "versions": {"envoy": "1.40.0"},
        "platform": {},
        "tests": list(tests),
    }


class _Page(HTMLParser):
    """Ids, hrefs, and the order of section headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        self._in_h2 = tag == "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2 and data.strip():
            self.headings.append(data.strip())
            self._in_h2 = False


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def test_cold_starts_get_a_distribution_and_one_bar_per_cycle(tmp_path: Path) -> None:
    report = _report(
        _test(
            "suites/serving/test_scale_to_zero.py::test_cold_start[tenant-c/pytorch-resnet]",
            figures={
                "cold_start_s": {"n": 1, "min": 2.59, "median": 2.59, "p90": 2.59, "max": 2.59},
                "cold_start_breakdown_median_s": {"model_load": 2.5},
                "cold_start_samples_s": [2.59],
                "cold_start_cycles": [CYCLE],
                "cold_start_budget_s": 10,
            },
        )
    )
    [section] = extra_sections(report)
    assert section.title == "Cold starts"
    assert "tenant-c/pytorch-resnet" in section.body
    assert section.body.count('class="segment"') == 4, "one segment per part of the cycle"
    assert section.body.count('class="sample"') == 1, "one dot per cold start"
    assert "budget 10 s" in section.body
    page = write_html(report, tmp_path).read_text()
    assert 'id="cold-starts"' in page


def test_the_canary_is_drawn_against_its_interval() -> None:
    report = _report(
        _test(
            "suites/serving/test_canary.py::test_canary_split[tenant-a/sklearn-iris]",
            figures={
                "canary_declared_percent": 20,
                "canary_routed": {"m-00001": 323, "m-00002": 30},
                "canary_interval": [55, 107],
            },
        )
    )
    [section] = extra_sections(report)
    assert "m-00002 declared 20 %" in section.body
    assert "OUTSIDE [55, 107]" in section.body


def test_an_isolation_matrix_is_a_coloured_grid(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "isolation-matrix.json").write_text(json.dumps(CELLS))
    report = _report(
        _test(
            "suites/security/test_mesh_isolation.py::test_isolation_truth_table",
            "failed",
            figures={"artifact:isolation-matrix.json": "artifacts/isolation-matrix.json"},
        )
    )
    [section] = extra_sections(report, tmp_path)
    assert section.body.count('<td class="cell ok"') == 1
    assert section.body.count('<td class="cell differs"') == 1
    assert "promised -, observed A (open)" in section.body


def test_no_figures_no_sections() -> None:
    assert extra_sections(_report(_test("t.py::x", figures={"other": 1}))) == []


def test_failures_come_first_and_every_link_resolves(tmp_path: Path) -> None:
    (tmp_path / "logs" / "tests").mkdir(parents=True)
    (tmp_path / "logs" / "gateway.log").write_text("gateway")
    (tmp_path / "logs" / "tests" / "b.log").write_text("output of b")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "matrix.txt").write_text("matrix")
    for name in ("report.json", "junit.xml", "summary.md"):
        (tmp_path / name).write_text("")
    tests = [_test(f"suites/security/test_a.py::test_{i}") for i in range(40)]
    failed = _test(
        "suites/serving/test_b.py::test_b[tenant-a/sklearn-iris]",
        "failed",
        message="AssertionError: 3 of 400 requests went to the canary\nassert 3 >= 55",
        traceback="def test_b():\n>       assert 3 >= 55\nE       AssertionError",
        log="logs/tests/b.log",
        figures={"artifact:matrix.txt": "artifacts/matrix.txt", "routed": {"a": 397, "b": 3}},
    )
    page = render_html(_report(*tests, failed), tmp_path)
    parsed = _parse(page)
    assert parsed.headings[parsed.headings.index("Failures (1)") + 1 :][-1] == "All tests"
    assert page.index("Failures (1)") < page.index("suites/security/test_a.py::test_0")
    assert page.index("3 of 400 requests went to the canary") < page.index("<summary>Traceback</summary>")
    assert '<span class="badge failed">1 failed</span>' in page.replace(' data-outcome="failed"', "")
    for href in parsed.hrefs:
        if href.startswith("#"):
            assert href[1:] in parsed.ids, f"no element for {href}"
        else:
            assert (tmp_path / href).exists(), f"{href} links to nothing"
    assert "logs/tests/b.log" in parsed.hrefs
    assert "artifacts/matrix.txt" in parsed.hrefs
    assert "<th>routed.b</th>" in page, "figures are tables of named values"


def test_load_runs_and_replicas_under_load_are_timelines(tmp_path: Path) -> None:
    run = tmp_path / "load" / "smoke"
    run.mkdir(parents=True)
    summary = {"passed": True, "requested_rate": 20, "achieved_rate": 19.8, "latency_ms": {"p50": 4, "p99": 9}}
    summary["events"] = [{"name": "pause tenant-a replica", "from_s": 2.0, "to_s": 3.0}]
    (run / "summary.json").write_text(json.dumps(summary))
    timeline = {
        "seconds": [0, 1, 2, 3],
        "requested": [20, 20, 20, 20],
        "achieved": [20, 19, 20, 20],
        "errors": [0, 0, 1, 0],
        "p50_ms": [4.0, 4.1, None, 4.0],
        "p99_ms": [9.0, 9.5, None, 8.0],
    }
    (run / "timeline.json").write_text(json.dumps(timeline))
    (tmp_path / "artifacts").mkdir()
    scale = {"timeline": [[0.0, {"m-00001": 1}], [1.5, {"m-00001": 3}], [4.0, {"m-00001": 1}]]}
    (tmp_path / "artifacts" / "scale-timeline-a.json").write_text(json.dumps(scale))
    report = _report(
        _test(
            "suites/serving/test_autoscaling.py::test_scales_out[tenant-a/sklearn-iris]",
            figures={"artifact:scale-timeline-a.json": "artifacts/scale-timeline-a.json"},
        )
    )
    [section] = extra_sections(report, tmp_path)
    assert section.title == "Timelines"
    assert "Load profile smoke: passed" in section.body
    assert 'href="load/smoke/load.html"' in section.body
    assert "<title>achieved (sent)</title>" in section.body
    assert "<title>pause tenant-a replica</title>" in section.body, "a chaos action is a shaded span"
    assert "ready replicas of scale-timeline-a.json" in section.body
