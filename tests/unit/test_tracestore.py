"""The trace store takes OTLP/HTTP and answers Jaeger's query API with Jaeger's JSON shapes."""

from __future__ import annotations

import gc
import gzip
import json
import time
import tracemalloc

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from inferbox.observability.jaeger import parse_trace, same_trace_id
from inferbox.tracestore.app import create_otlp_app, create_query_app, parse_duration_us
from inferbox.tracestore.model import StoredSpan, jaeger_trace_id, spans_from_otlp, trace_id_hex
from inferbox.tracestore.store import MIB, TRACE_OVERHEAD_BYTES, TraceStore

TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT, GATEWAY, MODEL = "b7ad6b7169203331", "00f067aa0ba902b7", "53995c3f42cd8ad8"


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _export(service: str, spans: list[Span]) -> bytes:
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.extend([_kv("service.name", service), _kv("k8s.namespace.name", "tenant-a")])
    data: bytes = ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()
    return data


def _span(span_id: str, parent: str, name: str, kind: int, start_ms: int, **attrs: str | int) -> Span:
    now = int(time.time() * 1e9) + start_ms * 1_000_000
    return Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent),
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=now,
        end_time_unix_nano=now + 3_000_000,
        attributes=[_kv(k, v) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_OK),
    )


@pytest.fixture
def clients() -> tuple[TestClient, TestClient]:
    store = TraceStore()
    otlp, query = TestClient(create_otlp_app(store)), TestClient(create_query_app(store))
    gateway = _span(GATEWAY, CLIENT, "ingress", 2, 0, tenant="tenant-a", **{"http.url": "http://x/v1/models/m:predict"})
    model = _span(MODEL, GATEWAY, "POST /v1/models/{model_name}:predict", 2, 1, **{"http.response.status_code": 200})
    headers = {"content-type": "application/x-protobuf"}
    assert otlp.post("/v1/traces", content=_export("gw.ns", [gateway]), headers=headers).status_code == 200
    compressed = gzip.compress(_export("m-predictor.tenant-a", [model]))
    response = otlp.post("/v1/traces", content=compressed, headers={**headers, "content-encoding": "gzip"})
    assert response.status_code == 200
    return otlp, query


def test_services_operations_and_envelope(clients: tuple[TestClient, TestClient]) -> None:
    _, query = clients
    body = query.get("/api/services").json()
    assert body == {"data": ["gw.ns", "m-predictor.tenant-a"], "total": 2, "limit": 0, "offset": 0, "errors": None}
    assert query.get("/api/services/gw.ns/operations").json()["data"] == ["ingress"]
    assert query.get("/api/operations", params={"service": "gw.ns", "spanKind": "server"}).json()["data"] == [
        {"name": "ingress", "spanKind": "server"}
    ]


def test_trace_by_id_has_jaeger_shape(clients: tuple[TestClient, TestClient]) -> None:
    _, query = clients
    raw = query.get(f"/api/traces/{TRACE}").json()["data"][0]
    assert set(raw) == {"traceID", "spans", "processes", "warnings"}
    span = next(s for s in raw["spans"] if s["spanID"] == MODEL)
    assert span["references"] == [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": GATEWAY}]
    assert {"key": "span.kind", "type": "string", "value": "server"} in span["tags"]
    assert {"key": "otel.status_code", "type": "string", "value": "OK"} in span["tags"]
    assert {"key": "http.response.status_code", "type": "int64", "value": 200} in span["tags"]
    assert raw["processes"][span["processID"]]["serviceName"] == "m-predictor.tenant-a"
    assert {"key": "k8s.namespace.name", "type": "string", "value": "tenant-a"} in raw["processes"][span["processID"]][
        "tags"
    ]
    trace = parse_trace(raw)
    model = trace.span(MODEL)
    assert model is not None
    assert [a.span_id for a in trace.ancestors(model)] == [GATEWAY]
    assert query.get("/api/traces/ffffffffffffffffffffffffffffffff").status_code == 404


def test_search_by_service_tags_and_time(clients: tuple[TestClient, TestClient]) -> None:
    _, query = clients
    now_us = int(time.time() * 1e6)

    def found(**params: str | int) -> int:
        response = query.get("/api/traces", params=params)
        assert response.status_code == 200, response.text
        return len(response.json()["data"])

    assert found(service="gw.ns") == 1
    assert found(service="gw.ns", tags=json.dumps({"tenant": "tenant-a"})) == 1
    assert found(service="gw.ns", tag="tenant:tenant-b") == 0
    assert found(service="gw.ns", tags=json.dumps({"k8s.namespace.name": "tenant-a"})) == 1, "process tags match too"
    assert found(service="gw.ns", operation="ingress", start=now_us - 60_000_000, end=now_us + 60_000_000) == 1
    assert found(service="gw.ns", start=now_us + 60_000_000) == 0
    assert found(service="m-predictor.tenant-a", minDuration="1ms", maxDuration="1s") == 1
    assert found(service="m-predictor.tenant-a", minDuration="10ms") == 0
    assert found(traceID=TRACE) == 1
    missing = query.get("/api/traces")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["msg"] == "parameter 'service' is required"


def test_otlp_json_with_hex_ids() -> None:
    store = TraceStore()
    otlp, query = TestClient(create_otlp_app(store)), TestClient(create_query_app(store))
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": CLIENT,
                                "name": "op",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000001000000",
                            }
                        ]
                    }
                ],
            }
        ]
    }
    assert otlp.post("/v1/traces", json=body).status_code == 200
    raw = query.get(f"/api/traces/{TRACE}").json()["data"][0]
    assert raw["spans"][0]["duration"] == 1000
    assert raw["spans"][0]["references"] == []
    assert (
        otlp.post(
            "/v1/traces", content=b"\xff\x00garbage", headers={"content-type": "application/x-protobuf"}
        ).status_code
        == 400
    )


