"""Spans received over OTLP, kept as Jaeger sees them, and Jaeger's JSON shapes for the query API.

Conversions follow Jaeger's OTLP translator: resource attributes become process tags (the service
is ``service.name``), the span kind becomes the tag ``span.kind``, a set status becomes
``otel.status_code`` (and ``error=true`` for errors), the instrumentation scope becomes
``otel.scope.name``/``otel.scope.version``, events become logs, the parent becomes a ``CHILD_OF``
reference and links ``FOLLOWS_FROM`` references. IDs are lower-case hex; a trace ID whose high 64
bits are zero is printed with 16 digits, as Jaeger prints it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Tag = tuple[str, str, Any]  # key, Jaeger type, value
KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {1: "OK", 2: "ERROR"}


def trace_id_hex(raw: bytes | str) -> str:
    """Normalised 32-digit lower-case hex of a trace ID given as bytes or hex text."""
    value = raw.hex() if isinstance(raw, bytes) else raw.strip().lower()
    if not value or len(value) > 32 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"not a trace ID: {raw!r}")
    return value.rjust(32, "0")


def jaeger_trace_id(normalised: str) -> str:
    return normalised[16:] if normalised.startswith("0" * 16) else normalised


def _any_value(value: AnyValue) -> tuple[str, Any]:
    which = value.WhichOneof("value")
    if which == "string_value":
        return "string", value.string_value
    if which == "bool_value":
        return "bool", value.bool_value
    if which == "int_value":
        return "int64", value.int_value
    if which == "double_value":
        return "float64", value.double_value
    if which == "bytes_value":
        return "binary", base64.b64encode(value.bytes_value).decode()
    if which == "array_value":
        return "string", json.dumps([_any_value(v)[1] for v in value.array_value.values])
    if which == "kvlist_value":
        return "string", json.dumps({kv.key: _any_value(kv.value)[1] for kv in value.kvlist_value.values})
    return "string", ""


def _tags(attributes: Any) -> list[Tag]:
    out: list[Tag] = []
    for kv in attributes:
        assert isinstance(kv, KeyValue)
        kind, value = _any_value(kv.value)
        out.append((kv.key, kind, value))
    return out


@dataclass
class StoredSpan:
    trace_id: str  # normalised 32 hex digits
    span_id: str
    parent_id: str | None
    links: list[tuple[str, str]]  # (trace_id, span_id)
    name: str
    service: str
    process_tags: tuple[Tag, ...]
    tags: list[Tag]
    logs: list[dict[str, Any]]
    start_us: int
    duration_us: int
    flags: int = 1
    received_at: float = field(default=0.0, compare=False)

    def all_tags(self) -> list[Tag]:
        """Span tags, process tags and log fields: what Jaeger's tag search looks at."""
        fields = [(f["key"], f["type"], f["value"]) for log in self.logs for f in log["fields"]]
        return [*self.tags, *self.process_tags, *fields]


def spans_from_otlp(request: ExportTraceServiceRequest, received_at: float) -> list[StoredSpan]:
    spans: list[StoredSpan] = []
    for resource_spans in request.resource_spans:
        resource_tags = _tags(resource_spans.resource.attributes)
        service = next((str(v) for k, _, v in resource_tags if k == "service.name"), "unknown_service")
        process_tags = tuple(t for t in resource_tags if t[0] != "service.name")
        for scope_spans in resource_spans.scope_spans:
            scope: list[Tag] = []
            if scope_spans.scope.name:
                scope.append(("otel.scope.name", "string", scope_spans.scope.name))
            if scope_spans.scope.version:
                scope.append(("otel.scope.version", "string", scope_spans.scope.version))
            for span in scope_spans.spans:
                tags = _tags(span.attributes) + scope
                if span.kind in KINDS:
                    tags.append(("span.kind", "string", KINDS[span.kind]))
                if span.status.code in STATUS:
                    tags.append(("otel.status_code", "string", STATUS[span.status.code]))
                    if span.status.message:
                        tags.append(("otel.status_description", "string", span.status.message))
                    if span.status.code == 2:
                        tags.append(("error", "bool", True))
                logs = [
                    {
                        "timestamp": event.time_unix_nano // 1000,
                        "fields": [
                            {"key": k, "type": t, "value": v}
                            for k, t, v in [("event", "string", event.name), *_tags(event.attributes)]
                        ],
                    }
                    for event in span.events
                ]
                parent = span.parent_span_id.hex() if span.parent_span_id else None
                spans.append(
                    StoredSpan(
                        trace_id=trace_id_hex(span.trace_id),
                        span_id=span.span_id.hex(),
                        parent_id=parent,
                        links=[(trace_id_hex(link.trace_id), link.span_id.hex()) for link in span.links],
                        name=span.name,
                        service=service,
                        process_tags=process_tags,
                        tags=tags,
                        logs=logs,
                        start_us=span.start_time_unix_nano // 1000,
                        duration_us=max(0, (span.end_time_unix_nano - span.start_time_unix_nano) // 1000),
                        flags=span.flags & 0xFF if span.flags else 1,
                        received_at=received_at,
                    )
                )
    return spans


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes IDs as hex; protobuf's JSON mapping expects base64 for bytes fields."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
            out[key] = base64.b64encode(bytes.fromhex(value)).decode() if value else ""
        else:
            out[key] = _hex_ids_to_base64(value)
    return out


def parse_otlp(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if "json" in content_type:
        from google.protobuf import json_format

        json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    return request


def jaeger_trace(spans: list[StoredSpan]) -> dict[str, Any]:
    """One trace in Jaeger's JSON shape (``/api/traces`` items)."""
    processes: dict[tuple[str, tuple[Tag, ...]], str] = {}
    out_spans = []
    for span in sorted(spans, key=lambda s: (s.start_us, s.span_id)):
        key = (span.service, span.process_tags)
        pid = processes.setdefault(key, f"p{len(processes) + 1}")
        references = []
        if span.parent_id:
            references.append(
                {"refType": "CHILD_OF", "traceID": jaeger_trace_id(span.trace_id), "spanID": span.parent_id}
            )
        references += [{"refType": "FOLLOWS_FROM", "traceID": jaeger_trace_id(t), "spanID": s} for t, s in span.links]
        out_spans.append(
            {
                "traceID": jaeger_trace_id(span.trace_id),
                "spanID": span.span_id,
                "operationName": span.name,
                "references": references,
                "startTime": span.start_us,
                "duration": span.duration_us,
                "tags": [{"key": k, "type": t, "value": v} for k, t, v in span.tags],
                "logs": span.logs,
                "processID": pid,
                "warnings": None,
                "flags": span.flags,
            }
        )
    return {
        "traceID": jaeger_trace_id(spans[0].trace_id) if spans else "",
        "spans": out_spans,
        "processes": {
            pid: {"serviceName": service, "tags": [{"key": k, "type": t, "value": v} for k, t, v in tags]}
            for (service, tags), pid in processes.items()
        },
        "warnings": None,
    }
