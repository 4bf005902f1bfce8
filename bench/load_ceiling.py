"""The load generator's ceiling on this machine, by a rule that means something, next to wrk's maximum.

Against one Envoy answering from its route table (the server costs microseconds), inferbox's
locustfile runs open loop at rising rates with a Locust master and WORKERS worker processes
(default: one per CPU, each pinned to its own). A rate counts as sustained when at least 95 % of
the requests scheduled in the measured window were sent within 1 ms of their intended time AND
answered successfully; a request never sent counts against it. A rate that misses gets one more run
(ATTEMPTS), since on a shared machine someone else's burst can sink a run; every run's share is
reported. The ceiling is the highest sustained rate (the search stops after two rates in a row
fail). For every rate the lateness distribution is printed. Before and after, a bare timer loop
(bench.waker) measures how late this machine wakes a process that does nothing else: the share it
manages within 1 ms bounds what any generator can do at that time. wrk then runs flat out (closed
loop, as many threads as CPUs, 50 connections) against the same Envoy: its maximum is the most this
machine and endpoint answer at all.

Target (issue 13): a ceiling of at least 5,000 requests/s open loop on one machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.load_runs import envoy_endpoint, pinned, plan_for, run_plan, scratch, wrk
from bench.results import Figure
from bench.suite import main_of
from inferbox.load.records import OK, percentile

TITLE = "load generator ceiling (open loop, several Locust worker processes)"
RATES = [
    int(r) for r in os.environ.get("BENCH_CEILING_RATES", "1000,2000,3000,4000,5000,6000,8000,10000,12000").split(",")
]
STEP_S = float(os.environ.get("BENCH_CEILING_STEP_S", "8"))
WARMUP_S = 2.0
WORKERS = int(os.environ.get("BENCH_CEILING_WORKERS", str(os.cpu_count() or 1)))
CONNECTIONS = 20  # to begin with, over all workers; the pool grows when every connection is busy
ON_TIME_S = 0.001
REQUIRED_SHARE = 0.95
WRK_CONNECTIONS = 50
# A rate gets a second run when the first misses the rule: on a machine shared with other work a
# burst of someone else's load can sink one run; both runs are reported.
ATTEMPTS = int(os.environ.get("BENCH_CEILING_ATTEMPTS", "2"))


def step(rate: int, url: str, root: Any) -> dict[str, Any]:
    """Up to ATTEMPTS runs at ``rate``: the first that meets the rule, or the last (each is kept)."""
    attempts = []
    for attempt in range(ATTEMPTS):
        attempts.append(one_run(rate, url, root / f"rate-{rate}-{attempt}"))
        if attempts[-1]["sustained"]:
            break
    return {
        **attempts[-1],
        "attempts": len(attempts),
        "earlier_on_time_shares": [a["on_time_and_ok_share"] for a in attempts[:-1]],
    }


def one_run(rate: int, url: str, folder: Any) -> dict[str, Any]:
    plan, profile = plan_for(f"ceiling-{rate}", url, rate, STEP_S, folder, users=CONNECTIONS, workers=WORKERS)
    # Each worker on a CPU of its own (they would otherwise at times share one).
    records = run_plan(plan, profile, folder, worker_prefix=lambda i: pinned(i % (os.cpu_count() or 1)))
    window = records.select((records.intended >= WARMUP_S) & (records.intended < STEP_S))
    scheduled = round(rate * (STEP_S - WARMUP_S))  # constant spacing: exact
    ok = window.outcome == OK
    on_time = window.delay <= ON_TIME_S
    delay_ms = window.delay * 1000
    lateness: dict[str, float] = {}
    if len(window):
        lateness = {f"p{q:g}": round(percentile(delay_ms, q), 3) for q in (50, 90, 99, 99.9)}
        lateness["max"] = round(float(delay_ms.max()), 3)
    share = float((ok & on_time).sum()) / scheduled if scheduled else 0.0
    return {
        "rate": rate,
        "scheduled": scheduled,
        "sent": len(window),
        "answered_ok": int(ok.sum()),
        "on_time": int(on_time.sum()),
        "on_time_and_ok_share": round(share, 4),
        "sustained": share >= REQUIRED_SHARE,
        "lateness_ms": lateness,
        "lateness_share_ms": {
            f"<= {bound:g}": round(float((window.delay <= bound / 1000).sum()) / scheduled, 4)
            for bound in (0.1, 0.5, 1, 5, 50)
        },
        "generator": records.generator,
        "cpu_us_per_request": round(1e6 * (records.generator or {}).get("cpu_s", 0.0) / max(1, len(records)), 1),
        "achieved_rate": round(float(ok.sum()) / (STEP_S - WARMUP_S), 1),
    }


def machine_noise() -> dict[str, float]:
    """bench.waker in its own process: how late this machine wakes a process doing nothing else."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.waker", "--rate", "1000", "--seconds", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    noise: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return noise


