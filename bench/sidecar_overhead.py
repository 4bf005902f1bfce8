"""Latency added by the mesh sidecar hop: gateway -> sidecar (mTLS, token check, RBAC) -> model
versus gateway -> model.

Two embedded platforms run side by side from the same manifests, except that in the second one
tenant-a's namespace has no sidecar injection (its gateway then reaches the model in plaintext, as
Istio's auto mTLS does for a pod without a sidecar). The same V1 predict request with a valid JWT
goes at one fixed rate to each platform's gateway in turn, so both paths see the same machine
conditions; the only difference is the sidecar hop. Clients use the gateways' host listeners.

Target (issue; Istio's published figure for a sidecar pair): added p50 <= 1 ms, added p99 <= 2.8 ms.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.results import Figure
from bench.stats import summary_ms
from bench.suite import main_of
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.jwtserver.clients import read_credentials
from inferbox.manifests import DEFAULT_MANIFEST_DIR

RATE_PER_S = float(os.environ.get("BENCH_RATE", "80"))  # per path; each stays under the 100/s tenant budget
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1200"))  # per path
WARMUP = 50
BODY = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
HOST = "sklearn-iris.tenant-a.inference.example"
TITLE = "sidecar overhead (embedded target, V1 predict through the gateway, valid JWT, fixed rate)"


def without_sidecar(target: Path) -> Path:
    """A copy of the manifests in which tenant-a's namespace is not injected."""
    shutil.copytree(DEFAULT_MANIFEST_DIR, target)
    path = target / "tenants" / "tenant-a" / "namespace.yaml"
    namespace = yaml.safe_load(path.read_text())
    namespace["metadata"]["labels"]["istio-injection"] = "disabled"
    path.write_text(yaml.safe_dump(namespace, sort_keys=False))
    return target


def token(platform: EmbeddedPlatform) -> str:
    creds = read_credentials(platform.credentials_path)["tenant-a"]
    with httpx.Client(base_url=platform.gateway.url) as client:
        response = client.post(
            "/token",
            headers={"Host": "auth.inference.example"},
            data={"grant_type": "client_credentials"},
            auth=(creds.client_id, creds.client_secret),
        )
        response.raise_for_status()
        value: str = response.json()["access_token"]
        return value


def run() -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="inferbox-bench-sidecar-"))
    meshed = EmbeddedPlatform(EmbeddedOptions(DEFAULT_MANIFEST_DIR, work / "meshed", work / "meshed" / "logs"))
    plain = EmbeddedPlatform(
        EmbeddedOptions(without_sidecar(work / "manifests"), work / "plain", work / "plain" / "logs")
    )
    try:
        meshed.start()
        plain.start()
        for platform in (meshed, plain):
            # One warm replica per revision while measuring: scale to zero would idle them away.
            platform.scale("tenant-a", "sklearn-iris", 1)
        assert meshed.deployer.replicas("tenant-a.sklearn-iris")[0].sidecar is not None
        assert plain.deployer.replicas("tenant-a.sklearn-iris")[0].sidecar is None
        paths: list[tuple[str, str, dict[str, str]]] = [
            ("with sidecar", meshed.gateway.url, {"Host": HOST, "Authorization": f"Bearer {token(meshed)}"}),
            ("without sidecar", plain.gateway.url, {"Host": HOST, "Authorization": f"Bearer {token(plain)}"}),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _, _ in paths}
        with httpx.Client(timeout=10.0) as client:
            interval = 1.0 / (2 * RATE_PER_S)
            next_send = time.monotonic()
            for i in range(WARMUP + REQUESTS):
                for name, base, headers in paths:
                    delay = next_send - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing to the fixed rate, not synchronisation
                    begin = time.perf_counter()
                    response = client.post(f"{base}/v1/models/sklearn-iris:predict", json=BODY, headers=headers)
                    elapsed = time.perf_counter() - begin
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
                    if i >= WARMUP:
                        samples[name].append(elapsed)
                    next_send += interval
        with_sidecar, without = summary_ms(samples["with sidecar"]), summary_ms(samples["without sidecar"])
        return {
            "network": meshed.network.kind if meshed.network else "none",
            "rate_per_path": RATE_PER_S,
            "requests_per_path": REQUESTS,
            "without_ms": without,
            "with_ms": with_sidecar,
            "added_ms": {k: round(with_sidecar[k] - without[k], 3) for k in without},
        }
    finally:
        plain.stop()
        meshed.stop()
        shutil.rmtree(work, ignore_errors=True)


def figures(details: dict[str, Any]) -> list[Figure]:
    added = details["added_ms"]
    setup = f"{details['rate_per_path']:g}/s per path, {details['network']} network"
    return [
        Figure("added_p50_ms", f"sidecar hop adds, p50 ({setup})", added["p50"], "ms", "<=", 1.0),
        Figure("added_p99_ms", "sidecar hop adds, p99", added["p99"], "ms", "<=", 2.8),
    ]


def report(details: dict[str, Any]) -> None:
    print(TITLE)
    print(
        f"  network: {details['network']}, {details['requests_per_path']} requests per path "
        f"at {details['rate_per_path']}/s each, alternating"
    )
    for label, key in (
        ("gateway -> model", "without_ms"),
        ("gateway -> sidecar -> model", "with_ms"),
        ("added by the sidecar", "added_ms"),
    ):
        values = details[key]
        print(f"  {label:28} p50 {values['p50']:7.3f} ms   p90 {values['p90']:7.3f} ms   p99 {values['p99']:7.3f} ms")
    print("  targets: added p50 <= 1 ms, added p99 <= 2.8 ms (mTLS, token check and RBAC on the sidecar)")


def main() -> None:
    main_of("sidecar_overhead")


if __name__ == "__main__":
    main()
