"""Held load: requests kept in flight at a model's revisions by a workload of the model's own tenant,
inside the mesh (``Platform.hold_requests``). Target-agnostic: the value the caller reads, and the
bounded workers that keep requests going until the caller is done or the time limit passes.

Why from inside the mesh: the gateway's routes buffer a request's whole body before sending it on
(Envoy Gateway's ``requestBuffer``), so a client that uploads slowly through the gateway is never in
flight at the model. A caller inside the tenant reaches the revision directly, as Knative's
autoscaler counts it (at the revision's pods).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from inferbox.errors import InferboxError
from inferbox.mesh import ProbeResult

MAX_COUNT = 64  # requests held at once: enough to scale any model of the manifests out, bounded
MAX_SECONDS = 30.0  # longest one request's body takes to upload
MAX_LIMIT_S = 300.0  # longest a hold lasts
BODY_PIECES = 5  # a slow body is sent in this many pieces, evenly over its seconds


@dataclass
class HeldLoad:
    """What a hold did so far: each request's result as it ended (appended by the hold's workers)."""

    tenant: str
    model: str
    count: int
    seconds: float
    results: list[ProbeResult] = field(default_factory=list)

    def failures(self) -> list[str]:
        return [r.describe() for r in self.results if not r.answered]


def check_bounds(count: int, seconds: float, limit_s: float) -> None:
    if not 1 <= count <= MAX_COUNT or not 0 < seconds <= MAX_SECONDS or not 0 < limit_s <= MAX_LIMIT_S:
        raise InferboxError(
            f"a hold of {count} requests of {seconds:g}s each for {limit_s:g}s is out of bounds",
            f"hold 1..{MAX_COUNT} requests, each 0..{MAX_SECONDS:g}s, for at most {MAX_LIMIT_S:g}s",
        )


def body_pieces(body: bytes, pieces: int = BODY_PIECES) -> list[bytes]:
    """``body`` cut into at most ``pieces`` pieces, in order."""
    step = max(1, -(-len(body) // pieces))
    return [body[i : i + step] for i in range(0, len(body), step)] or [b""]


@contextmanager
def run_workers(
    load: HeldLoad, workers: int, limit_s: float, work: Callable[[int, threading.Event, float], list[ProbeResult]]
) -> Iterator[HeldLoad]:
    """Runs ``workers`` threads, each calling ``work(index, stop, deadline)`` again and again (each call
    returns the results of the requests it ended) until the context ends or ``limit_s`` has passed
    (``deadline`` is that instant, monotonic). The context's end waits for the requests in flight."""
    stop = threading.Event()
    deadline = time.monotonic() + limit_s

    def loop(index: int) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            load.results.extend(work(index, stop, deadline))

    threads = [threading.Thread(target=loop, args=(i,), name=f"hold-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        stop.set()
        for thread in threads:
            # A worker's call in flight ends within its requests' uploads and the model's answers.
            thread.join(timeout=MAX_SECONDS + 60)
