"""A chaos experiment's timeline and its promises, on records made up for the purpose."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from inferbox.chaos.prober import VALID, ProbeRun, Stream
from inferbox.chaos.promises import PROMISES
from inferbox.chaos.session import Session
from inferbox.chaos.timeline import Timeline
from inferbox.contract import Platform
from inferbox.load.records import HTTP_ERROR, OK, Records
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.profile import load_profile
from inferbox.topology import read_topology

ORIGIN = 1_000_000.0
STREAMS = [
    Stream(VALID, "tenant-a", "sklearn-iris"),
    Stream(VALID, "tenant-c", "pytorch-resnet"),
    Stream("no-token", "tenant-a", "sklearn-iris"),
]


def _run(rows: list[tuple[float, float, int, int]]) -> ProbeRun:
    """rows: (intended, waited, status, target)."""
    intended = np.array([r[0] for r in rows], dtype=np.float64)
    done = intended + np.array([r[1] for r in rows], dtype=np.float64)
    status = np.array([r[2] for r in rows], dtype=np.int64)
    outcome = np.where(status == 200, OK, HTTP_ERROR).astype(np.int64)
    target = np.array([r[3] for r in rows], dtype=np.int64)
    records = Records(intended, intended, done, status, outcome, target, np.zeros_like(target), ORIGIN, 0.0, None)
    return ProbeRun(Path("."), records, STREAMS, 30.0, 0)


def _steady(until: float, step: float = 0.1) -> list[tuple[float, float, int, int]]:
    rows = []
    for i in range(int(until / step)):
        t = i * step
        rows += [(t, 0.01, 200, 0), (t, 0.01, 200, 1), (t, 0.005, 401, 2)]
    return rows


def _session(marks: dict[str, float], measured: dict[str, Any] | None = None) -> Session:
    topology = read_topology(load_manifests(DEFAULT_MANIFEST_DIR))
    platform = cast(Platform, SimpleNamespace(profile=load_profile(), topology=topology))
    session = Session(platform, Path("."))
    session.marks = {k: ORIGIN + v for k, v in marks.items()}
    session.measured = measured or {}
    return session


def test_windows_count_valid_requests_only_and_name_failure_causes() -> None:
    rows = [*_steady(10.0), (5.0, 0.0, 503, 1), (5.5, 20.0, 0, 1)]
    timeline = Timeline(_run(rows))
    window = timeline.window("w", 5.0, 6.0, tenant="tenant-c")
    assert window.requests == 12
    assert window.ok == 10
    assert window.failures == {"HTTP 503": 1, "no answer (timeout or connection error)": 1}
    assert timeline.longest_wait_s() == 20.0
    assert timeline.refused_successes() == {}
    assert timeline.recovery_s(5.0) == 20.5, "the last failure after the reference ended at 25.5 s"


def test_a_refused_stream_answered_is_an_unauthenticated_success() -> None:
    timeline = Timeline(_run([*_steady(2.0), (1.0, 0.01, 200, 2)]))
    assert timeline.refused_successes() == {"no-token": 1}


def test_replica_loss_is_kept_on_a_clean_timeline_and_broken_by_failures() -> None:
    marks = {"fault": 3.0, "replacement-ready": 6.0}
    session = _session(marks, {"replacement_ready_s": 3.0})
    verdicts, figures = PROMISES["replica-loss"](session, Timeline(_run(_steady(10.0))), {"model": "pytorch-resnet"})
    assert all(v.passed for v in verdicts), verdicts
    assert figures["windows"][1]["success_ratio"] == 1.0
    failing = _steady(10.0) + [(3.0 + i * 0.05, 0.01, 503, 1) for i in range(20)]
    verdicts, _ = PROMISES["replica-loss"](session, Timeline(_run(failing)), {"model": "pytorch-resnet"})
    broken = {v.name for v in verdicts if not v.passed}
    assert broken == {"success-ratio-during-fault"}


def test_no_data_fails() -> None:
    session = _session({"fault": 3.0, "healed": 6.0})
    verdicts, _ = PROMISES["hung-replica"](session, Timeline(_run(_steady(2.0))), {"model": "pytorch-resnet"})
    ratio = next(v for v in verdicts if v.name == "success-ratio-during-fault")
    assert not ratio.passed
    assert "no data" in ratio.detail


def test_a_partition_must_leave_other_tenants_alone() -> None:
    rows = [r for r in _steady(12.0) if not (r[3] == 1 and 3.0 <= r[0] < 8.0)]
    rows += [(3.0 + i * 0.1, 2.0, 503, 1) for i in range(50)]
    session = _session({"fault": 3.0, "healed": 8.0})
    verdicts, _ = PROMISES["partition"](session, Timeline(_run(rows)), {"tenant": "tenant-c"})
    assert all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]
    leaked = rows + [(4.0 + i * 0.1, 2.0, 503, 0) for i in range(20)]
    verdicts, _ = PROMISES["partition"](session, Timeline(_run(leaked)), {"tenant": "tenant-c"})
    assert {v.name for v in verdicts if not v.passed} == {"other-tenants-unaffected"}


def test_fail_open_is_caught_by_the_source_of_the_refusals() -> None:
    closed = [r for r in _steady(12.0) if not (r[3] in (0, 1) and 4.0 <= r[0] < 8.0)]
    session = _session({"gateway-killed": 3.0, "heal-started": 8.0, "healed": 8.5}, {"gateway_back_s": 1.0})
    by_authn = closed + [(4.0 + i * 0.1, 0.01, 401, 0) for i in range(40)]
    verdicts, _ = PROMISES["jwks-at-restart"](session, Timeline(_run(by_authn)), {})
    assert all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]
    by_authz = closed + [(4.0 + i * 0.1, 0.01, 403, 0) for i in range(40)]
    verdicts, _ = PROMISES["jwks-at-restart"](session, Timeline(_run(by_authz)), {})
    assert {v.name for v in verdicts if not v.passed} == {"refused-by-authentication"}
