"""How late this machine wakes a process that asks for it: the scheduling noise under a benchmark.

``python -m bench.waker --rate 1000 --seconds 5`` sleeps on a timerfd until each of ``rate`` evenly
spaced times per second and records how late it woke; it prints one JSON line: lateness percentiles
(ms) and the share of wake-ups within 1 ms. Nothing else runs in it, so whatever lateness it sees
is the machine's (other processes holding the CPUs), and bounds what any generator can do there.
It asks for the short time slices the load generator asks for (inferbox/load/locustfile.py), so the
two are scheduled alike.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import time

import numpy as np

from bench.timerfd import TimerFd


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def short_slices() -> None:
    """The load generator's scheduling hint: 0.1 ms slices of the fair scheduler (Linux 6.12+)."""
    number = {"x86_64": 314, "aarch64": 274}.get(os.uname().machine)
    if number is None:
        return
    attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr), sched_policy=os.SCHED_OTHER, sched_runtime=100_000)
    attr.sched_nice = os.getpriority(os.PRIO_PROCESS, 0)
    ctypes.CDLL(None, use_errno=True).syscall(number, 0, ctypes.byref(attr), 0)


def wake_lateness(rate: float, seconds: float) -> dict[str, float]:
    short_slices()
    timer = TimerFd(blocking=True)
    late = np.empty(round(rate * seconds))
    start = time.monotonic() + 0.05
    for index in range(late.size):
        due = start + index / rate
        timer.arm(due)
        os.read(timer.fileno(), 8)
        late[index] = time.monotonic() - due
    timer.close()
    late_ms = late * 1000
    return {
        **{f"p{q:g}": round(float(np.percentile(late_ms, q)), 3) for q in (50, 90, 99, 99.9)},
        "max": round(float(late_ms.max()), 3),
        "within_1ms": round(float((late_ms <= 1.0).mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.waker")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(wake_lateness(args.rate, args.seconds)))


if __name__ == "__main__":
    main()
