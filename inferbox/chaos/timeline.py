"""A chaos experiment's timeline: the prober's records, per second and per window around a fault.

Times are seconds since the prober's start (its records' origin); a fault's wall-clock times are
mapped onto the same axis. A valid request succeeds when it is answered 200 with the right answer;
a request of a refused stream must never be answered 200. Latency is from the intended send time
(open loop), so a stall shows as the time requests actually waited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inferbox.chaos.prober import VALID, ProbeRun
from inferbox.load.records import OK, Records, summary_ms

Mask = npt.NDArray[np.bool_]


def cause(status: int) -> str:
    """Why a valid request was not answered, by what the client saw."""
    if status == 0:
        return "no answer (timeout or connection error)"
    if status == 200:
        return "wrong answer"
    return f"HTTP {status}"


@dataclass(frozen=True)
class Window:
    """Valid requests intended inside [start, end) (seconds on the timeline)."""

    name: str
    start: float
    end: float
    requests: int
    ok: int
    p50_ms: float | None
    p99_ms: float | None
    max_wait_s: float | None
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def success_ratio(self) -> float | None:
        return self.ok / self.requests if self.requests else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from_s": round(self.start, 3),
            "to_s": round(self.end, 3),
            "requests": self.requests,
            "ok": self.ok,
            "success_ratio": None if self.success_ratio is None else round(self.success_ratio, 5),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_wait_s": self.max_wait_s,
            "failures": self.failures,
        }


class Timeline:
    def __init__(self, run: ProbeRun) -> None:
        self.run = run
        self.records: Records = run.records
        kinds = np.array([s.kind for s in run.streams])
        tenants = np.array([s.tenant for s in run.streams])
        targets = self.records.target
        self.kind = kinds[targets] if targets.size else np.zeros(0, dtype=str)
        self.tenant = tenants[targets] if targets.size else np.zeros(0, dtype=str)
        self.valid: Mask = self.kind == VALID
        self.ok: Mask = self.records.outcome == OK

    def at(self, wall: float) -> float:
        """A wall-clock time on this timeline."""
        return wall - self.records.origin_wall

    def _mask(self, start: float, end: float, tenant: str | None = None, exclude: str | None = None) -> Mask:
        intended = self.records.intended
        mask = self.valid & (intended >= start) & (intended < end)
        if tenant is not None:
            mask &= self.tenant == tenant
        if exclude is not None:
            mask &= self.tenant != exclude
        return mask

    def window(
        self, name: str, start: float, end: float, tenant: str | None = None, exclude: str | None = None
    ) -> Window:
        mask = self._mask(start, end, tenant, exclude)
        answered = self.records.select(mask & self.ok)
        stats = summary_ms(answered.latency)
        waits = self.records.latency[mask]
        failures: dict[str, int] = {}
        for status in self.records.status[mask & ~self.ok]:
            failures[cause(int(status))] = failures.get(cause(int(status)), 0) + 1
        return Window(
            name,
            start,
            end,
            int(mask.sum()),
            int((mask & self.ok).sum()),
            stats.get("p50"),
            stats.get("p99"),
            round(float(waits.max()), 3) if waits.size else None,
            dict(sorted(failures.items())),
        )

    def refused_successes(self) -> dict[str, int]:
        """Requests of the refused streams that a model answered (200), by stream, over the whole run."""
        answered = (~self.valid) & (self.records.status == 200)
        counts: dict[str, int] = {}
        for kind in self.kind[answered]:
            counts[str(kind)] = counts.get(str(kind), 0) + 1
        return counts

    def refused_requests(self) -> int:
        return int((~self.valid).sum())

    def refusal_statuses(self, start: float = 0.0, end: float = float("inf")) -> dict[str, int]:
        mask = (~self.valid) & (self.records.intended >= start) & (self.records.intended < end)
        counts: dict[str, int] = {}
        for status in self.records.status[mask]:
            counts[str(int(status))] = counts.get(str(int(status)), 0) + 1
        return dict(sorted(counts.items()))

    def window_statuses(self, start: float, end: float, settled_by: float | None = None) -> dict[str, int]:
        """Statuses of the valid requests intended in [start, end) (0: no answer); with
        ``settled_by``, only those answered before it."""
        mask = self._mask(start, end)
        if settled_by is not None:
            mask &= self.records.done < settled_by
        counts: dict[str, int] = {}
        for status in self.records.status[mask]:
            counts[str(int(status))] = counts.get(str(int(status)), 0) + 1
        return dict(sorted(counts.items()))

    def longest_wait_s(self) -> float | None:
        """The longest any request (valid or refused) waited for its answer or refusal."""
        waits = self.records.latency
        return round(float(waits.max()), 3) if waits.size else None

    def recovery_s(self, reference: float, tenant: str | None = None) -> float | None:
        """Seconds from ``reference`` until the last failed valid request intended after it had its
        answer (0 when none failed); None when no valid request was intended after it at all."""
        mask = self.valid & (self.records.intended >= reference)
        if tenant is not None:
            mask &= self.tenant == tenant
        if not mask.any():
            return None
        failed = mask & ~self.ok
        if not failed.any():
            return 0.0
        return round(float(self.records.done[failed].max()) - reference, 3)

    def served_after(self, reference: float, tenant: str | None = None) -> int:
        """Valid requests answered correctly that were intended after ``reference``."""
        mask = self.valid & self.ok & (self.records.intended >= reference)
        if tenant is not None:
            mask &= self.tenant == tenant
        return int(mask.sum())

    def per_second(self) -> list[dict[str, Any]]:
        """Valid requests per second: count, success ratio, p50 and p99 wait (for the plot)."""
        rows = []
        end = int(np.ceil(self.run.seconds))
        for second in range(end):
            mask = self._mask(float(second), float(second + 1))
            waits = self.records.latency[mask]
            count = int(mask.sum())
            rows.append(
                {
                    "t": second,
                    "requests": count,
                    "success_ratio": round(float((mask & self.ok).sum()) / count, 4) if count else None,
                    "p50_ms": round(float(np.percentile(waits, 50)) * 1000, 2) if count else None,
                    "p99_ms": round(float(np.percentile(waits, 99)) * 1000, 2) if count else None,
                }
            )
        return rows
