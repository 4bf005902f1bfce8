"""Recovery times of the embedded platform after the chaos suite's faults, measured by the client.

Per cycle, on one private platform, through the platform contract only:

- replica replaced: a model at two replicas loses one (SIGKILL, as a pod deleted with grace 0);
  from the kill until a replica requested after it is ready;
- gateway back: the gateway's proxy is killed; from the kill until a valid request through the
  gateway is answered 200 (the supervisor's restart policy starts it again);
- token issuer back: the issuer is stopped and started again; from the start until the token
  endpoint hands out a token.

Saves and prints the median, p90 and max of each (seconds). No wall-clock assertion: figures only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from bench.results import Figure
from bench.stats import percentile
from bench.suite import main_of
from inferbox.contract import Platform
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.profile import load_profile
from inferbox.samples import samples_for
from inferbox.targets import TargetOptions, target_factory
from inferbox.waiting import eventually

CYCLES = int(os.environ.get("BENCH_RECOVERY_CYCLES", "5"))
SETTLE_S = 120.0
DEADLINE_S = 120.0


def _replica_replaced(platform: Platform) -> float:
    model = next(m for m in platform.topology.predictive_models if m.tenant == "tenant-c")
    platform.set_scale_bounds(model, 2, 2, SETTLE_S)
    fault = platform.kill_replica(model, 0)

    def replaced() -> None:
        assert any(t.ready_at for t in platform.replica_timings(model, fault.started)), "no replacement ready"

    eventually(replaced, DEADLINE_S, 0.02)
    return time.time() - fault.started


def _gateway_back(platform: Platform, token: str) -> float:
    model = platform.topology.predictive_models[0]
    sample = samples_for(model.kind)[0]
    fault = platform.kill_gateway()
    with platform.gateway() as client:

        def answered() -> None:
            try:
                status = client.predict_v1(model, sample.instances, token).status_code
            except httpx.TransportError as exc:
                raise AssertionError(str(exc)) from exc
            assert status == 200, f"status {status}"

        eventually(answered, DEADLINE_S, 0.02)
    return time.time() - fault.started


def _issuer_back(platform: Platform) -> float:
    tenant = platform.topology.tenants[0].name
    fault = platform.stop_component("token-issuer", 60)
    started = time.time()
    platform.heal(fault)
    with platform.gateway() as client:

        def issued() -> None:
            assert client.request_token(platform.credentials(tenant)).status_code == 200, "no token yet"

        eventually(issued, DEADLINE_S, 0.02)
    return time.time() - started


TITLE = "recovery after the chaos suite's faults (embedded target, through the contract)"
NAMES = {
    "replica replaced": "replica_replaced_s",
    "gateway back": "gateway_back_s",
    "token issuer back": "issuer_back_s",
}


def run() -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in NAMES}
    with TemporaryDirectory(prefix="inferbox-bench-recovery-") as tmp:
        options = TargetOptions(DEFAULT_MANIFEST_DIR, load_profile(), Path(tmp))
        with target_factory("embedded")(options) as platform:
            with platform.gateway() as client:
                tenant = platform.topology.predictive_models[0].tenant
                token = client.token(platform.credentials(tenant))
            for _ in range(CYCLES):
                samples["replica replaced"].append(_replica_replaced(platform))
                samples["gateway back"].append(_gateway_back(platform, token))
                samples["token issuer back"].append(_issuer_back(platform))
            for model in platform.topology.models:
                platform.restore_model(model, SETTLE_S)
    summary = {}
    for name, values in samples.items():
        ordered = sorted(values)
        summary[NAMES[name]] = {
            "p50": round(percentile(ordered, 50), 3),
            "p90": round(percentile(ordered, 90), 3),
            "max": round(ordered[-1], 3),
        }
    return {"cycles": CYCLES, **summary}


def figures(details: dict[str, Any]) -> list[Figure]:
    return [
        Figure(key, f"{name}, median of {details['cycles']} cycles", float(details[key]["p50"]), "s")
        for name, key in NAMES.items()
    ]


def report(details: dict[str, Any]) -> None:
    print(f"{TITLE}, {details['cycles']} cycles:")
    for name, key in NAMES.items():
        row = details[key]
        print(f"  {name:<20} median {row['p50']:6.2f}s  p90 {row['p90']:6.2f}s  max {row['max']:6.2f}s")


if __name__ == "__main__":
    main_of("recovery")
