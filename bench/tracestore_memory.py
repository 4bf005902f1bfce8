"""The trace store's memory after the span volume of the soak load profile.

The trace store (``python -m inferbox.tracestore``, default bound) receives over OTLP/HTTP the spans
of SOAK_REQUESTS requests (the soak profile: an hour at 100 requests/s), SPANS_PER_REQUEST each,
shaped like the platform's (a gateway span, the sidecar's, the model server's), in batches like an
OpenTelemetry batch processor sends them. Its resident memory (RSS, from /proc) is sampled at every
quarter, against its RSS when idle. It is the soak's volume replayed at full speed, not the hour.

Target (issue 13): the store's memory stays bounded: RSS growth over the idle store <= the bound
(128 MiB by default), and flat over the second half of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from prometheus_client.parser import text_string_to_metric_families

from bench.results import Figure
from bench.suite import main_of
from inferbox.load.runner import free_port
from inferbox.tracestore.store import DEFAULT_MAX_BYTES, MIB
from inferbox.waiting import eventually

TITLE = "trace store memory after the soak profile's span volume"
SOAK_REQUESTS = int(os.environ.get("BENCH_TRACE_REQUESTS", str(3600 * 100))) // 100 * 100
SPANS_PER_REQUEST = 3
BATCH_REQUESTS = 100  # requests per OTLP export (an OpenTelemetry batch processor sends up to 512 spans)
SERVICES = (
    ("inference-gateway.envoy-gateway-system", "ingress", 2),
    ("sklearn-iris-predictor.tenant-a", "inbound|8080||", 2),
    ("sklearn-iris-predictor.tenant-a", "POST /v1/models/{model_name}:predict", 2),
)


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _attributes(index: int) -> list[KeyValue]:
    """The attributes a platform span carries (about what Envoy and FastAPI's instrumentation set)."""
    return [
        _kv("http.method", "POST"),
        _kv("http.url", f"http://sklearn-iris.tenant-a.inference.example/v1/models/sklearn-iris:predict?n={index}"),
        _kv("http.status_code", 200),
        _kv("http.protocol", "HTTP/1.1"),
        _kv("user_agent", "python-requests/2.32 locust/2.47"),
        _kv("request_size", 41),
        _kv("response_size", 23),
        _kv("node_id", "router~10.88.0.5~inference-gateway-5f7d.envoy-gateway-system~cluster.local"),
        _kv("guid:x-request-id", f"{index:032x}"),
        _kv("upstream_cluster", "outbound|80||sklearn-iris-predictor.tenant-a.svc.cluster.local"),
        _kv("tenant", "tenant-a"),
        _kv("component", "proxy"),
    ]


def template(count: int) -> ExportTraceServiceRequest:
    """One OTLP export with the spans of ``count`` requests, one resource per hop (gateway, sidecar,
    model server); ``export`` gives them fresh IDs."""
    request = ExportTraceServiceRequest()
    now = time.time_ns()
    for service, name, kind in SERVICES[:SPANS_PER_REQUEST]:
        spans = [
            Span(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                start_time_unix_nano=now,
                end_time_unix_nano=now + 4_000_000,
                attributes=_attributes(index),
                status=Status(code=Status.STATUS_CODE_UNSET),
            )
            for index in range(count)
        ]
        resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
        resource.resource.attributes.extend(
            [_kv("service.name", service), _kv("k8s.namespace.name", service.split(".")[-1])]
        )
        request.resource_spans.append(resource)
    return request


def export(batch: ExportTraceServiceRequest) -> bytes:
    """The batch with new IDs: the n-th span of every hop belongs to request n, each the child of
    the hop before."""
    count = len(batch.resource_spans[0].scope_spans[0].spans)
    ids = os.urandom(24 * count)
    for depth, resource in enumerate(batch.resource_spans):
        for n, span in enumerate(resource.scope_spans[0].spans):
            base = ids[24 * n + 16 : 24 * n + 23]
            span.trace_id = ids[24 * n : 24 * n + 16]
            span.span_id = base + bytes([depth + 1])
            span.parent_span_id = base + bytes([depth]) if depth else b""
    data: bytes = batch.SerializeToString()
    return data


def rss_mib(pid: int) -> dict[str, float]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Vm")
    )
    return {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def store_figures(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def run() -> dict[str, Any]:
    otlp_port, query_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "inferbox.tracestore",
        f"--otlp-port={otlp_port}",
        f"--query-port={query_port}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    samples: list[dict[str, float]] = []
    try:
        query = httpx.Client(base_url=f"http://127.0.0.1:{query_port}", timeout=30)
        otlp = httpx.Client(base_url=f"http://127.0.0.1:{otlp_port}", timeout=60)

        def ready() -> None:
            try:
                assert query.get("/api/services").status_code == 200
            except httpx.HTTPError as exc:
                raise AssertionError(str(exc)) from exc

        eventually(ready, timeout_s=30, interval_s=0.1)
        idle = rss_mib(process.pid)
        started = time.monotonic()
        quarter = max(1, SOAK_REQUESTS // 4)
        batch = template(BATCH_REQUESTS)
        for first in range(0, SOAK_REQUESTS, BATCH_REQUESTS):
            count = BATCH_REQUESTS
            response = otlp.post(
                "/v1/traces", content=export(batch), headers={"content-type": "application/x-protobuf"}
            )
            if response.status_code != 200:
                raise RuntimeError(f"the trace store refused a batch: {response.status_code} {response.text[:200]}")
            done = first + count
            if done % quarter < BATCH_REQUESTS or done == SOAK_REQUESTS:
                samples.append({"requests": done, **rss_mib(process.pid), **store_figures(query)})
        elapsed = time.monotonic() - started
        query.close()
        otlp.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    final = samples[-1]
    half = next(s for s in samples if s["requests"] >= SOAK_REQUESTS // 2)
    return {
        "requests": SOAK_REQUESTS,
        "spans": SOAK_REQUESTS * SPANS_PER_REQUEST,
        "bound_mib": DEFAULT_MAX_BYTES / MIB,
        "idle_rss_mib": idle["VmRSS"],
        "samples": samples,
        "rss_mib": final["VmRSS"],
        "peak_rss_mib": final["VmHWM"],
        "growth_mib": round(final["VmRSS"] - idle["VmRSS"], 1),
        "second_half_growth_mib": round(final["VmRSS"] - half["VmRSS"], 1),
        "store_mib": round(final["tracestore_bytes"] / MIB, 1),
        "traces_dropped": int(final["tracestore_traces_dropped_total"]),
        "seconds": round(elapsed, 1),
    }


def figures(details: dict[str, Any]) -> list[Figure]:
    volume = f"{details['requests']:,} requests, {details['spans']:,} spans"
    return [
        Figure(
            "rss_growth_mib",
            f"trace store RSS growth over idle after the soak's spans ({volume})",
            details["growth_mib"],
            "MiB",
            "<=",
            details["bound_mib"],
            note=f"RSS {details['rss_mib']:,.1f} MiB, {details['traces_dropped']:,} traces dropped",
        ),
        Figure(
            "rss_second_half_growth_mib",
            "trace store RSS growth over the second half of the run",
            details["second_half_growth_mib"],
            "MiB",
            "<=",
            round(details["bound_mib"] * 0.05, 1),
        ),
    ]


def report(details: dict[str, Any]) -> None:
    print(TITLE)
    print(
        f"  {details['requests']:,} requests x {SPANS_PER_REQUEST} spans over OTLP in {details['seconds']:g} s; "
        f"bound {details['bound_mib']:g} MiB; idle RSS {details['idle_rss_mib']:g} MiB"
    )
    for sample in details["samples"]:
        print(
            f"    after {int(sample['requests']):>9,} requests: RSS {sample['VmRSS']:7.1f} MiB "
            f"(peak {sample['VmHWM']:7.1f}), store {sample['tracestore_bytes'] / MIB:6.1f} MiB, "
            f"{int(sample['tracestore_traces']):,} traces held, "
            f"{int(sample['tracestore_traces_dropped_total']):,} dropped"
        )
    print("  targets: RSS growth <= the bound; flat (<= 5 % of the bound) over the second half")


def main() -> None:
    main_of("tracestore_memory")


if __name__ == "__main__":
    main()
