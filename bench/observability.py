"""What observability costs and how fast it reflects a request, on the embedded target.

1. The gateway's added latency (through the gateway minus directly to the model, as in
   gateway_overhead) on two platforms running side by side: the manifests as shipped (tracing at
   100 % sampling, Prometheus scraping every second) and the same manifests without any telemetry
   (no EnvoyProxy telemetry, no monitors, no Istio Telemetry). The four paths alternate at one fixed
   rate so all see the same machine conditions. The difference of the two added latencies is what
   tracing and metrics add at the gateway. Target (issue): tracing at 100 % adds <= 0.5 ms p50.
2. On the platform with telemetry: for >= 20 single requests, the time from the response to the
   request's trace being complete in the trace store (gateway and model spans), and to its request
   counter being visible in Prometheus. p50 and max.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.gateway_overhead import BODY, WARMUP, client_in, mesh_tls
from bench.results import Figure
from bench.stats import percentile, summary_ms
from bench.suite import main_of
from inferbox.contract import Signal
from inferbox.embedded.catalogue import CATALOGUE
from inferbox.embedded.platform import GATEWAY_POD_PORT, EmbeddedOptions, EmbeddedPlatform
from inferbox.jwtserver.clients import read_credentials
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests

RATE_PER_S = float(os.environ.get("BENCH_RATE", "50"))  # per path; four paths alternate
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "800"))  # per path
PROBES = int(os.environ.get("BENCH_PROBES", "20"))
HOST = "sklearn-iris.tenant-a.inference.example"
TELEMETRY_KINDS = {"PodMonitor", "ServiceMonitor", "Telemetry"}
TITLE = "observability cost and visibility (embedded target, V1 predict, valid JWT, fixed rate)"


def without_telemetry(source: Path, target: Path) -> Path:
    """A copy of the manifests with every telemetry object and the EnvoyProxy's telemetry removed."""
    shutil.copytree(source, target)
    for path in sorted(target.rglob("*.yaml")):
        if path.name == "versions.yaml":
            continue
        objects = [o for o in load_manifests_file(path) if o["kind"] not in TELEMETRY_KINDS]
        for obj in objects:
            if obj["kind"] == "EnvoyProxy":
                obj.get("spec", {}).pop("telemetry", None)
        if objects:
            path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        else:
            path.unlink()  # an empty manifest file is refused
    load_manifests(target)  # still a valid platform
    return target


