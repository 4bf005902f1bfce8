"""Cold start of the embedded platform against the bare model server's own start.

One run, alternating: the model idles to zero (its own scale-to-zero settings), one V1 predict goes
through the gateway and is timed from send to answer (the activator holds it while a replica starts:
pod, sidecar, model server, readiness); then the same model server program is started alone on
loopback and timed from spawn to ready, polled exactly as the platform polls its replicas. The
difference of the medians is what activation adds over starting the process itself: the gateway and
activator hops, the autoscaler's decision, the pod's network namespace, quota admission, the
sidecar, mutual TLS to it and the first inference.

Target (issue): activation adds <= 150 ms median over the bare process start. Prints figures only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.results import Figure
from bench.stats import percentile
from bench.suite import main_of
from inferbox.embedded.health import wait_until
from inferbox.embedded.network import free_port
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.jwtserver.clients import read_credentials
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.samples import samples_for
from inferbox.serving import RevisionStatus, cold_start_breakdown, wait_for_zero
from inferbox.topology import Model

CYCLES = int(os.environ.get("BENCH_COLD_CYCLES", "10"))
NAMESPACE, NAME, KIND = "tenant-c", "pytorch-resnet", "digits"
HOST = f"{NAME}.{NAMESPACE}.inference.example"
TITLE = f"cold start ({NAMESPACE}/{NAME}, request at zero to answer through the gateway)"


class _Serving:
    """The contract's revisions() on the platform object (what wait_for_zero needs)."""

    def __init__(self, platform: EmbeddedPlatform) -> None:
        self.platform = platform

    def revisions(self, model: Model) -> list[RevisionStatus]:
        return self.platform.serving.revision_status(model.tenant, model.name)


def bare_start(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning the model server (on loopback, its own process group) until ready."""
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [*argv, f"--http_port={port}"],
        env={**os.environ, **env, "INFERBOX_BIND_HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def ready() -> bool:
            return httpx.get(f"http://127.0.0.1:{port}/v1/models/{NAME}", timeout=1.0).status_code == 200

        wait_until("the bare model server", ready, 90.0, lambda: None if process.poll() is None else "it exited")
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=30)


def run() -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="inferbox-bench-cold-"))
    platform = EmbeddedPlatform(EmbeddedOptions(DEFAULT_MANIFEST_DIR, state, state / "logs"))
    platform.start()
    model = Model(NAME, NAMESPACE, KIND, 0, 3)
    sample = samples_for(KIND)[0]
    try:
        creds = read_credentials(platform.credentials_path)[NAMESPACE]
        client = httpx.Client(base_url=platform.gateway.url, timeout=60.0)
        token = client.post(
            "/token",
            headers={"Host": "auth.inference.example"},
            data={"grant_type": "client_credentials"},
            auth=(creds.client_id, creds.client_secret),
        ).json()["access_token"]
        revision = platform.serving.model_plan(NAMESPACE, NAME).revisions[0]
        spec = platform.serving.revisions[f"{NAMESPACE}/{revision.name}"].spec
        settings = platform.serving.settings(NAMESPACE, NAME)
        cold: list[float] = []
        bare: list[float] = []
        parts: dict[str, list[float]] = {}
        for _ in range(CYCLES):
            wait_for_zero(_Serving(platform), model, settings.idle_to_zero_s + 30)
            sent = time.time()
            response = client.post(
                f"/v1/models/{NAME}:predict",
                json={"instances": sample.instances},
                headers={"Host": HOST, "Authorization": f"Bearer {token}"},
            )
            answered = time.time()
            if response.status_code != 200:
                raise SystemExit(f"cold request failed: {response.status_code} {response.text[:200]}")
            cold.append(answered - sent)
            timings = [t for t in platform.serving.timings(NAMESPACE, NAME, sent - 1.0) if t.ready_at]
            for part, value in cold_start_breakdown(sent, answered, timings[0]).items():
                parts.setdefault(part, []).append(value)
            bare.append(bare_start(spec.argv, spec.env))
        client.close()
    finally:
        platform.stop()
        shutil.rmtree(state, ignore_errors=True)
    return {
        "cycles": CYCLES,
        "cold_start_ms": {"p50": round(statistics.median(cold) * 1000), "p90": round(percentile(cold, 90) * 1000)},
        "bare_process_start_ms": {
            "p50": round(statistics.median(bare) * 1000),
            "p90": round(percentile(bare, 90) * 1000),
        },
        "activation_adds_p50_ms": round((statistics.median(cold) - statistics.median(bare)) * 1000),
        "breakdown_p50_ms": {k: round(statistics.median(v) * 1000) for k, v in parts.items() if k != "total"},
    }


def figures(details: dict[str, Any]) -> list[Figure]:
    cycles = details["cycles"]
    return [
        Figure(
            "activation_adds_p50_ms",
            f"activation adds over the bare model-server start, median of {cycles} cycles",
            float(details["activation_adds_p50_ms"]),
            "ms",
            "<=",
            150.0,
        ),
        Figure(
            "cold_start_p50_ms", "cold start through the gateway, p50", float(details["cold_start_ms"]["p50"]), "ms"
        ),
        Figure(
            "bare_start_p50_ms", "bare model-server start, p50", float(details["bare_process_start_ms"]["p50"]), "ms"
        ),
    ]


def report(details: dict[str, Any]) -> None:
    print(f"{TITLE}, {details['cycles']} cycles")
    for key in ("cold_start_ms", "bare_process_start_ms", "activation_adds_p50_ms", "breakdown_p50_ms"):
        print(f"  {key}: {details[key]}")
    print("  target: activation adds <= 150 ms median over the bare process start")
    sys.stdout.flush()


def main() -> None:
    main_of("cold_start")


if __name__ == "__main__":
    main()
