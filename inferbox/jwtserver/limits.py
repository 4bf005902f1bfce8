"""Abuse limits of the token endpoint: a per-client issue budget and a backoff after failed
authentications.

- **Issue budget** (``JWT_CLIENT_TOKENS_PER_MINUTE=N``): each authenticated client has a bucket of N
  tokens, refilled at N per minute. A client can take N at once, then one every 60/N seconds, so at
  most 2N in any minute; past that it gets 429 with a Retry-After until the bucket refills.
- **Failed-authentication backoff** (``JWT_AUTH_FAILURES_BEFORE_BACKOFF=F``,
  ``JWT_AUTH_BACKOFF_SECONDS=B``): after F failed authentications in a row for one client id, its
  secret is not checked for B seconds (429 with a Retry-After, the right secret included, so guesses
  made meanwhile are worth nothing); each further failure doubles the wait, up to
  ``MAX_BACKOFF_S``. A success clears the count; so does a quiet ``MAX_BACKOFF_S``. Unknown client
  ids are counted like known ones, so the answers do not tell which ids exist.

A setting left out switches its limit off. The state lives in one server process (the Deployment
runs one replica); it is bounded in size, forgetting the oldest idle entries first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_BACKOFF_S = 300.0
MAX_ENTRIES = 10_000  # client ids remembered at once (unknown ids are attacker-chosen)

Clock = Callable[[], float]


@dataclass(frozen=True)
class LimitSettings:
    tokens_per_minute: int | None = None  # per authenticated client; None: no budget
    failures_before_backoff: int | None = None  # per presented client id; None: no backoff
    backoff_s: float = 1.0  # the first wait; doubled by each further failure

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LimitSettings:
        """Reads the JWT_* variables; a malformed value raises ValueError naming it."""

        def number(name: str, default: float | None, whole: bool = True) -> float | None:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw) if whole else float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a {'whole ' if whole else ''}number, found {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be above 0, found {raw!r}")
            return value

        tokens = number("JWT_CLIENT_TOKENS_PER_MINUTE", None)
        failures = number("JWT_AUTH_FAILURES_BEFORE_BACKOFF", None)
        backoff = number("JWT_AUTH_BACKOFF_SECONDS", 1.0, whole=False)
        return cls(
            None if tokens is None else int(tokens),
            None if failures is None else int(failures),
            float(backoff or 1.0),
        )


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


class IssueBudget:
    """Token buckets per client id: ``per_minute`` tokens, refilled at ``per_minute`` per minute."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # id -> (tokens, at)

    def take(self, client_id: str) -> float:
        """Takes one token; returns 0 on success, else the seconds until one is available."""
        now = self.clock()
        tokens, at = self._buckets.pop(client_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate_per_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate_per_s
        self._buckets[client_id] = (tokens, now)
        while len(self._buckets) > MAX_ENTRIES:
            self._buckets.popitem(last=False)
        return wait


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class FailureBackoff:
    """Failed authentications per presented client id, and the waits they earn."""

    def __init__(self, threshold: int, backoff_s: float, clock: Clock = time.monotonic) -> None:
        self.threshold = threshold
        self.backoff_s = backoff_s
        self.clock = clock
        self._ids: OrderedDict[str, _Failures] = OrderedDict()

    def blocked_for(self, client_id: str) -> float:
        """Seconds this id must still wait before its secret is checked again (0: not blocked)."""
        entry = self._ids.get(client_id)
        return max(0.0, entry.blocked_until - self.clock()) if entry else 0.0

    def failed(self, client_id: str) -> None:
        now = self.clock()
        entry = self._ids.pop(client_id, None) or _Failures()
        if now - entry.last > MAX_BACKOFF_S:
            entry = _Failures()  # a long quiet spell forgives earlier failures
        entry.count += 1
        entry.last = now
        if entry.count >= self.threshold:
            wait = self.backoff_s * 2 ** min(entry.count - self.threshold, 32)
            entry.blocked_until = now + min(wait, MAX_BACKOFF_S)
        self._ids[client_id] = entry
        while len(self._ids) > MAX_ENTRIES:
            self._ids.popitem(last=False)

    def succeeded(self, client_id: str) -> None:
        self._ids.pop(client_id, None)
