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
import numpy.typing as npt

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
    if any(t.get("chat_stream") for t in targets):
        summary.update(streams(answered, targets, seconds))
        for label, figures in stream_targets(answered, targets).items():
            by_target[label].update(figures)
    verdicts = evaluate(summary, slo)
    summary["slos"] = [asdict(v) for v in verdicts]
    summary["passed"] = all(v.passed for v in verdicts)
    return summary


def completion_tokens(records: Records) -> tuple[npt.NDArray[np.int64], int]:
    """Each stream's completion tokens: its usage chunk's count, or the chunks with content counted
    when it had no usage; and how many streams were counted that way."""
    if records.tokens is None or records.chunks is None:
        return np.zeros(0, dtype=np.int64), 0
    from_usage = records.tokens >= 0
    return np.where(from_usage, records.tokens, records.chunks), int((~from_usage).sum())


def rate_summary(values: npt.NDArray[np.float64]) -> dict[str, float]:
    """Tokens per second of streams: the slow side is the tail (p10: 10% of streams were slower)."""
    if values.size == 0:
        return {}
    ordered = np.sort(values)

    def at(q: float) -> float:
        return round(float(ordered[max(1, int(np.ceil(q / 100.0 * ordered.size))) - 1]), 3)

    return {
        "p50": at(50),
        "p10": at(10),
        "p1": at(1),
        "min": round(float(ordered[0]), 3),
        "mean": round(float(ordered.mean()), 3),
        "count": int(ordered.size),
    }


@dataclass
class StreamFigures:
    """Per answered stream: time to first token (s), completion tokens, and the per-stream rates."""

    ttft: npt.NDArray[np.float64]
    tokens: npt.NDArray[np.int64]
    counted: int  # streams without usage, whose tokens were counted chunks
    rates: npt.NDArray[np.float64]  # tokens/s of the streams that have one
    unrated: int  # streams without a rate (one token, or all tokens in one read)

    @classmethod
    def of(cls, answered: Records) -> StreamFigures:
        assert answered.first is not None, "records without stream columns"
        tokens, counted = completion_tokens(answered)
        after_first = answered.done - answered.first
        # A stream's own rate: the tokens after the first over the time after the first. Undefined for
        # a single token, or when every token arrived in one read (no time between them to divide by).
        rated = (tokens >= 2) & (after_first > 0)
        rates = (tokens[rated] - 1) / after_first[rated]
        return cls(answered.first - answered.intended, tokens, counted, rates, int((~rated).sum()))


def _streamed(answered: Records, targets: list[dict[str, Any]], index: int | None = None) -> Records | None:
    """The answered requests of streamed targets (or of one target); None when nothing was streamed."""
    if answered.first is None:
        return None
    streamed = np.array([bool(t.get("chat_stream")) for t in targets])
    mask = streamed[answered.target] if index is None else answered.target == index
    mine = answered.select(mask)
    return mine if len(mine) else None


def streams(answered: Records, targets: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Figures of the answered streamed chat completions in the window. Absent measurements stay
    absent (an empty summary, or None), so an SLO on them fails with "no data"."""
    mine = _streamed(answered, targets)
    if mine is None:
        return {"ttft_ms": {}, "tokens_per_s": None, "stream_tokens_per_s": {}, "streams": {"answered": 0}}
    figures = StreamFigures.of(mine)
    total = int(figures.tokens.sum())
    return {
        "ttft_ms": summary_ms(figures.ttft),
        "tokens_per_s": round(total / seconds, 3) if total else None,
        "stream_tokens_per_s": rate_summary(figures.rates),
        "streams": {
            "answered": len(mine),
            "completion_tokens": total,
            "completion_tokens_per_stream": {
                "min": int(figures.tokens.min()),
                "mean": round(float(figures.tokens.mean()), 3),
                "max": int(figures.tokens.max()),
            },
            "tokens_from": {"usage": len(mine) - figures.counted, "counted_chunks": figures.counted},
            "without_a_rate": figures.unrated,
        },
    }


def stream_targets(answered: Records, targets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per streamed target: TTFT and tokens/s of its answered streams."""
    out: dict[str, dict[str, Any]] = {}
    for index, target in enumerate(targets):
        if not target.get("chat_stream"):
            continue
        mine = _streamed(answered, targets, index)
        figures = StreamFigures.of(mine) if mine is not None else None
        out[target["label"]] = {
            "ttft_ms": summary_ms(figures.ttft) if figures else {},
            "stream_tokens_per_s": rate_summary(figures.rates) if figures else {},
        }
    return out


def overhead(answered: Records, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """Per percentile: through the gateway minus direct to the replica, same rate, same run."""
    via = np.array([t["via"] for t in targets])
    direct = summary_ms(answered.select(via[answered.target] == "direct").latency)
    gateway = summary_ms(answered.select(via[answered.target] == "gateway").latency)
    if not direct or not gateway:
        return {"direct": direct, "gateway": gateway}
    added = {k: round(gateway[k] - direct[k], 3) for k in ("p50", "p90", "p99", "p99.9", "max", "mean")}
    return {"direct": direct, "gateway": gateway, "added": added}
