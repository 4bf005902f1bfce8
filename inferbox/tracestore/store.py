"""Traces kept in memory, bounded, and searched the way Jaeger's query service searches them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from inferbox.tracestore.model import StoredSpan

DEFAULT_MAX_SPANS = 200_000


@dataclass(frozen=True)
class TraceQuery:
    """Jaeger's search parameters (all times in microseconds since the epoch)."""

    service: str
    operation: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    start_us: int = 0
    end_us: int = 0
    min_duration_us: int = 0
    max_duration_us: int = 0
    limit: int = 100


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def span_matches(span: StoredSpan, query: TraceQuery) -> bool:
    """Jaeger's rule: one span of the service must satisfy every condition at once."""
    if span.service != query.service:
        return False
    if query.operation and span.name != query.operation:
        return False
    if query.start_us and span.start_us < query.start_us:
        return False
    if query.end_us and span.start_us > query.end_us:
        return False
    if query.min_duration_us and span.duration_us < query.min_duration_us:
        return False
    if query.max_duration_us and span.duration_us > query.max_duration_us:
        return False
    tags = span.all_tags()
    return all(any(k == key and _value_text(v) == want for k, _, v in tags) for key, want in query.tags.items())


class TraceStore:
    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        self.max_spans = max_spans
        self._traces: OrderedDict[str, list[StoredSpan]] = OrderedDict()
        self._span_count = 0
        self._lock = threading.Lock()
        self.received = 0

    def add(self, spans: list[StoredSpan]) -> None:
        with self._lock:
            for span in spans:
                trace = self._traces.get(span.trace_id)
                if trace is None:
                    trace = self._traces[span.trace_id] = []
                else:
                    self._traces.move_to_end(span.trace_id)
                trace.append(span)
                self._span_count += 1
                self.received += 1
            while self._span_count > self.max_spans and self._traces:
                _, evicted = self._traces.popitem(last=False)  # the least recently updated trace
                self._span_count -= len(evicted)

    def get(self, trace_id: str) -> list[StoredSpan] | None:
        with self._lock:
            spans = self._traces.get(trace_id)
            return list(spans) if spans else None

    def services(self) -> list[str]:
        with self._lock:
            return sorted({s.service for spans in self._traces.values() for s in spans})

    def operations(self, service: str, span_kind: str = "") -> list[tuple[str, str]]:
        """(name, span kind) pairs of ``service``, optionally of one kind."""
        found: set[tuple[str, str]] = set()
        with self._lock:
            for spans in self._traces.values():
                for span in spans:
                    if span.service != service:
                        continue
                    kind = next((str(v) for k, _, v in span.tags if k == "span.kind"), "")
                    if not span_kind or kind == span_kind:
                        found.add((span.name, kind))
        return sorted(found)

    def find(self, query: TraceQuery) -> list[list[StoredSpan]]:
        """Matching traces, most recently updated first, at most ``query.limit``."""
        with self._lock:
            snapshot = list(self._traces.items())
        result = []
        for _, spans in reversed(snapshot):
            if any(span_matches(s, query) for s in spans):
                result.append(list(spans))
                if query.limit and len(result) >= query.limit:
                    break
        return result

    def dependencies(self, start_us: int, end_us: int) -> list[dict[str, object]]:
        """Caller -> callee service pairs with call counts, from parent/child spans of different services."""
        calls: dict[tuple[str, str], int] = {}
        with self._lock:
            snapshot = [list(s) for s in self._traces.values()]
        for spans in snapshot:
            by_id = {s.span_id: s for s in spans}
            for span in spans:
                parent = by_id.get(span.parent_id or "")
                if parent is None or parent.service == span.service:
                    continue
                if start_us <= span.start_us <= end_us:
                    calls[(parent.service, span.service)] = calls.get((parent.service, span.service), 0) + 1
        return [{"parent": p, "child": c, "callCount": n} for (p, c), n in sorted(calls.items())]
