"""A process is named by its PID and start time; the start time another process recorded may be off
by the boot-time drift psutil inherits from the kernel, and must still name the same process."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from inferbox.embedded.processes import START_TIME_MARGIN_S, is_same_process, proc_start_time
from inferbox.waiting import eventually


def test_a_start_time_seen_a_second_apart_names_the_same_process() -> None:
    started = proc_start_time(os.getpid())
    assert started is not None
    assert is_same_process(os.getpid(), started)
    assert is_same_process(os.getpid(), started - 1.0)  # recorded by a process whose boot time was older
    assert is_same_process(os.getpid(), started + 1.0)


def test_another_start_time_is_another_process() -> None:
    started = proc_start_time(os.getpid())
    assert started is not None
    assert not is_same_process(os.getpid(), started - START_TIME_MARGIN_S - 60)


def test_a_gone_process_is_not_the_same() -> None:
    assert not is_same_process(2**22 + 17, 0.0)  # above Linux's pid_max: never a process


def test_an_exited_child_not_yet_waited_for_is_not_the_same() -> None:
    """A child that exited stays a zombie until its parent reads its status, and psutil still gives
    its start time: stopping a platform this process started must not wait for it to go."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = proc_start_time(child.pid)
    assert started is not None
    eventually(lambda: _is_zombie(child.pid), timeout_s=10, interval_s=0.05)
    try:
        assert proc_start_time(child.pid) is None
        assert not is_same_process(child.pid, started)
    finally:
        child.wait()


def _is_zombie(pid: int) -> None:
    assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "the child has not exited yet"
