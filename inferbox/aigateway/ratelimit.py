"""A rate-limit service deciding as envoyproxy/ratelimit does (the image Envoy Gateway v1.4.2 deploys,
with Redis), for Envoy's global rate-limit filter: ``ShouldRateLimit`` of ``envoy.service.ratelimit.v3``.

Semantics reproduced from that service:

- configuration: per domain, a tree of descriptors (``key``, optional ``value``, ``rate_limit``
  with ``requests_per_unit`` and ``unit``); a request descriptor's entries walk the tree, an entry
  matching ``key`` + ``value`` first, else ``key`` alone (a bucket per distinct value);
- counters live in fixed windows aligned to the unit (the window start is part of the key), so a
  spent budget comes back at the next window boundary, at most one unit later;
- each descriptor adds its own ``hits_addend`` when Envoy sends one (0 checks without counting),
  else the request's (at least 1);
- a descriptor is over the limit when its count after the addition is strictly greater than the
  limit; the answer is OVER_LIMIT when any descriptor is; a descriptor with no limit is OK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


@dataclass(frozen=True)
class Limit:
    requests_per_unit: int
    unit: str  # SECOND, MINUTE, HOUR, DAY


@dataclass(frozen=True)
class Status:
    over_limit: bool
    limit: Limit | None
    remaining: int
    reset_s: int


class Descriptors:
    """One domain's descriptor tree."""

    def __init__(self, tree: list[dict[str, Any]]) -> None:
        self.tree = tree

    def limit(self, entries: list[tuple[str, str]]) -> Limit | None:
        level = self.tree
        found: dict[str, Any] | None = None
        for key, value in entries:
            exact = next((d for d in level if d["key"] == key and d.get("value") == value), None)
            found = exact or next((d for d in level if d["key"] == key and not d.get("value")), None)
            if found is None:
                return None
            level = found.get("descriptors") or []
        if found is None or "rate_limit" not in found:
            return None
        raw = found["rate_limit"]
        return Limit(int(raw["requests_per_unit"]), str(raw["unit"]).upper())


class RateLimiter:
    """Counters per domain, descriptor and window (the service's Redis, kept in memory)."""

    def __init__(self, config: list[dict[str, Any]], clock: Callable[[], float] = time.time) -> None:
        self.domains = {str(c["domain"]): Descriptors(list(c.get("descriptors") or [])) for c in config}
        self.clock = clock
        self.counters: dict[str, int] = {}
        self.lock = threading.Lock()

    def check(self, domain: str, descriptors: list[tuple[list[tuple[str, str]], int]]) -> list[Status]:
        """``descriptors``: (entries, hits to add); one status each, in order."""
        now = int(self.clock())
        statuses = []
        tree = self.domains.get(domain)
        with self.lock:
            self._forget(now)
            for entries, hits in descriptors:
                limit = tree.limit(entries) if tree else None
                if limit is None:
                    statuses.append(Status(False, None, 0, 0))
                    continue
                divider = UNIT_SECONDS[limit.unit]
                window = now - now % divider
                key = f"{domain}_" + "_".join(f"{k}_{v}" for k, v in entries) + f"_{window}:{divider}"
                after = self.counters.get(key, 0) + hits
                self.counters[key] = after
                over = after > limit.requests_per_unit
                remaining = 0 if over else limit.requests_per_unit - after
                statuses.append(Status(over, limit, remaining, divider - now % divider))
        return statuses

    def _forget(self, now: int) -> None:
        """Drops counters of windows that have ended (Redis expires them the same way)."""
        for key in [
            k for k in self.counters if int(k.rsplit("_", 1)[1].split(":")[0]) + int(k.rsplit(":", 1)[1]) <= now
        ]:
            del self.counters[key]
