"""One JSON summary of a load run, and its SLO verdicts, computed from the raw records.

The measured window excludes the warm-up: only requests *intended* (open loop) or *sent* (closed
loop) after it count. Latency percentiles are over answered requests (HTTP 200 with the right
answer); errors and 429s are counted, by status and tenant, apart from each other, because a 429
is the platform enforcing a tenant's budget, not failing. "No data" fails every latency SLO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from inferbox.load.profiles import LoadProfile, SloFile
from inferbox.load.records import OK, OUTCOMES, RATE_LIMITED, Records, summary_ms

SUMMARY_SCHEMA = "inferbox.io/load-summary/v1"


@dataclass
class Verdict:
    name: str
    metric: str
    op: str
    bound: float
    value: float | None
    unit: str
    passed: bool
    detail: str


def _counts(keys: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in keys:
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def _lookup(summary: dict[str, Any], metric: str) -> Any:
    """A value by its path, e.g. ``latency_ms/p99.9``."""
    node: Any = summary
    for part in metric.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def evaluate(summary: dict[str, Any], slo: SloFile) -> list[Verdict]:
    verdicts = []
    for gate in slo.slos:
        value = _lookup(summary, gate.metric)
        if value is None:
            verdicts.append(
                Verdict(
                    gate.name,
                    gate.metric,
                    gate.op,
                    gate.bound,
                    None,
                    gate.unit,
                    False,
                    f"no data for {gate.metric}: nothing was measured, which fails the SLO",
                )
            )
            continue
        passed = value <= gate.bound if gate.op == "<=" else value >= gate.bound
        detail = f"{gate.why}: {value:g} {gate.unit}, must be {gate.op} {gate.bound:g}"
        verdicts.append(Verdict(gate.name, gate.metric, gate.op, gate.bound, float(value), gate.unit, passed, detail))
    return verdicts


def summarise(
    records: Records,
    plan: dict[str, Any],
    profile: LoadProfile,
    slo: SloFile,
    context: dict[str, Any],
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The summary dict; ``context`` carries target, versions, started time and file names."""
    targets = plan["targets"]
    start, end = profile.warmup_s, profile.total_s
    basis = records.intended
    window = records.select((basis >= start) & (basis < end))
    seconds = end - start
    ok = window.outcome == OK
    limited = window.outcome == RATE_LIMITED
    errors = ~ok & ~limited
    answered = window.select(ok)
    completed = len(window)
    requested = profile.requested(start, end)
    if records.scheduled:
        # Open loop: slots of the whole timeline against those answered at all (Poisson counts vary).
        achieved_ratio = len(records) / records.scheduled
    else:
        achieved_ratio = completed / requested if requested else 0.0
    tenant_of = [t["tenant"] for t in targets]
    error_keys = [
        (str(int(s)), tenant_of[int(t)]) for s, t in zip(window.status[errors], window.target[errors], strict=True)
    ]
    by_tenant: dict[str, dict[str, int]] = {}
    for status, tenant in error_keys:
        by_tenant.setdefault(tenant, {})
        by_tenant[tenant][status] = by_tenant[tenant].get(status, 0) + 1
    limited_by_tenant = _counts([tenant_of[int(t)] for t in window.target[limited]])
    by_target = {}
    for index, target in enumerate(targets):
        mine = window.select(window.target == index)
        mine_ok = mine.select(mine.outcome == OK)
        by_target[target["label"]] = {
            "requests": len(mine),
            "ok": len(mine_ok),
            "achieved_rate": round(len(mine) / seconds, 3),
            "latency_ms": summary_ms(mine_ok.latency),
        }
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "profile": profile.name,
        "description": profile.description,
        **context,
        "mode": profile.mode,
        "arrival": profile.arrival,
        "latency_basis": "intended send time" if profile.mode == "open" else "actual send time",
        "stages": plan["stages"],
        "workers": plan["workers"],
        "window_s": {"from": start, "to": end},
        "requested_rate": round(requested / seconds, 3),
        "achieved_rate": round(completed / seconds, 3),
        "goodput_rate": round(len(answered) / seconds, 3),
        "achieved_ratio": round(achieved_ratio, 4),
        "requests": {
            "scheduled": records.scheduled,
            "completed_total": len(records),
            "in_window": completed,
            "ok": len(answered),
            "errors": int(errors.sum()),
            "rate_limited": int(limited.sum()),
        },
        "error_ratio": round(float(errors.sum()) / completed, 6) if completed else None,
        "rate_limited_ratio": round(float(limited.sum()) / completed, 6) if completed else None,
        "latency_ms": summary_ms(answered.latency),
        "service_time_ms": summary_ms(answered.service),
        "schedule_delay_ms": summary_ms(window.delay) if profile.mode == "open" else {},
        "generator": records.generator,
        "errors": {
            "by_status": _counts([s for s, _ in error_keys]),
            "by_tenant": dict(sorted(by_tenant.items())),
            "by_outcome": _counts([OUTCOMES[int(o)] for o in window.outcome[errors]]),
        },
        "rate_limited": {"by_tenant": limited_by_tenant},
        "by_target": by_target,
        "events": events or [],
    }
    if profile.overhead:
        summary["gateway_overhead_ms"] = overhead(answered, targets)
    verdicts = evaluate(summary, slo)
    summary["slos"] = [asdict(v) for v in verdicts]
    summary["passed"] = all(v.passed for v in verdicts)
    return summary


def overhead(answered: Records, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """Per percentile: through the gateway minus direct to the replica, same rate, same run."""
    via = np.array([t["via"] for t in targets])
    direct = summary_ms(answered.select(via[answered.target] == "direct").latency)
    gateway = summary_ms(answered.select(via[answered.target] == "gateway").latency)
    if not direct or not gateway:
        return {"direct": direct, "gateway": gateway}
    added = {k: round(gateway[k] - direct[k], 3) for k in ("p50", "p90", "p99", "p99.9", "max", "mean")}
    return {"direct": direct, "gateway": gateway, "added": added}
