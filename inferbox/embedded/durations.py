"""Kubernetes (Go ``time.ParseDuration``) durations such as ``50ms``, ``2s`` or ``1m30s``."""

from __future__ import annotations

import re

# Go's time.ParseDuration grammar; no maintained Python library parses it exactly.
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a duration like ``50ms``, ``1.5s`` or ``1m30s``; ValueError otherwise."""
    parts = _GO_DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 50ms, 1.5s or 1m30s")
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)
