"""A Linux timerfd on CLOCK_MONOTONIC: a file descriptor that becomes readable at an absolute time.

Event loops (asyncio's epoll selector, libev, libuv) round their poll timeouts up to whole
milliseconds, so a timer of theirs fires up to a millisecond late. A timerfd is an hrtimer without
timer slack: registered with the loop as an ordinary reader, it wakes the loop within microseconds
of the time asked for. ``time.monotonic()`` reads the same clock.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(None, use_errno=True)


class TimerFd:
    """One timer: ``arm(t)`` makes ``fileno()`` readable at monotonic time ``t``; ``clear()`` after it fired."""

    def __init__(self, blocking: bool = False) -> None:
        fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | (0 if blocking else TFD_NONBLOCK))
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd: int = fd
        self._spec = _Itimerspec()

    def fileno(self) -> int:
        return self.fd

    def arm(self, at_monotonic: float) -> None:
        # An absolute time of 0 would disarm the timer; a time in the past fires at once.
        at = max(at_monotonic, 1e-6)
        seconds = int(at)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = int((at - seconds) * 1e9)
        if _libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)
