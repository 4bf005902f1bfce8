"""Traces kept in memory, bounded in bytes, and searched the way Jaeger's query service searches them.

The bound is on the memory the stored spans take (each span's Python objects, measured when it
arrives, shared objects counted for every span that holds them, so the estimate errs high). When a
new span would take the store over it, the least recently updated traces are dropped whole, and
counted, so a long soak cannot exhaust memory and a dashboard sees that traces went.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from inferbox.tracestore.model import StoredSpan

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 128 * MIB
# A trace's own bookkeeping beside its spans: its ordered-dict entry, key string and span list.
TRACE_OVERHEAD_BYTES = 300


def footprint(value: object) -> int:
    """Bytes the object and everything it holds take (strings, numbers, tuples, lists, dicts)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        return size + sum(footprint(k) + footprint(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return size + sum(footprint(item) for item in value)
    return size


_TAG = sys.getsizeof(("", "", ""))
_LINK = sys.getsizeof(("", ""))


def _tags_bytes(tags: Iterable[tuple[str, str, object]]) -> int:
    # A tag's type name is one of a few shared constants: not counted.
    return sum(_TAG + sys.getsizeof(key) + sys.getsizeof(value) for key, _, value in tags)


def span_bytes(span: StoredSpan) -> int:
    """What one stored span takes, field by field (a generic walk costs ten times as much). Objects
    spans share (service name, process tags) are counted for each span, so the estimate errs high."""
    size = sys.getsizeof(span) + sys.getsizeof(vars(span))
    for text in (span.trace_id, span.span_id, span.parent_id, span.name, span.service):
        size += sys.getsizeof(text)
    size += sys.getsizeof(span.tags) + _tags_bytes(span.tags)
    size += sys.getsizeof(span.process_tags) + _tags_bytes(span.process_tags)
    size += sys.getsizeof(span.links) + sum(_LINK + sys.getsizeof(t) + sys.getsizeof(s) for t, s in span.links)
    size += footprint(span.logs) if span.logs else sys.getsizeof(span.logs)
    for number in (span.start_us, span.duration_us, span.flags, span.received_at):
        size += sys.getsizeof(number)
    return size


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
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"the trace store's bound must be positive, not {max_bytes} bytes")
        self.max_bytes = max_bytes
        self._traces: OrderedDict[str, list[StoredSpan]] = OrderedDict()
        self._trace_bytes: dict[str, int] = {}
        self.bytes = 0
        self._lock = threading.Lock()
        self.received = 0
        self.dropped_traces = 0
        self.dropped_spans = 0

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, spans: Iterable[StoredSpan]) -> None:
        sized = [(span, span_bytes(span)) for span in spans]  # outside the lock: the costly part
        with self._lock:
            for span, size in sized:
                trace = self._traces.get(span.trace_id)
                if trace is None:
                    trace = self._traces[span.trace_id] = []
                    size += TRACE_OVERHEAD_BYTES
                else:
                    self._traces.move_to_end(span.trace_id)
                trace.append(span)
                self._trace_bytes[span.trace_id] = self._trace_bytes.get(span.trace_id, 0) + size
                self.bytes += size
                self.received += 1
            while self.bytes > self.max_bytes and self._traces:
                trace_id, evicted = self._traces.popitem(last=False)  # the least recently updated trace
                self.bytes -= self._trace_bytes.pop(trace_id)
                self.dropped_traces += 1
                self.dropped_spans += len(evicted)

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
