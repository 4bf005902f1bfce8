"""load.html: errors as tables (a sentence when there are none, never a Python dict), and a chart of
the achieved rate against the requested one, from the per-second timeline it also writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inferbox.load.profiles import LoadProfile, Slo, SloFile, Stage
from inferbox.load.records import HTTP_ERROR, OK, Records
from inferbox.load.report import write_outputs
from inferbox.load.summary import summarise

PROFILE = LoadProfile("t", "test", (Stage(5, 20, 2), Stage(5, 40, 4)), warmup_s=1.0)
PLAN = {
    "targets": [{"label": "a", "tenant": "tenant-a", "via": "gateway"}],
    "stages": [{"seconds": 5, "rate": 20, "users": 2}, {"seconds": 5, "rate": 40, "users": 4}],
    "workers": 0,
}
SLO = SloFile("t", (Slo("error-ratio", "error_ratio", 0.01, "<=", "", "error-ratio"),), Path("t.yaml"))


def _records(errors: int = 0) -> Records:
    """The profile's schedule: 20 requests a second for 5 s, then 40 a second, the last ``errors`` failing."""
    intended = np.concatenate([np.arange(0, 5, 1 / 20), np.arange(5, 10, 1 / 40)])
    n = intended.size
    outcome = np.full(n, OK)
    status = np.full(n, 200)
    if errors:  # the last ones: the first second is the warm-up, not measured
        outcome[-errors:], status[-errors:] = HTTP_ERROR, 503
    return Records(
        intended, intended + 0.001, intended + 0.005, status, outcome, np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64), 1000.0, 0.0, n,
    )  # fmt: skip


def _page(tmp_path: Path, records: Records) -> str:
    summary = summarise(records, PLAN, PROFILE, SLO, {"target": "unit"})
    write_outputs(tmp_path, summary, records, PROFILE)
    return (tmp_path / "load.html").read_text()


def test_no_errors_is_a_sentence_not_an_empty_dict(tmp_path: Path) -> None:
    page = _page(tmp_path, _records())
    assert "{}" not in page
    assert "by status:" not in page
    assert "No errors" in page
    assert "No request was rate-limited" in page


def test_errors_are_tables_by_status_and_tenant(tmp_path: Path) -> None:
    page = _page(tmp_path, _records(errors=3))
    assert "<th>status</th><th>errors</th></tr><tr><td>503</td><td>3</td>" in page
    assert "<td>tenant-a</td><td>503</td><td>3</td>" in page


def test_the_achieved_rate_is_charted_against_the_requested_rate(tmp_path: Path) -> None:
    page = _page(tmp_path, _records())
    assert "<h2>Achieved rate</h2>" in page
    chart = page.split("<h2>Achieved rate</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<title>achieved rate</title>" in chart
    assert "<title>requested</title>" in chart
    assert "<title>achieved (sent)</title>" in chart
    timeline = json.loads((tmp_path / "timeline.json").read_text())
    assert timeline["seconds"] == list(range(10))
    assert timeline["requested"] == [20.0] * 5 + [40.0] * 5
    assert timeline["achieved"] == [20] * 5 + [40] * 5
    assert timeline["p50_ms"][0] == 5.0
