"""How accurate the load generator's latencies are, next to wrk, against endpoints with a known schedule.

Both tools run in one benchmark against bench.endpoint (answers a known delay after each request
reached the kernel, freezing on a known schedule), the client pinned to one CPU and the endpoint to
the other when there are two.

- Fixed delay: open loop at FIXED_RATE against an endpoint answering after FIXED_DELAY_MS. The truth
  is the delay itself; the error is measured latency minus it. inferbox and wrk (pacing script,
  enough connections for the rate) alternate for ROUNDS rounds so both see the same machine. The
  endpoint's own release lateness is printed too: it is part of both tools' error.
- Stall: the same endpoint freezing all responses for STALL_MS at every STALL_EVERY-th request, at
  STALL_RATE with STALL_CONNECTIONS connections to begin with. The truth is what an ideal open-loop
  client (every request sent at its intended time, never waiting for a connection) would measure,
  computed from the endpoint's schedule; p50/p90/p99 of each tool are compared with it.

Targets (issue 13): median error <= 0.5 ms at 200/s; stall p50/p90/p99 within 10 % of the truth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.load_runs import known_endpoint, pinned, plan_for, realtime_allowed, run_plan, scratch, wrk
from bench.results import Figure
from bench.suite import main_of
from inferbox.load.records import OK, percentile

TITLE = "load generator accuracy (inferbox's Locust runner next to wrk 4)"
FIXED_DELAY_MS = 20.0
FIXED_RATE = float(os.environ.get("BENCH_ACCURACY_RATE", "200"))
FIXED_S = float(os.environ.get("BENCH_ACCURACY_SECONDS", "12"))
ROUNDS = int(os.environ.get("BENCH_ACCURACY_ROUNDS", "3"))
FIXED_CONNECTIONS = 10  # rate x delay = 4 connections busy at once; wrk needs headroom above that
STALL_EVERY, STALL_MS, STALL_RATE, STALL_CONNECTIONS = 100, 1000.0, 20.0, 4
STALL_S = float(os.environ.get("BENCH_STALL_SECONDS", "60"))
WARMUP_S = 2.0
CLIENT_CPU, ENDPOINT_CPU = 0, 1
QUANTILES = (50, 90, 99)
# Both tools and the endpoint at the lowest real-time priority when allowed (BENCH_REALTIME=0: never).
REALTIME = os.environ.get("BENCH_REALTIME", "1") != "0" and realtime_allowed()

Floats = npt.NDArray[np.float64]


def ideal_stall(rate: float, seconds: float, delay_s: float, every: int, stall_s: float) -> tuple[Floats, Floats]:
    """Intended times and latencies an ideal open-loop client would see from bench.endpoint's schedule:
    request j arrives at j/rate; the every-th arrival starts a freeze of stall_s; a response due
    inside a freeze leaves when the freeze ends."""
    intended = np.arange(round(rate * seconds), dtype=np.float64) / rate
    release = intended + delay_s
    for index in range(every - 1, intended.size, every):
        start = intended[index]
        frozen = (release >= start) & (release < start + stall_s)
        release[frozen] = start + stall_s
    return intended, release - intended


def _ms(values: Floats) -> dict[str, float]:
    return {f"p{q}": round(percentile(values, q) * 1000, 3) for q in QUANTILES}


def _locust_latencies(name: str, url: str, rate: float, seconds: float, users: int, folder: Path) -> dict[str, Any]:
    plan, profile = plan_for(name, url, rate, seconds, folder / name, users=users, warmup_s=WARMUP_S, realtime=REALTIME)
    records = run_plan(plan, profile, folder / name, prefix=pinned(CLIENT_CPU))
    window = records.select(records.intended >= WARMUP_S)
    answered = window.select(window.outcome == OK)
    return {
        "latency": answered.latency,
        "delay": window.delay,
        "errors": int((window.outcome != OK).sum()),
        "scheduled": records.scheduled,
        "recorded": len(records),
        "generator": records.generator,
    }


def fixed_delay(root: Path) -> dict[str, Any]:
    delay_s = FIXED_DELAY_MS / 1000
    ours: list[Floats] = []
    delays: list[Floats] = []
    theirs: list[Floats] = []
    reports = []
    errors = {"inferbox": 0, "wrk": 0}
    for round_ in range(ROUNDS):
        with known_endpoint(root, FIXED_DELAY_MS, cpu=ENDPOINT_CPU, realtime=REALTIME) as endpoint:
            run = _locust_latencies(f"fixed-{round_}", endpoint.url, FIXED_RATE, FIXED_S, FIXED_CONNECTIONS, root)
            ours.append(run["latency"])
            delays.append(run["delay"])
            errors["inferbox"] += run["errors"]
            paced = wrk(
                endpoint.url, FIXED_S, FIXED_CONNECTIONS, rate_per_thread=FIXED_RATE, cpu=CLIENT_CPU, realtime=REALTIME
            )
            theirs.append(paced.latency_s)
            errors["wrk"] += sum(paced.errors.values())
        reports.append(endpoint.report)
    inferbox, wrk_all = np.concatenate(ours), np.concatenate(theirs)
    lateness = [r["release_lateness_ms"]["p50"] for r in reports if r]
    return {
        "rate": FIXED_RATE,
        "delay_ms": FIXED_DELAY_MS,
        "rounds": ROUNDS,
        "seconds_per_round": FIXED_S,
        "inferbox": {
            "requests": int(inferbox.size),
            "errors": errors["inferbox"],
            "error_ms": {**{k: round(v - FIXED_DELAY_MS, 3) for k, v in _ms(inferbox).items()}},
            "schedule_delay_ms": _ms(np.concatenate(delays)),
        },
        "wrk": {
            "requests": int(wrk_all.size),
            "errors": errors["wrk"],
            "error_ms": {k: round(v - FIXED_DELAY_MS, 3) for k, v in _ms(wrk_all).items()},
        },
        "endpoint_release_lateness_p50_ms": round(float(np.median(lateness)), 4) if lateness else None,
        "truth_ms": delay_s * 1000,
    }


def stall(root: Path) -> dict[str, Any]:
    delay_s, stall_s = FIXED_DELAY_MS / 1000, STALL_MS / 1000
    with known_endpoint(root, FIXED_DELAY_MS, STALL_EVERY, STALL_MS, cpu=ENDPOINT_CPU, realtime=REALTIME) as endpoint:
        run = _locust_latencies("stall", endpoint.url, STALL_RATE, STALL_S, STALL_CONNECTIONS, root)
    ours_report = endpoint.report
    with known_endpoint(root, FIXED_DELAY_MS, STALL_EVERY, STALL_MS, cpu=ENDPOINT_CPU, realtime=REALTIME) as endpoint:
        paced = wrk(
            endpoint.url, STALL_S, STALL_CONNECTIONS, rate_per_thread=STALL_RATE, cpu=CLIENT_CPU, realtime=REALTIME
        )
    intended, truth = ideal_stall(STALL_RATE, STALL_S, delay_s, STALL_EVERY, stall_s)
    truth_window = truth[intended >= WARMUP_S]
    truth_ms, ours_ms, theirs_ms = _ms(truth_window), _ms(run["latency"]), _ms(paced.latency_s)
    # wrk runs from its first request to the end without a warm-up: its truth is the whole timeline.
    wrk_truth_ms = _ms(truth)

    def error_pct(measured: dict[str, float], true: dict[str, float]) -> dict[str, float]:
        return {k: round((measured[k] / true[k] - 1) * 100, 2) for k in true}

    return {
        "rate": STALL_RATE,
        "connections": STALL_CONNECTIONS,
        "seconds": STALL_S,
        "delay_ms": FIXED_DELAY_MS,
        "stall_every": STALL_EVERY,
        "stall_ms": STALL_MS,
        "truth_ms": truth_ms,
        "inferbox": {
            "latency_ms": ours_ms,
            "error_pct": error_pct(ours_ms, truth_ms),
            "requests": int(run["latency"].size),
            "errors": run["errors"],
            "generator": run["generator"],
            "schedule_delay_ms": _ms(run["delay"]),
            "endpoint_freezes": len(ours_report.get("freezes", [])),
        },
        "wrk": {
            "latency_ms": theirs_ms,
            "truth_ms": wrk_truth_ms,
            "error_pct": error_pct(theirs_ms, wrk_truth_ms),
            "requests": paced.requests,
            "errors": sum(paced.errors.values()),
            "endpoint_freezes": len(endpoint.report.get("freezes", [])),
        },
        "expected_freezes": round(STALL_RATE * STALL_S) // STALL_EVERY,
    }


def run() -> dict[str, Any]:
    with scratch("inferbox-bench-accuracy-") as root:
        return {"realtime": REALTIME, "fixed": fixed_delay(root), "stall": stall(root)}


def figures(details: dict[str, Any]) -> list[Figure]:
    fixed, stalled = details["fixed"], details["stall"]
    rate = f"{fixed['rate']:g}/s, {fixed['delay_ms']:g} ms endpoint"
    out = [
        Figure(
            "fixed_median_error_ms",
            f"median error of reported latency ({rate})",
            fixed["inferbox"]["error_ms"]["p50"],
            "ms",
            "<=",
            0.5,
        ),
        Figure("fixed_median_error_wrk_ms", f"wrk: median error ({rate})", fixed["wrk"]["error_ms"]["p50"], "ms"),
    ]
    if fixed["endpoint_release_lateness_p50_ms"] is not None:
        out.append(
            Figure(
                "fixed_endpoint_lateness_ms",
                "of which the endpoint's own lateness (median, in both tools' error)",
                fixed["endpoint_release_lateness_p50_ms"],
                "ms",
            )
        )
    setup = f"{stalled['rate']:g}/s, {stalled['connections']} connections, 1 s freeze every {stalled['stall_every']}th"
    for q in ("p50", "p90", "p99"):
        truth = stalled["truth_ms"][q]
        measured = stalled["inferbox"]["latency_ms"][q]
        out.append(
            Figure(
                f"stall_{q}_error_pct",
                f"stall test {q} against the ideal open-loop client ({setup})",
                abs(stalled["inferbox"]["error_pct"][q]),
                "%",
                "<=",
                10.0,
                note=f"{measured:,.1f} ms, truth {truth:,.1f} ms",
            )
        )
    for q in ("p50", "p90", "p99"):
        out.append(
            Figure(
                f"stall_{q}_error_wrk_pct",
                f"wrk: stall test {q} against the ideal open-loop client",
                abs(stalled["wrk"]["error_pct"][q]),
                "%",
                note=f"{stalled['wrk']['latency_ms'][q]:,.1f} ms, truth {stalled['wrk']['truth_ms'][q]:,.1f} ms",
            )
        )
    return out


def report(details: dict[str, Any]) -> None:
    fixed, stalled = details["fixed"], details["stall"]
    print(TITLE)
    priority = "the lowest real-time priority (SCHED_FIFO 1)" if details["realtime"] else "normal priority"
    print(f"  client on CPU {CLIENT_CPU}, endpoint on CPU {ENDPOINT_CPU}, both tools and the endpoint at {priority}")
    print(
        f"  fixed delay: {fixed['delay_ms']:g} ms endpoint, {fixed['rate']:g}/s open loop, {fixed['rounds']} rounds of "
        f"{fixed['seconds_per_round']:g} s each, inferbox and wrk alternating"
    )
    for tool in ("inferbox", "wrk"):
        error = fixed[tool]["error_ms"]
        print(
            f"    {tool:9} measured - truth: p50 {error['p50']:+.3f} ms  p90 {error['p90']:+.3f} ms  "
            f"p99 {error['p99']:+.3f} ms   ({fixed[tool]['requests']} requests, {fixed[tool]['errors']} errors)"
        )
    delay = fixed["inferbox"]["schedule_delay_ms"]
    print(f"    inferbox schedule delay (sent late): p50 {delay['p50']:.3f} ms  p99 {delay['p99']:.3f} ms")
    print(f"    endpoint's own release lateness, median: {fixed['endpoint_release_lateness_p50_ms']} ms")
    print(
        f"  stall: {stalled['stall_ms']:g} ms freeze every {stalled['stall_every']}th request, "
        f"{stalled['rate']:g}/s, {stalled['connections']} connections, {stalled['seconds']:g} s"
    )
    truth = stalled["truth_ms"]
    print(f"    ideal open loop  p50 {truth['p50']:9.1f} ms  p90 {truth['p90']:9.1f} ms  p99 {truth['p99']:9.1f} ms")
    for tool in ("inferbox", "wrk"):
        values, errors = stalled[tool]["latency_ms"], stalled[tool]["error_pct"]
        print(
            f"    {tool:16} "
            + "  ".join(f"{q} {values[q]:9.1f} ms ({errors[q]:+.1f} %)" for q in ("p50", "p90", "p99"))
        )
    print(
        f"    endpoint freezes: {stalled['inferbox']['endpoint_freezes']} (inferbox run), "
        f"{stalled['wrk']['endpoint_freezes']} (wrk run), expected {stalled['expected_freezes']}; "
        f"inferbox generator {stalled['inferbox']['generator']}"
    )
    print("  targets: median error <= 0.5 ms; stall p50/p90/p99 within 10 % of the ideal open-loop client")


def main() -> None:
    main_of("load_accuracy")


if __name__ == "__main__":
    main()