def test_ids_and_durations() -> None:
    assert trace_id_hex("ABC") == "0" * 29 + "abc"
    assert jaeger_trace_id("0" * 16 + "1" * 16) == "1" * 16, "Jaeger prints 16 digits when the high half is 0"
    assert same_trace_id("1" * 16, "0" * 16 + "1" * 16)
    with pytest.raises(ValueError, match="not a trace ID"):
        trace_id_hex("xyz")
    assert parse_duration_us("1.5s") == 1_500_000
    assert parse_duration_us("10ms") == 10_000


def _stored(trace: int, span: int = 0, payload: str = "") -> list[StoredSpan]:
    """One span of trace number ``trace`` as the store receives it from OTLP."""
    attrs = {"payload": payload} if payload else {}
    request = ExportTraceServiceRequest()
    request.ParseFromString(_export("svc", [_span(f"{span + 1:016x}", CLIENT, "op", 1, 0, **attrs)]))
    spans = spans_from_otlp(request, 0.0)
    for stored in spans:
        stored.trace_id = f"{trace:032x}"
    return spans


def test_the_store_is_bounded_in_bytes_and_drops_the_oldest_traces() -> None:
    probe = TraceStore()
    probe.add(_stored(0))
    one_trace = probe.bytes
    assert one_trace > TRACE_OVERHEAD_BYTES
    store = TraceStore(max_bytes=int(one_trace * 3.5))
    for trace in range(10):
        store.add(_stored(trace))
        assert store.bytes <= store.max_bytes
    assert len(store) == 3
    assert [store.get(f"{t:032x}") is not None for t in range(10)] == [False] * 7 + [True] * 3
    assert (store.dropped_traces, store.dropped_spans, store.received) == (7, 7, 10)


def test_a_trace_that_grows_is_kept_over_older_ones() -> None:
    probe = TraceStore()
    probe.add(_stored(0))
    store = TraceStore(max_bytes=int(probe.bytes * 4.5))
    for trace in range(3):
        store.add(_stored(trace))
    store.add(_stored(0, span=1))  # trace 0 gets a second span: now the most recently updated
    store.add(_stored(3))
    assert store.get(f"{0:032x}") is not None
    assert store.get(f"{1:032x}") is None, "the least recently updated trace goes first"
    assert store.dropped_traces == 1


def test_big_spans_weigh_what_they_hold() -> None:
    small, big = TraceStore(), TraceStore()
    small.add(_stored(0))
    big.add(_stored(0, payload="x" * 100_000))
    assert big.bytes - small.bytes >= 100_000


def test_the_bound_holds_for_the_memory_actually_used() -> None:
    """Three times the bound's worth of spans leave the store's real allocations near the bound."""
    bound = 4 * MIB
    store = TraceStore(max_bytes=bound)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        trace = 0
        while store.received * (store.bytes / max(1, len(store))) < 3 * bound or store.dropped_traces == 0:
            store.add(_stored(trace, payload="v" * 200))
            trace += 1
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert store.dropped_traces > 0
    assert store.bytes <= bound
    assert used <= bound * 1.25, f"the spans take {used / MIB:.1f} MiB against an estimate of {store.bytes / MIB:.1f}"
    assert used >= bound * 0.5, f"the estimate errs far high: {used / MIB:.1f} MiB used, bound {bound / MIB:.1f}"


def test_drops_are_exposed_as_metrics() -> None:
    probe = TraceStore()
    probe.add(_stored(0))
    store = TraceStore(max_bytes=int(probe.bytes * 2.5))
    for trace in range(5):
        store.add(_stored(trace))
    text = TestClient(create_query_app(store)).get("/metrics").text
    values = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert values["tracestore_traces_dropped_total"] == store.dropped_traces == 3
    assert values["tracestore_spans_dropped_total"] == 3
    assert values["tracestore_spans_received_total"] == 5
    assert values["tracestore_traces"] == 2
    assert values["tracestore_bytes"] == store.bytes <= values["tracestore_max_bytes"]


def test_a_bound_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TraceStore(max_bytes=0)
