"""Held load on the embedded target (``Platform.hold_requests``): slow requests from the tenant's probe
pod, with its mesh identity, straight to the model's ready replicas' sidecars.

A caller inside a Kubernetes cluster sends to the model's cluster-local address, and the mesh splits
that traffic between revisions as the route says and spreads it over each revision's pods; here the
same choice is made per request: a revision by its share of the traffic, then its ready replicas in
turn. Unlike a cluster, a held request does not wake a revision at zero (there Knative's activator
would hold it and start a replica): it goes to another revision's ready replica, and while the model
has none it waits for one, within the hold's time limit.

A request whose connection a replica cut as it left (chosen just before the replica began to drain)
is sent again to a ready one, at most twice: on a cluster the caller's sidecar no longer sends to a
terminating pod, the pod's sidecar keeps accepting while it drains, and Istio's default retry policy
(two attempts) covers connect failures.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from collections.abc import Callable

from inferbox.mesh import Workload
from inferbox.serving import RevisionStatus
from inferbox.topology import Model

REVISION_LABEL = "serving.knative.dev/revision"
WEIGHT_STRIDE = 37  # coprime with 100: a hundred turns visit every percentage point once


def pick_revision(shares: dict[str, int], turn: int) -> str:
    """The revision for request number ``turn``: over any hundred turns each revision gets its share."""
    total = sum(shares.values())
    point = (turn * WEIGHT_STRIDE) % total
    for name, share in sorted(shares.items()):
        if point < share:
            return name
        point -= share
    raise AssertionError("a point below the total lies in some share")


class ReplicaChooser:
    """Which ready replica of the model the next held request goes to."""

    def __init__(
        self, model: Model, workloads: Callable[[], list[Workload]], revisions: Callable[[], list[RevisionStatus]]
    ) -> None:
        self.model = model
        self._workloads = workloads
        self._revisions = revisions
        self._turns = itertools.count()
        self._in_revision: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def _ready(self) -> list[Workload]:
        return [w for w in self._workloads() if w.namespace == self.model.tenant and w.model == self.model.name]

    def still_ready(self, workload: Workload) -> bool:
        """Whether ``workload`` is still one of the model's ready replicas (not draining, not gone)."""
        return any(w.name == workload.name for w in self._ready())

    def next(self) -> Workload | None:
        ready = self._ready()
        by_revision: dict[str, list[Workload]] = defaultdict(list)
        for workload in ready:
            by_revision[workload.labels.get(REVISION_LABEL, "")].append(workload)
        shares = {r.name: r.traffic_percent for r in self._revisions() if r.traffic_percent > 0}
        with self._lock:
            revision = pick_revision(shares, next(self._turns)) if shares else ""
            candidates = by_revision.get(revision) or ready
            if not candidates:
                return None
            turn = self._in_revision[revision]
            self._in_revision[revision] += 1
        return sorted(candidates, key=lambda w: w.name)[turn % len(candidates)]
