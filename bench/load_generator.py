"""The load generator's own limits on this machine, against endpoints with a known answer time.

Both endpoints are one Envoy (``--concurrency 1``) answering from its route table, so the server
side costs microseconds: ``/fast`` answers at once, ``/slow`` after exactly FIXED_DELAY_MS (Envoy's
fault filter on every request: the ground truth).

- Ceiling: open-loop runs of inferbox's locustfile (one Locust process, FastHttpUser) at rising
  rates against ``/fast``; the ceiling is the highest rate whose achieved/requested ratio is still
  >= 0.95 (the same rule the SLO runs apply).
- Timing error: at a fixed rate against ``/slow``, how far the measured latency (from the intended
  send time, as the SLOs use it) is from the true FIXED_DELAY_MS. Target: median error <= 1 ms.

Prints figures; asserts nothing about wall-clock time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferbox.contract import LoadClientPlace
from inferbox.embedded.envoy_common import TYPES
from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.load.profiles import LoadProfile, Stage
from inferbox.load.records import OK, read_records, summary_ms
from inferbox.load.runner import free_port, run_locust
from inferbox.waiting import eventually

RATES = [int(r) for r in os.environ.get("BENCH_LOAD_RATES", "500,1000,1500,2000,2500,3000,4000,6000").split(",")]
STEP_S = float(os.environ.get("BENCH_LOAD_STEP_S", "8"))
USERS = int(os.environ.get("BENCH_LOAD_USERS", "50"))
FIXED_DELAY_MS = 20.0
TIMING_RATE = float(os.environ.get("BENCH_LOAD_TIMING_RATE", "200"))
TIMING_S = float(os.environ.get("BENCH_LOAD_TIMING_S", "15"))
WARMUP_S = 2.0


def _bootstrap(port: int, admin: int) -> dict[str, Any]:
    answer = {"status": 200, "body": {"inline_string": "{}"}}
    fault = {
        "@type": TYPES["fault"],
        "delay": {
            "fixed_delay": f"{FIXED_DELAY_MS / 1000:.3f}s",
            "percentage": {"numerator": 100, "denominator": "HUNDRED"},
        },
    }
    routes = [
        {"match": {"prefix": "/fast"}, "direct_response": answer},
        {
            "match": {"prefix": "/slow"},
            "direct_response": answer,
            "typed_per_filter_config": {"envoy.filters.http.fault": fault},
        },
    ]
    hcm = {
        "@type": TYPES["hcm"],
        "stat_prefix": "bench",
        "route_config": {"virtual_hosts": [{"name": "bench", "domains": ["*"], "routes": routes}]},
        "http_filters": [
            {"name": "envoy.filters.http.fault", "typed_config": {"@type": TYPES["fault"]}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": TYPES["router"]}},
        ],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
                    ],
                }
            ]
        },
    }


@contextlib.contextmanager
def endpoint(folder: Path) -> Iterator[str]:
    port, admin = free_port(), free_port()
    config = folder / "envoy.yaml"
    config.write_text(yaml.safe_dump(_bootstrap(port, admin)))
    with open(folder / "envoy.log", "wb") as log:
        envoy = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(config),
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> None:
            try:
                assert httpx.get(f"http://127.0.0.1:{admin}/ready", timeout=1).status_code == 200
            except httpx.HTTPError as exc:
                raise AssertionError(str(exc)) from exc

        eventually(ready, timeout_s=30, interval_s=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)


def plan_for(name: str, url: str, rate: float, seconds: float, folder: Path) -> tuple[dict[str, Any], LoadProfile]:
    profile = LoadProfile(name, "bench", (Stage(seconds, rate, USERS),), warmup_s=WARMUP_S, timeout_s=5.0)
    target = {
        "label": name,
        "tenant": "bench",
        "model": "bench",
        "protocol": "v1",
        "via": "direct",
        "weight": 1.0,
        "method": "POST",
        "url": url,
        "host": "bench",
        "auth": False,
        "body": '{"instances": [[6.8, 2.8, 4.8, 1.4]]}',
        "expect": None,
    }
    plan = {
        "name": name,
        "mode": "open",
        "arrival": "constant",
        "seed": 1,
        "stages": [{"seconds": seconds, "rate": rate, "users": USERS}],
        "warmup_s": WARMUP_S,
        "timeout_s": 5.0,
        "workers": 0,
        "targets": [target],
        "token": {"base_url": url, "host": "bench", "path": "/token", "refresh_before_expiry_s": 60},
        "output_dir": str(folder),
    }
    return plan, profile


def _run(name: str, url: str, rate: float, seconds: float, root: Path) -> dict[str, Any]:
    folder = root / name
    folder.mkdir(parents=True)
    plan, profile = plan_for(name, url, rate, seconds, folder)
    run_locust(plan, profile, LoadClientPlace((), url), folder, {})
    records = read_records(folder)
    window = records.select((records.intended >= WARMUP_S) & (records.outcome == OK))
    return {
        "rate": rate,
        "ratio": len(records) / records.scheduled if records.scheduled else 0.0,
        "achieved": len(window) / (seconds - WARMUP_S),
        "latency": summary_ms(window.latency),
        "service": summary_ms(window.service),
        "delay": summary_ms(window.delay),
        "errors": int((records.outcome != OK).sum()),
    }


def run() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="inferbox-bench-load-"))
    try:
        with endpoint(root) as base:
            steps = []
            for rate in RATES:
                step = _run(f"ceiling-{rate}", f"{base}/fast", rate, STEP_S, root)
                steps.append(step)
                if step["ratio"] < 0.95:
                    break
            passing = [s for s in steps if s["ratio"] >= 0.95]
            timing = _run("timing", f"{base}/slow", TIMING_RATE, TIMING_S, root)
        error = {k: round(v - FIXED_DELAY_MS, 3) for k, v in timing["latency"].items() if k not in ("count",)}
        return {
            "steps": steps,
            "ceiling": max((s["rate"] for s in passing), default=0),
            "timing": timing,
            "error_ms": error,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    figures = run()
    print("load generator (inferbox locustfile, open loop, one Locust process, FastHttpUser)")
    print(f"  ceiling against a trivial endpoint (Envoy direct response), {USERS} users, {STEP_S:g}s per rate:")
    for step in figures["steps"]:
        verdict = "ok" if step["ratio"] >= 0.95 else "fell behind"
        print(
            f"    requested {step['rate']:6}/s  achieved {step['achieved']:8.1f}/s  ratio {step['ratio']:.3f}  "
            f"schedule delay p50 {step['delay'].get('p50', float('nan')):7.3f} ms  [{verdict}]"
        )
    print(f"  ceiling: {figures['ceiling']} requests/s with achieved/requested >= 0.95")
    timing, error = figures["timing"], figures["error_ms"]
    count = timing["latency"]["count"]
    print(f"  timing error at {TIMING_RATE:g}/s against a {FIXED_DELAY_MS:g} ms fixed delay ({count} requests):")
    print(
        f"    measured latency - {FIXED_DELAY_MS:g} ms: p50 {error['p50']:.3f} ms  p90 {error['p90']:.3f} ms  "
        f"p99 {error['p99']:.3f} ms  max {error['max']:.3f} ms   [target: median <= 1 ms]"
    )
    delay = timing["delay"]
    print(f"    of which schedule delay (sent late): p50 {delay['p50']:.3f} ms  p99 {delay['p99']:.3f} ms")


if __name__ == "__main__":
    main()
