"""The embedded target's pause action: a process group stopped for a bounded time, always resumed."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from inferbox.embedded.pause import MAX_PAUSE_S, pause_process_group, replica_component
from inferbox.embedded.processes import proc_start_time
from inferbox.embedded.state import ComponentStatus
from inferbox.errors import PlatformError
from inferbox.topology import Model


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_a_paused_group_is_stopped_then_running_again() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        start = proc_start_time(child.pid)
        assert start is not None
        seen: list[str] = []

        def look() -> None:
            time.sleep(0.15)  # halfway through the pause
            seen.append(_state(child.pid))

        watcher = threading.Thread(target=look)
        watcher.start()
        stopped, resumed = pause_process_group(child.pid, start, 0.3)
        watcher.join()
        assert seen == ["T"], "stopped during the pause"
        assert _state(child.pid) in "SR", "running again afterwards"
        assert 0.3 <= resumed - stopped < 0.5
    finally:
        child.kill()
        child.wait()


def test_pauses_are_bounded_and_checked() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        start = proc_start_time(child.pid)
        assert start is not None
        with pytest.raises(PlatformError, match="outside"):
            pause_process_group(child.pid, start, MAX_PAUSE_S + 1)
        with pytest.raises(PlatformError, match="gone or was replaced"):
            pause_process_group(child.pid, start + 60, 0.1)
    finally:
        child.kill()
        child.wait()


def test_replicas_are_found_by_workload() -> None:
    components = {
        "tenant-a.sklearn-iris-0": ComponentStatus(True, 1, 1, "", workload="tenant-a.sklearn-iris"),
        "tenant-a.sklearn-iris-1": ComponentStatus(True, 2, 1, "", workload="tenant-a.sklearn-iris"),
        "tenant-a.sklearn-iris-1-sidecar": ComponentStatus(True, 4, 1, ""),
        "gateway": ComponentStatus(True, 3, 1, ""),
    }
    model = Model("sklearn-iris", "tenant-a", "sklearn", 1, 3)
    assert replica_component(components, model, 1)[0] == "tenant-a.sklearn-iris-1"
    with pytest.raises(PlatformError, match="has 2 replica"):
        replica_component(components, model, 2)
