"""A client for the subset of Jaeger's query HTTP API the checks use (Jaeger 1.x JSON shapes)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None  # from the CHILD_OF reference
    name: str
    service: str
    tags: dict[str, Any]
    start_us: int
    duration_us: int


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[Span, ...]
    warnings: tuple[str, ...] = field(default=())

    def of_service(self, pattern: re.Pattern[str] | str) -> list[Span]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return [s for s in self.spans if regex.fullmatch(s.service)]

    def span(self, span_id: str) -> Span | None:
        return next((s for s in self.spans if s.span_id == span_id), None)

    def ancestors(self, span: Span) -> list[Span]:
        """Parent, grandparent ... within the trace."""
        chain, seen = [], {span.span_id}
        current = self.span(span.parent_id) if span.parent_id else None
        while current is not None and current.span_id not in seen:
            chain.append(current)
            seen.add(current.span_id)
            current = self.span(current.parent_id) if current.parent_id else None
        return chain


def same_trace_id(a: str, b: str) -> bool:
    """Jaeger prints a 128-bit ID with leading zeros dropped to 16 digits when the high half is 0."""
    return int(a, 16) == int(b, 16)


def parse_trace(raw: dict[str, Any]) -> Trace:
    processes = {pid: p["serviceName"] for pid, p in (raw.get("processes") or {}).items()}
    spans = []
    for s in raw.get("spans") or []:
        parent = next((r["spanID"] for r in s.get("references") or [] if r.get("refType") == "CHILD_OF"), None)
        spans.append(
            Span(
                trace_id=s["traceID"],
                span_id=s["spanID"],
                parent_id=parent,
                name=s["operationName"],
                service=processes.get(s.get("processID", ""), ""),
                tags={t["key"]: t["value"] for t in s.get("tags") or []},
                start_us=int(s["startTime"]),
                duration_us=int(s["duration"]),
            )
        )
    return Trace(raw.get("traceID", ""), tuple(spans), tuple(raw.get("warnings") or ()))


class JaegerQueryClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def _data(self, path: str, params: Any = None) -> Any:
        response = self.http.get(path, params=params)
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise AssertionError(f"GET {path} {params or ''}: {response.status_code} {body.get('errors')}")
        return body["data"]

    def services(self) -> list[str]:
        return list(self._data("/api/services") or [])

    def operations(self, service: str) -> list[str]:
        return list(self._data(f"/api/services/{service}/operations") or [])

    def find(
        self,
        service: str,
        tags: dict[str, str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        operation: str | None = None,
        limit: int = 20,
    ) -> list[Trace]:
        params: dict[str, Any] = {"service": service, "limit": limit}
        if tags:
            params["tags"] = json.dumps(tags)
        if start_us is not None:
            params["start"] = start_us
        if end_us is not None:
            params["end"] = end_us
        if operation:
            params["operation"] = operation
        return [parse_trace(t) for t in self._data("/api/traces", params) or []]

    def trace(self, trace_id: str) -> Trace | None:
        response = self.http.get(f"/api/traces/{trace_id}")
        if response.status_code == 404:
            return None
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise AssertionError(f"GET /api/traces/{trace_id}: {response.status_code} {body.get('errors')}")
        traces = body["data"] or []
        return parse_trace(traces[0]) if traces else None