def run() -> dict[str, Any]:
    noise_before = machine_noise()
    with scratch("inferbox-bench-ceiling-") as root, envoy_endpoint(root) as base:
        url = f"{base}/fast"
        steps: list[dict[str, Any]] = []
        failures = 0
        for rate in RATES:
            result = step(rate, url, root)
            steps.append(result)
            failures = 0 if result["sustained"] else failures + 1
            if failures >= 2:
                break
        flat_out = wrk(url, STEP_S, WRK_CONNECTIONS, threads=os.cpu_count() or 1)
    sustained = [s["rate"] for s in steps if s["sustained"]]
    noise_after = machine_noise()
    return {
        "machine_wake_lateness_ms": {"before": noise_before, "after": noise_after},
        "workers": WORKERS,
        "step_s": STEP_S,
        "warmup_s": WARMUP_S,
        "rule": f">= {REQUIRED_SHARE:.0%} of scheduled requests sent within {ON_TIME_S * 1000:g} ms and answered OK",
        "steps": steps,
        "ceiling": max(sustained, default=0),
        "wrk_max": {
            "rate": round(flat_out.rate, 1),
            "threads": os.cpu_count() or 1,
            "connections": WRK_CONNECTIONS,
            "errors": sum(flat_out.errors.values()),
            "latency_p50_ms": round(float(np.median(flat_out.latency_s)) * 1000, 3)
            if flat_out.latency_s.size
            else None,
        },
    }


def figures(details: dict[str, Any]) -> list[Figure]:
    ceiling_step = next((s for s in details["steps"] if s["rate"] == details["ceiling"]), None)
    note = ""
    if ceiling_step is not None:
        late = ceiling_step["lateness_ms"]
        share = ceiling_step["on_time_and_ok_share"]
        note = f"lateness p50 {late['p50']:.3f} ms, p99 {late['p99']:.3f} ms; {share:.1%} on time and answered"
    busiest = max(details["steps"], key=lambda s: s["rate"])
    return [
        Figure(
            "ceiling_rps",
            f"open-loop ceiling, {details['workers']} Locust workers (>= 95 % sent within 1 ms and answered)",
            float(details["ceiling"]),
            "req/s",
            ">=",
            5000.0,
            note=note,
        ),
        Figure(
            "generator_cpu_us_per_request",
            f"generator CPU per request (all workers, at {busiest['rate']:,}/s)",
            busiest["cpu_us_per_request"],
            "µs",
            note=f"at most {1e6 / busiest['cpu_us_per_request']:,.0f} requests/s per fully available core"
            if busiest["cpu_us_per_request"]
            else "",
        ),
        Figure(
            "machine_wakeups_within_1ms_pct",
            "a bare timer loop on this machine at the time: wake-ups within 1 ms (before; after)",
            round(100 * details["machine_wake_lateness_ms"]["before"]["within_1ms"], 1),
            "%",
            note=f"after: {100 * details['machine_wake_lateness_ms']['after']['within_1ms']:.1f} %",
        ),
        Figure(
            "wrk_max_rps",
            f"wrk flat out, same endpoint ({details['wrk_max']['threads']} threads, closed loop)",
            float(details["wrk_max"]["rate"]),
            "req/s",
        ),
    ]


def report(details: dict[str, Any]) -> None:
    print(TITLE)
    print(
        f"  Envoy direct response; {details['workers']} workers; {details['step_s']:g} s per rate, "
        f"{details['warmup_s']:g} s warm-up; rule: {details['rule']}"
    )
    print("    requested   sent ok&on-time  lateness p50      p90      p99    p99.9      max   <=0.1ms  <=1ms")
    for s in details["steps"]:
        late, share = s["lateness_ms"], s["lateness_share_ms"]
        print(
            f"    {s['rate']:7}/s {s['sent'] / s['scheduled']:6.1%} {s['on_time_and_ok_share']:9.1%}  "
            + "".join(f"{late.get(k, float('nan')):9.3f}" for k in ("p50", "p90", "p99", "p99.9", "max"))
            + f"  {share['<= 0.1']:7.1%} {share['<= 1']:6.1%}  [{'sustained' if s['sustained'] else 'not sustained'}]"
            + (
                f" (earlier run: {', '.join(f'{x:.1%}' for x in s['earlier_on_time_shares'])})"
                if s.get("earlier_on_time_shares")
                else ""
            )
        )
    print(f"  ceiling: {details['ceiling']:,} requests/s   [target >= 5,000/s]")
    for when, noise in details["machine_wake_lateness_ms"].items():
        print(
            f"  machine noise {when}: a bare timer loop at 1,000 wake-ups/s woke within 1 ms {noise['within_1ms']:.1%} "
            f"of the time (lateness p50 {noise['p50']:.3f} ms, p99 {noise['p99']:.3f} ms)"
        )
    wrk_max = details["wrk_max"]
    print(
        f"  wrk flat out ({wrk_max['threads']} threads, {wrk_max['connections']} connections, closed loop): "
        f"{wrk_max['rate']:,.0f} requests/s"
    )


def main() -> None:
    main_of("load_ceiling")


if __name__ == "__main__":
    main()
