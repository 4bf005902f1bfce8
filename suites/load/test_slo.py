"""The chosen load profile meets every SLO of its SLO file (``pytest -m load --inferbox-load-profile NAME``).

One test per SLO, all reading one run of the profile: latency percentiles (open loop: from the
intended send time, so a stall is not hidden), the error ratio (429s counted apart), the achieved
rate against the requested one (the generator kept up), and for the overhead profile the latency
the gateway adds. The run's outputs are in the report folder under load/<profile>/.
"""

from __future__ import annotations

import pytest

from inferbox.evidence import Evidence
from inferbox.load.runner import LoadResult

pytestmark = [pytest.mark.load]


def test_slo(load_run: LoadResult, slo_name: str, evidence: Evidence) -> None:
    verdict = load_run.verdict(slo_name)
    evidence.figure(
        slo_name,
        {"value": verdict["value"], "bound": verdict["bound"], "op": verdict["op"], "unit": verdict["unit"]},
    )
    summary = load_run.summary
    evidence.figure(
        "load",
        {
            "profile": summary["profile"],
            "requested_rate": summary["requested_rate"],
            "achieved_rate": summary["achieved_rate"],
            "latency_ms": summary["latency_ms"],
        },
    )
    assert verdict["passed"], f"{verdict['detail']}; see {load_run.folder / 'load.html'}"
