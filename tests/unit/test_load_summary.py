"""Summaries and SLO verdicts from raw records: exact percentiles, errors apart from 429s, no data fails."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferbox.load.plots import histogram, latency_over_time
from inferbox.load.profiles import LoadProfile, MixEntry, Slo, SloFile, Stage
from inferbox.load.records import CONNECTION, HTTP_ERROR, OK, RATE_LIMITED, Records, percentile, read_records
from inferbox.load.summary import summarise

PROFILE = LoadProfile("t", "test", (Stage(10, 100, 5),), warmup_s=2.0)
PLAN = {
    "targets": [
        {"label": "a", "tenant": "tenant-a", "via": "gateway"},
        {"label": "c", "tenant": "tenant-c", "via": "gateway"},
    ],
    "stages": [{"seconds": 10, "rate": 100, "users": 5}],
    "workers": 0,
}


def _slo(*gates: tuple[str, str, float, str]) -> SloFile:
    return SloFile("t", tuple(Slo(n, m, b, op, "", n) for n, m, b, op in gates), Path("t.yaml"))


def _records(latency_ms: list[float], outcome: list[int], status: list[int], target: list[int]) -> Records:
    n = len(latency_ms)
    intended = np.linspace(2.0, 9.9, n)
    return Records(
        intended,
        intended + 0.0005,
        intended + np.array(latency_ms) / 1000,
        np.array(status),
        np.array(outcome),
        np.array(target),
        np.zeros(n, dtype=np.int64),
        1000.0,
        5.0,
        n,
    )


def test_nearest_rank_percentiles_are_measured_values() -> None:
    values = np.array([0.005, 0.001, 0.004, 0.002, 0.003])
    assert percentile(values, 50) == 0.003
    assert percentile(values, 99) == 0.005
    assert percentile(values, 1) == 0.001
    with pytest.raises(ValueError, match="no samples"):
        percentile(np.array([]), 50)


def test_summary_counts_errors_and_429s_apart_and_gates_on_them() -> None:
    latency = [5.0] * 96 + [7.0, 9.0, 11.0, 13.0]
    outcome = [OK] * 96 + [RATE_LIMITED, HTTP_ERROR, CONNECTION, OK]
    status = [200] * 96 + [429, 503, 0, 200]
    target = [0, 1] * 50
    slo = _slo(
        ("latency-p50", "latency_ms/p50", 6, "<="),
        ("latency-p99.9", "latency_ms/p99.9", 12, "<="),
        ("error-ratio", "error_ratio", 0.01, "<="),
        ("rate-limited-ratio", "rate_limited_ratio", 0, "<="),
        ("achieved-ratio", "achieved_ratio", 0.95, ">="),
    )
    summary = summarise(_records(latency, outcome, status, target), PLAN, PROFILE, slo, {"target": "unit"})
    assert summary["requests"]["in_window"] == 100
    assert summary["requests"]["errors"] == 2
    assert summary["requests"]["rate_limited"] == 1
    assert summary["errors"]["by_status"] == {"0": 1, "503": 1}
    assert summary["errors"]["by_tenant"] == {"tenant-a": {"0": 1}, "tenant-c": {"503": 1}}
    assert summary["rate_limited"]["by_tenant"] == {"tenant-a": 1}
    # Latency is over the 97 answered requests only: the fast 429 and the errors are not in it.
    assert summary["latency_ms"]["count"] == 97
    assert summary["latency_ms"]["max"] == pytest.approx(13.0)
    verdicts = {v["name"]: v["passed"] for v in summary["slos"]}
    assert verdicts == {
        "latency-p50": True,
        "latency-p99.9": False,
        "error-ratio": False,
        "rate-limited-ratio": False,
        "achieved-ratio": True,
    }
    assert not summary["passed"]
    assert summary["achieved_ratio"] == 1.0


def test_no_answered_request_fails_the_latency_slos() -> None:
    records = _records([5.0] * 10, [HTTP_ERROR] * 10, [500] * 10, [0] * 10)
    summary = summarise(records, PLAN, PROFILE, _slo(("latency-p50", "latency_ms/p50", 1000, "<=")), {})
    assert summary["slos"][0]["passed"] is False
    assert "no data" in summary["slos"][0]["detail"]


def test_the_warm_up_is_not_measured_and_unsent_slots_count_against_the_achieved_ratio() -> None:
    records = _records([1.0] * 50, [OK] * 50, [200] * 50, [0] * 50)
    records.intended[:10] = 1.0  # intended during the 2 s warm-up
    records.scheduled = 100
    summary = summarise(records, PLAN, PROFILE, _slo(("achieved-ratio", "achieved_ratio", 0.95, ">=")), {})
    assert summary["requests"]["in_window"] == 40
    assert summary["achieved_ratio"] == 0.5
    assert not summary["passed"]


def test_gateway_overhead_is_the_difference_per_percentile() -> None:
    plan = {
        **PLAN,
        "targets": [
            {"label": "d", "tenant": "tenant-a", "via": "direct"},
            {"label": "g", "tenant": "tenant-a", "via": "gateway"},
        ],
    }
    profile = LoadProfile("t", "", (Stage(10, 100, 5),), mix=(MixEntry(via="direct"), MixEntry()))
    latency = [2.0, 3.0] * 50
    summary = summarise(
        _records(latency, [OK] * 100, [200] * 100, [0, 1] * 50),
        plan,
        profile,
        _slo(("gateway-overhead-p50", "gateway_overhead_ms/added/p50", 1.5, "<=")),
        {},
    )
    assert summary["gateway_overhead_ms"]["added"]["p50"] == pytest.approx(1.0)
    assert summary["passed"]


def test_records_round_trip_through_the_locustfile_format(tmp_path: Path) -> None:
    columns: dict[str, array[Any]] = {
        "intended": array("d", [0.5, 1.0]),
        "sent": array("d", [0.5, 1.1]),
        "done": array("d", [0.6, 1.3]),
    }
    columns |= {"status": array("h", [200, 503]), "outcome": array("b", [OK, HTTP_ERROR]), "target": array("h", [1, 0])}
    order = [("intended", "d"), ("sent", "d"), ("done", "d"), ("status", "h"), ("outcome", "b"), ("target", "h")]
    workers = []
    with open(tmp_path / "samples.bin", "wb") as out:
        for index, t0_wall in ((0, 100.0), (1, 100.25)):
            workers.append(
                {"worker": index, "t0_mono": 7.0, "t0_wall": t0_wall, "scheduled": 3, "count": 2, "offset": out.tell()}
            )
            for name, _ in order:
                columns[name].tofile(out)
    meta = {"columns": [list(c) for c in order], "byteorder": "little", "workers": workers}
    (tmp_path / "samples.json").write_text(json.dumps(meta))
    records = read_records(tmp_path)
    assert len(records) == 4
    assert records.scheduled == 6
    assert list(records.intended) == [0.5, 1.0, 0.75, 1.25]  # the second worker started 0.25 s later
    assert list(records.latency.round(6)) == [0.1, 0.3, 0.1, 0.3]
    assert list(records.delay.round(6)) == [0.0, 0.1, 0.0, 0.1]
    assert list(records.status) == [200, 503, 200, 503]
    assert list(records.worker) == [0, 0, 1, 1]


def test_missing_samples_name_the_locust_log(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"locust\.log"):
        read_records(tmp_path)


def test_plots_are_self_contained_svg() -> None:
    records = _records([5.0] * 99 + [900.0], [OK] * 100, [200] * 100, [0] * 100)
    events = [{"name": "pause <replica>", "from_s": 4.0, "to_s": 5.0}]
    over_time = latency_over_time(records, 10.0, 2.0, events, "intended send time")
    assert over_time.startswith("<svg")
    assert over_time.endswith("</svg>")
    assert "pause &lt;replica&gt;" in over_time
    assert "1 s" in over_time  # the log axis reaches the 900 ms outlier
    hist = histogram(records.latency, {"p50": 5.0, "p99": 5.0})
    assert hist.count("<rect") >= 3
    assert "no data" in histogram(np.array([]), {})
