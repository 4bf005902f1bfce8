"""Chaos on the embedded target: a model replica stalls, its processes stopped and resumed by PID.

SIGSTOP freezes every process of the replica's process group (replicas run in their own session)
the way a stalled node or a long garbage-collection pause would: connections stay open and requests
queue. SIGCONT always follows, also when the caller is interrupted; the pause is bounded so a
mistake cannot leave a replica frozen for long.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping

from inferbox.contract import ReplicaPause
from inferbox.embedded.processes import is_same_process
from inferbox.embedded.state import ComponentStatus
from inferbox.errors import PlatformError
from inferbox.topology import Model

MAX_PAUSE_S = 30.0


def replica_component(
    components: Mapping[str, ComponentStatus], model: Model, replica: int
) -> tuple[str, ComponentStatus]:
    """The component (name, status) of a model's replica among an embedded platform's processes."""
    workload = f"{model.tenant}.{model.name}"
    replicas = sorted(((name, info) for name, info in components.items() if info.workload == workload), key=_name)
    if not 0 <= replica < len(replicas):
        raise PlatformError(
            f"{model.tenant}/{model.name} has {len(replicas)} replica(s); there is no replica {replica}",
            "pause an existing replica (replica=0 is the first)",
        )
    return replicas[replica]


def pause_process_group(pid: int, start_time: float, seconds: float) -> tuple[float, float]:
    """Stops ``pid``'s process group for ``seconds`` and resumes it; returns (stopped, resumed) monotonic times."""
    if not 0 < seconds <= MAX_PAUSE_S:
        raise PlatformError(f"a pause of {seconds}s is outside (0, {MAX_PAUSE_S}] s", "choose a shorter pause")
    if not is_same_process(pid, start_time):
        raise PlatformError(f"process {pid} is gone or was replaced", "the replica is not running; check its log")
    group = os.getpgid(pid)
    if group != pid:
        raise PlatformError(
            f"process {pid} does not lead its own process group ({group})",
            "replicas are started in their own session; this one was not started by the embedded platform",
        )
    os.killpg(group, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # The fault's duration: waiting here is the fault itself, not synchronisation.
        time.sleep(max(0.0, stopped + seconds - time.monotonic()))
    finally:
        os.killpg(group, signal.SIGCONT)
        resumed = time.monotonic()
    return stopped, resumed


def _name(entry: tuple[str, ComponentStatus]) -> str:
    return entry[0]


def pause_replica(
    components: Mapping[str, ComponentStatus], model: Model, seconds: float, replica: int = 0
) -> ReplicaPause:
    name, info = replica_component(components, model, replica)
    stopped, resumed = pause_process_group(info.pid, info.start_time, seconds)
    return ReplicaPause(model.name, model.tenant, name, stopped, resumed)
