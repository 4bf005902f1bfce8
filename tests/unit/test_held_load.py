"""Held load (Platform.hold_requests): its bounds, its workers, and which replica each embedded held
request goes to (the model's traffic split between revisions, then each revision's replicas in turn)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from inferbox.embedded.held_load import REVISION_LABEL, ReplicaChooser, pick_revision
from inferbox.errors import InferboxError
from inferbox.held_load import HeldLoad, body_pieces, check_bounds, run_workers
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.mesh import Outcome, ProbeResult, Workload
from inferbox.serving import RevisionStatus
from inferbox.topology import read_topology
from inferbox.waiting import eventually

MODEL = next(m for m in read_topology(load_manifests(DEFAULT_MANIFEST_DIR)).models if m.name == "sklearn-iris")


def _replica(name: str, revision: str) -> Workload:
    return Workload(
        "tenant-a", name, "sklearn-iris", "default", "198.18.0.9", (("http", 8080),), {REVISION_LABEL: revision}
    )


def _revision(name: str, percent: int) -> RevisionStatus:
    return RevisionStatus("sklearn-iris", "tenant-a", name, percent, 1, 1, False)


def test_a_hundred_turns_give_each_revision_its_share() -> None:
    picks = Counter(pick_revision({"r1": 80, "r2": 20}, turn) for turn in range(100))
    assert picks == {"r1": 80, "r2": 20}


def test_held_requests_follow_the_split_and_spread_over_a_revisions_replicas() -> None:
    ready = [_replica("a", "r1"), _replica("b", "r1"), _replica("c", "r2"), _replica("d", "r3")]
    other = Workload("tenant-a", "x", "other-model", "default", "198.18.0.10", (("http", 8080),), {})
    chooser = ReplicaChooser(MODEL, lambda: [*ready, other], lambda: [_revision("r1", 80), _revision("r2", 20)])
    chosen = Counter(w.name for w in (chooser.next() for _ in range(100)) if w is not None)
    assert chosen == {"a": 40, "b": 40, "c": 20}  # r3 has no traffic; the other model is never called


def test_a_revision_without_ready_replicas_leaves_its_share_to_the_others_and_none_waits() -> None:
    ready = [_replica("a", "r1")]
    chooser = ReplicaChooser(MODEL, lambda: ready, lambda: [_revision("r1", 80), _revision("r2", 20)])
    assert {w.name for w in (chooser.next() for _ in range(10)) if w is not None} == {"a"}
    ready.clear()
    assert chooser.next() is None


def test_a_replica_that_left_is_no_longer_ready() -> None:
    ready = [_replica("a", "r1"), _replica("b", "r1")]
    chooser = ReplicaChooser(MODEL, lambda: list(ready), lambda: [_revision("r1", 100)])
    leaving = ready[0]
    assert chooser.still_ready(leaving)
    ready.remove(leaving)  # it began to drain: out of the ready replicas
    assert not chooser.still_ready(leaving)
    assert chooser.still_ready(ready[0])


def test_bounds_are_checked_with_a_fix() -> None:
    check_bounds(8, 1.0, 30)
    for count, seconds, limit in [(0, 1.0, 30), (1000, 1.0, 30), (2, 0, 30), (2, 1.0, 10_000)]:
        with pytest.raises(InferboxError, match="out of bounds"):
            check_bounds(count, seconds, limit)


def test_a_body_is_cut_in_order() -> None:
    body = b'{"instances": [[6.8, 2.8, 4.8, 1.4]]}'
    pieces = body_pieces(body)
    assert b"".join(pieces) == body
    assert 1 < len(pieces) <= 5


def test_workers_stop_when_the_context_ends_and_at_the_limit() -> None:
    answered = ProbeResult(Outcome.ANSWERED, 200, "{}")
    calls: Counter[int] = Counter()

    def work(index: int, stop: threading.Event, _deadline: float) -> list[ProbeResult]:
        calls[index] += 1
        stop.wait(0.01)  # a request's length
        return [answered]

    def at_least(load: HeldLoad, count: int) -> None:
        assert len(load.results) >= count

    def no_worker_left() -> None:
        assert not [t for t in threading.enumerate() if t.name.startswith("hold-")], "a worker is still running"

    with run_workers(HeldLoad("t", "m", 3, 0.01), 3, 30.0, work) as load:
        eventually(lambda: at_least(load, 9), 5.0, 0.01)
    ended = len(load.results)
    assert set(calls) == {0, 1, 2}
    no_worker_left()
    assert len(load.results) == ended, "a worker went on after the context ended"
    with run_workers(HeldLoad("t", "m", 1, 0.01), 1, 0.2, work) as limited:
        # The limit ends the worker by itself, long before the context ends.
        eventually(no_worker_left, 5.0, 0.02)
    assert limited.results
    assert len(limited.results) < 40, "the limit did not stop the worker"
    assert not limited.failures()
