"""The trace store takes OTLP/HTTP and answers Jaeger's query API with Jaeger's JSON shapes."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from starlette.testclient import TestClient

from inferbox.observability.jaeger import parse_trace, same_trace_id
from inferbox.tracestore.app import create_otlp_app, create_query_app, parse_duration_us
from inferbox.tracestore.model import jaeger_trace_id, trace_id_hex
from inferbox.tracestore.store import TraceStore

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


def test_the_store_is_bounded() -> None:
    store = TraceStore(max_spans=3)
    for i in range(5):
        raw = _export("svc", [_span(f"{i:016x}", CLIENT, "op", 1, 0)])
        request = ExportTraceServiceRequest()
        request.ParseFromString(raw)
        from inferbox.tracestore.model import spans_from_otlp

        spans = spans_from_otlp(request, 0.0)
        spans[0].trace_id = f"{i:032x}"
        store.add(spans)
    assert store.get(f"{4:032x}") is not None
    assert store.get(f"{0:032x}") is None, "the oldest trace was evicted"
