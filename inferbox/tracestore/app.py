"""The trace store's two HTTP APIs (ASGI apps).

OTLP intake (Jaeger's collector port 4318): ``POST /v1/traces`` with a protobuf or JSON
``ExportTraceServiceRequest``, optionally gzip-encoded.

Jaeger query API subset (Jaeger's query port 16686), answering in Jaeger's envelope
``{"data", "total", "limit", "offset", "errors"}``:

- ``GET /api/services``
- ``GET /api/services/{service}/operations``
- ``GET /api/operations?service=S[&spanKind=K]``
- ``GET /api/traces?service=S[&operation=O][&tags={json}][&tag=k:v...][&start=µs][&end=µs][&lookback=1h]
  [&minDuration=10ms][&maxDuration=2s][&limit=N]`` or ``?traceID=...`` (repeatable)
- ``GET /api/traces/{traceID}`` (404 when unknown)
- ``GET /api/dependencies?endTs=ms&lookback=ms``
- ``GET /metrics``: the store's own figures (received, dropped, held), in Prometheus' text format
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inferbox.tracestore.model import jaeger_trace, parse_otlp, spans_from_otlp, trace_id_hex
from inferbox.tracestore.store import TraceQuery, TraceStore

DEFAULT_LOOKBACK_US = 2 * 24 * 3600 * 1_000_000  # Jaeger searches the last two days by default
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$")
_UNIT_US = {"ns": 0.001, "us": 1, "µs": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}


class BadRequest(ValueError):
    pass


class StoreCollector(Collector):
    """The store's own figures, read from it at each scrape."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        yield CounterMetricFamily("tracestore_spans_received", "Spans received over OTLP.", value=store.received)
        yield CounterMetricFamily(
            "tracestore_traces_dropped",
            "Traces dropped, oldest first, to keep the store within its memory bound.",
            value=store.dropped_traces,
        )
        yield CounterMetricFamily("tracestore_spans_dropped", "Spans of the dropped traces.", value=store.dropped_spans)
        yield GaugeMetricFamily("tracestore_traces", "Traces held.", value=len(store))
        yield GaugeMetricFamily("tracestore_bytes", "Memory the held spans take (estimated).", value=store.bytes)
        yield GaugeMetricFamily("tracestore_max_bytes", "The store's memory bound.", value=store.max_bytes)


def envelope(data: Any, status: int = 200, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    total = len(data) if isinstance(data, list) else 0
    return JSONResponse({"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}, status_code=status)


def error(status: int, message: str) -> JSONResponse:
    return envelope(None, status, [{"code": status, "msg": message}])


def parse_duration_us(text: str) -> int:
    """Go duration syntax as Jaeger accepts it (``10ms``, ``1.5s``, ``2h``)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise BadRequest(f"cannot parse duration {text!r}")
    return int(float(match.group(1)) * _UNIT_US[match.group(2)])


def parse_query(params: Any, now_us: int) -> TraceQuery:
    service = params.get("service", "")
    if not service:
        raise BadRequest("parameter 'service' is required")
    tags: dict[str, str] = {}
    if params.get("tags"):
        try:
            raw = json.loads(params["tags"])
        except json.JSONDecodeError as exc:
            raise BadRequest(f"malformed 'tags' parameter: {exc}") from exc
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise BadRequest("malformed 'tags' parameter: it must be a JSON object of strings")
        tags.update(raw)
    for item in params.getlist("tag"):
        key, sep, value = item.partition(":")
        if not sep:
            raise BadRequest(f"malformed 'tag' parameter {item!r}, expected key:value")
        tags[key] = value
    try:
        end = int(params.get("end") or now_us)
        if params.get("start"):
            start = int(params["start"])
        elif params.get("lookback"):
            start = end - parse_duration_us(params["lookback"])
        else:
            start = end - DEFAULT_LOOKBACK_US
        limit = int(params.get("limit") or 100)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return TraceQuery(
        service=service,
        operation=params.get("operation", ""),
        tags=tags,
        start_us=start,
        end_us=end,
        min_duration_us=parse_duration_us(params["minDuration"]) if params.get("minDuration") else 0,
        max_duration_us=parse_duration_us(params["maxDuration"]) if params.get("maxDuration") else 0,
        limit=limit,
    )


def create_otlp_app(store: TraceStore) -> Starlette:
    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding", "") == "gzip":
            body = gzip.decompress(body)
        content_type = request.headers.get("content-type", "application/x-protobuf")
        try:
            export = parse_otlp(body, content_type)
        except Exception as exc:  # any decoding failure is the client's malformed body
            return JSONResponse({"code": 3, "message": f"cannot decode OTLP body: {exc}"}, status_code=400)
        store.add(spans_from_otlp(export, time.time()))
        if "json" in content_type:
            return JSONResponse({})
        return Response(b"", media_type="application/x-protobuf")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


def create_query_app(store: TraceStore) -> Starlette:  # noqa: C901 - one nested handler per query route
    async def services(_: Request) -> Response:
        return envelope(store.services())

    async def service_operations(request: Request) -> Response:
        return envelope(sorted({name for name, _ in store.operations(request.path_params["service"])}))

    async def operations(request: Request) -> Response:
        service = request.query_params.get("service", "")
        if not service:
            return error(400, "parameter 'service' is required")
        kind = request.query_params.get("spanKind", "")
        return envelope([{"name": n, "spanKind": k} for n, k in store.operations(service, kind)])

    async def traces(request: Request) -> Response:
        ids = request.query_params.getlist("traceID")
        if ids:
            found = []
            for raw in ids:
                try:
                    spans = store.get(trace_id_hex(raw))
                except ValueError:
                    return error(400, f"malformed trace ID {raw!r}")
                if spans:
                    found.append(jaeger_trace(spans))
            return envelope(found)
        try:
            query = parse_query(request.query_params, int(time.time() * 1_000_000))
        except BadRequest as exc:
            return error(400, str(exc))
        return envelope([jaeger_trace(spans) for spans in store.find(query)])

    async def trace(request: Request) -> Response:
        try:
            spans = store.get(trace_id_hex(request.path_params["trace_id"]))
        except ValueError:
            return error(400, f"malformed trace ID {request.path_params['trace_id']!r}")
        if not spans:
            return error(404, "trace not found")
        return envelope([jaeger_trace(spans)])

    async def dependencies(request: Request) -> Response:
        try:
            end_ms = int(request.query_params.get("endTs") or time.time() * 1000)
            lookback_ms = int(request.query_params.get("lookback") or 24 * 3600 * 1000)
        except ValueError as exc:
            return error(400, str(exc))
        return envelope(store.dependencies((end_ms - lookback_ms) * 1000, end_ms * 1000))

    registry = CollectorRegistry()
    registry.register(StoreCollector(store))

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/services", services, methods=["GET"]),
            Route("/api/services/{service}/operations", service_operations, methods=["GET"]),
            Route("/api/operations", operations, methods=["GET"]),
            Route("/api/traces", traces, methods=["GET"]),
            Route("/api/traces/{trace_id}", trace, methods=["GET"]),
            Route("/api/dependencies", dependencies, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