def load_manifests_file(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@contextmanager
def running(manifests: Path) -> Iterator[EmbeddedPlatform]:
    state = Path(tempfile.mkdtemp(prefix="inferbox-bench-"))
    platform = EmbeddedPlatform(EmbeddedOptions(manifests, state, state / "logs"))
    platform.start()
    try:
        # One warm replica while measuring: the model would otherwise idle to zero between requests.
        platform.scale("tenant-a", "sklearn-iris", 1)
        yield platform
    finally:
        platform.stop()
        shutil.rmtree(state, ignore_errors=True)


def _token(platform: EmbeddedPlatform) -> str:
    creds = read_credentials(platform.credentials_path)["tenant-a"]
    with httpx.Client(base_url=platform.gateway.url) as client:
        token: str = client.post(
            "/token",
            headers={"Host": "auth.inference.example"},
            data={"grant_type": "client_credentials"},
            auth=(creds.client_id, creds.client_secret),
        ).json()["access_token"]
    return token


@dataclass
class _Paths:
    direct_url: str
    gateway_url: str
    token: str
    direct: httpx.Client  # from the tenant's mesh probe pod, with its mTLS identity (the sidecar is STRICT)
    client: httpx.Client
    direct_s: list[float] = field(default_factory=list)
    gateway_s: list[float] = field(default_factory=list)


def _paths(platform: EmbeddedPlatform, stack: ExitStack) -> _Paths:
    """The model directly (through its sidecar, as a mesh client of its tenant) and through the
    gateway, from client pods of this platform (as in gateway_overhead)."""
    assert platform.network is not None
    assert platform.mesh is not None
    token = _token(platform)
    client_pod = platform.network.add_pod("bench.client")
    host, port = platform.deployer.replicas("tenant-a.sklearn-iris")[0].endpoint
    probe = platform.mesh.probes["tenant-a"]
    assert probe.cert is not None
    tls = mesh_tls(str(probe.cert.cert), str(probe.cert.key), str(platform.mesh.pki.bundle_path))
    if client_pod.netns:
        gateway_url = f"http://{platform.gateway.pod.ip}:{GATEWAY_POD_PORT}/v1/models/sklearn-iris:predict"
    else:
        gateway_url = f"{platform.gateway.url}/v1/models/sklearn-iris:predict"
    return _Paths(
        f"https://{host}:{port}/v1/models/sklearn-iris:predict",
        gateway_url,
        token,
        stack.enter_context(client_in(probe.pod.netns_path, tls)),
        stack.enter_context(client_in(client_pod.netns_path)),
    )


def added_latency(platforms: dict[str, EmbeddedPlatform]) -> dict[str, Any]:
    """Direct and through-gateway latency on every platform, all paths alternating at the fixed
    rate so that each sees the same machine conditions."""
    with ExitStack() as stack:
        paths = {name: _paths(p, stack) for name, p in platforms.items()}
        interval = 1.0 / (2 * len(paths) * RATE_PER_S)
        next_send = time.monotonic()
        for i in range(WARMUP + REQUESTS):
            for path in paths.values():
                bearer = {"Authorization": f"Bearer {path.token}"}
                for sender, url, headers, samples in (
                    (path.direct, path.direct_url, bearer, path.direct_s),
                    (path.client, path.gateway_url, {"Host": HOST, **bearer}, path.gateway_s),
                ):
                    delay = next_send - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing to the fixed rate, not synchronisation
                    begin = time.perf_counter()
                    response = sender.post(url, json=BODY, headers=headers)
                    elapsed = time.perf_counter() - begin
                    if response.status_code != 200:
                        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
                    if i >= WARMUP:
                        samples.append(elapsed)
                    next_send += interval
    figures = {}
    for name, path in paths.items():
        direct, through = summary_ms(path.direct_s), summary_ms(path.gateway_s)
        figures[name] = {
            "direct_ms": direct,
            "gateway_ms": through,
            "added_ms": {k: round(through[k] - direct[k], 3) for k in direct},
        }
    return figures


def _poll(check: Any, timeout_s: float = 30.0, every_s: float = 0.05) -> float:
    """Seconds until ``check()`` is true (polling, bounded)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(every_s)
    raise RuntimeError(f"not visible within {timeout_s}s")


def visibility(platform: EmbeddedPlatform) -> dict[str, Any]:  # noqa: C901 - one measurement read top to bottom
    obs = platform.observability.state()
    assert obs.prometheus_url, "the manifests define no monitors"
    assert obs.jaeger_query_url, "the manifests define no tracing"
    prometheus = httpx.Client(base_url=obs.prometheus_url, timeout=5)
    jaeger = httpx.Client(base_url=obs.jaeger_query_url, timeout=5)
    gateway = httpx.Client(base_url=platform.gateway.url, timeout=10)
    token = _token(platform)
    counter = CATALOGUE.query(Signal.REQUESTS, tenant="tenant-a", model="sklearn-iris", code="200")

    def value() -> float:
        result = prometheus.get("/api/v1/query", params={"query": counter}).json()["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def complete(trace_id: str) -> bool:
        response = jaeger.get(f"/api/traces/{trace_id}")
        if response.status_code != 200:
            return False
        spans = response.json()["data"][0]
        services = {spans["processes"][s["processID"]]["serviceName"] for s in spans["spans"]}
        return {"inference-gateway.envoy-gateway-system", "sklearn-iris-predictor.tenant-a"} <= services

    def predict(trace_id: str) -> None:
        response = gateway.post(
            "/v1/models/sklearn-iris:predict",
            json=BODY,
            headers={
                "Host": HOST,
                "Authorization": f"Bearer {token}",
                "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} {response.text[:200]}")

    trace_s: list[float] = []
    metric_s: list[float] = []
    try:
        predict(secrets.token_hex(16))  # the counter series exists from here on
        _poll(lambda: value() >= 1)
        for _ in range(PROBES):
            before = value()  # includes every earlier request: the previous probe waited for it
            trace_id = secrets.token_hex(16)
            predict(trace_id)
            done = time.monotonic()
            seen: dict[str, float] = {}
            while len(seen) < 2:
                if time.monotonic() - done > 30:
                    raise RuntimeError(f"request not visible within 30 s: {sorted(seen)} seen")
                if "trace" not in seen and complete(trace_id):
                    seen["trace"] = time.monotonic() - done
                if "counter" not in seen and value() >= before + 1:
                    seen["counter"] = time.monotonic() - done
                time.sleep(0.02)  # polling interval, bounded by the 30 s limit above
            trace_s.append(seen["trace"])
            metric_s.append(seen["counter"])
    finally:
        for client in (prometheus, jaeger, gateway):
            client.close()

    def stats(samples: list[float]) -> dict[str, float]:
        return {"p50": round(percentile(samples, 50), 3), "max": round(max(samples), 3)}

    return {"probes": PROBES, "trace_s": stats(trace_s), "counter_s": stats(metric_s)}


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="inferbox-bench-manifests-") as tmp:
        bare = without_telemetry(DEFAULT_MANIFEST_DIR, Path(tmp) / "manifests")
        with running(DEFAULT_MANIFEST_DIR) as on, running(bare) as off:
            figures["network"] = on.network.kind if on.network else "none"
            figures.update(added_latency({"with_telemetry": on, "without_telemetry": off}))
            figures["visibility"] = visibility(on)
    with_, without = figures["with_telemetry"]["added_ms"], figures["without_telemetry"]["added_ms"]
    figures["telemetry_adds_ms"] = {k: round(with_[k] - without[k], 3) for k in with_}
    return figures


def _percentiles(values: dict[str, float]) -> str:
    return "   ".join(f"{k} {values[k]:7.3f} ms" for k in ("p50", "p90", "p99"))


def figures(details: dict[str, Any]) -> list[Figure]:
    vis = details["visibility"]
    return [
        Figure(
            "telemetry_adds_p50_ms",
            f"tracing (100 %) and metrics add at the gateway, p50 ({RATE_PER_S:g}/s per path)",
            details["telemetry_adds_ms"]["p50"],
            "ms",
            "<=",
            0.5,
        ),
        Figure("trace_visible_p50_s", "request to its trace queryable, p50", vis["trace_s"]["p50"], "s"),
        Figure("counter_visible_p50_s", "request to its counter in Prometheus, p50", vis["counter_s"]["p50"], "s"),
    ]


def report(details: dict[str, Any]) -> None:
    print(TITLE)
    print(f"  network: {details['network']}, {REQUESTS} requests per path at {RATE_PER_S}/s each, 4 paths alternating")
    for key, label in (("with_telemetry", "with telemetry"), ("without_telemetry", "without telemetry")):
        print(f"  {label + ', direct to model':36} {_percentiles(details[key]['direct_ms'])}")
        print(f"  {label + ', through the gateway':36} {_percentiles(details[key]['gateway_ms'])}")
        print(f"  {label + ', gateway adds':36} {_percentiles(details[key]['added_ms'])}")
    print(f"  {'tracing (100 %) and metrics add':36} {_percentiles(details['telemetry_adds_ms'])}")
    print("  target: tracing at 100 % sampling adds <= 0.5 ms p50")
    vis = details["visibility"]
    for label, key in (("trace queryable", "trace_s"), ("counter in Prometheus", "counter_s")):
        print(
            f"  request -> {label:22} p50 {vis[key]['p50']:.3f} s   max {vis[key]['max']:.3f} s"
            f"   ({vis['probes']} requests)"
        )


def main() -> None:
    main_of("observability")


if __name__ == "__main__":
    main()
