"""The raw per-request records a Locust run wrote (samples.bin + samples.json), as numpy arrays.

Times are seconds on one run timeline whose origin is the earliest worker's start; each worker's
own times are monotonic and aligned to the others by their wall-clock start. ``latency`` is from
the intended send time (open loop) or the actual send (closed loop), ``service`` always from the
actual send, ``delay`` is how late the generator sent (schedule delay). Runs with streamed chat
completions also have, per request, ``first`` (when the first token arrived; NaN without one),
``tokens`` (completion tokens of the stream's usage chunk; -1 without) and ``chunks`` (chunks with
content counted; -1 for a request that is not a stream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from inferbox.errors import InferboxError

# Outcome codes, as in inferbox/load/locustfile.py.
OK, RATE_LIMITED, HTTP_ERROR, WRONG_ANSWER, CONNECTION = 0, 1, 2, 3, 4
OUTCOMES = {OK: "ok", RATE_LIMITED: "rate-limited", HTTP_ERROR: "http-error", WRONG_ANSWER: "wrong-answer"}
OUTCOMES[CONNECTION] = "no-response"
DTYPES = {"d": np.float64, "h": np.int16, "b": np.int8, "i": np.int32}

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass
class Records:
    intended: Floats
    sent: Floats
    done: Floats
    status: Ints
    outcome: Ints
    target: Ints
    worker: Ints
    origin_wall: float  # wall-clock time of offset 0
    origin_mono: float  # monotonic time of offset 0 on the machine of the first worker
    scheduled: int | None  # open loop: slots on every worker's timeline, sent or not
    # Summed over workers: the generator's CPU seconds and, in open loop, connections opened, the
    # most open at once, and requests that waited for a connection (the pool was at its limit).
    generator: dict[str, float] | None = None
    first: Floats | None = None  # streams only (see the module's docstring)
    tokens: Ints | None = None
    chunks: Ints | None = None

    def __len__(self) -> int:
        return int(self.done.size)

    @property
    def latency(self) -> Floats:
        return self.done - self.intended

    @property
    def service(self) -> Floats:
        return self.done - self.sent

    @property
    def delay(self) -> Floats:
        return self.sent - self.intended

    def select(self, mask: npt.NDArray[np.bool_]) -> Records:
        return Records(
            self.intended[mask],
            self.sent[mask],
            self.done[mask],
            self.status[mask],
            self.outcome[mask],
            self.target[mask],
            self.worker[mask],
            self.origin_wall,
            self.origin_mono,
            None,
            first=None if self.first is None else self.first[mask],
            tokens=None if self.tokens is None else self.tokens[mask],
            chunks=None if self.chunks is None else self.chunks[mask],
        )


def read_records(folder: Path) -> Records:
    meta_path = folder / "samples.json"
    if not meta_path.exists():
        raise InferboxError(
            f"the load generator wrote no samples in {folder}", f"see {folder / 'locust.log'} for what Locust said"
        )
    meta = json.loads(meta_path.read_text())
    raw = (folder / "samples.bin").read_bytes()
    order: Literal["<", ">"] = "<" if meta["byteorder"] == "little" else ">"
    parts: dict[str, list[npt.NDArray[np.generic]]] = {name: [] for name, _ in meta["columns"]}
    parts["worker"] = []
    workers = meta["workers"]
    origin_wall = min((w["t0_wall"] for w in workers), default=0.0)
    first = min(workers, key=lambda w: w["t0_wall"]) if workers else {"t0_mono": 0.0}
    scheduled: int | None = 0
    generator: dict[str, float] = {}
    for worker in workers:
        for key, value in (worker.get("generator") or {}).items():
            generator[key] = round(generator.get(key, 0) + value, 3)
        offset, count = int(worker["offset"]), int(worker["count"])
        shift = worker["t0_wall"] - origin_wall
        for name, code in meta["columns"]:
            dtype = np.dtype(DTYPES[code]).newbyteorder(order)
            values = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
            offset += values.nbytes
            parts[name].append(values + shift if code == "d" else values.astype(np.int64))
        parts["worker"].append(np.full(count, int(worker["worker"]), dtype=np.int64))
        complete = worker.get("final", True) and worker.get("scheduled") is not None
        scheduled = scheduled + worker["scheduled"] if complete and scheduled is not None else None

    def joined(name: str, dtype: type) -> npt.NDArray[np.generic]:
        return np.concatenate(parts[name]) if parts[name] else np.zeros(0, dtype=dtype)

    streamed = "first" in parts

    return Records(
        joined("intended", np.float64).astype(np.float64),
        joined("sent", np.float64).astype(np.float64),
        joined("done", np.float64).astype(np.float64),
        joined("status", np.int64).astype(np.int64),
        joined("outcome", np.int64).astype(np.int64),
        joined("target", np.int64).astype(np.int64),
        joined("worker", np.int64).astype(np.int64),
        origin_wall,
        float(first["t0_mono"]),
        scheduled if workers else None,
        generator or None,
        first=joined("first", np.float64).astype(np.float64) if streamed else None,
        tokens=joined("tokens", np.int64).astype(np.int64) if streamed else None,
        chunks=joined("chunks", np.int64).astype(np.int64) if streamed else None,
    )


def percentile(values: Floats, q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method: always a measured value, never interpolated."""
    if values.size == 0:
        raise ValueError("no samples")
    ordered = np.sort(values)
    rank = max(1, int(np.ceil(q / 100.0 * ordered.size)))
    return float(ordered[rank - 1])


def summary_ms(values_s: Floats) -> dict[str, float]:
    """p50/p90/p99/p99.9/max and mean in milliseconds, from raw samples."""
    if values_s.size == 0:
        return {}
    ordered = np.sort(values_s) * 1000.0

    def at(q: float) -> float:
        return round(float(ordered[max(1, int(np.ceil(q / 100.0 * ordered.size))) - 1]), 3)

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "p99.9": at(99.9),
        "max": round(float(ordered[-1]), 3),
        "mean": round(float(ordered.mean()), 3),
        "count": int(ordered.size),
    }
