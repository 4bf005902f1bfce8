"""Waiting on eventually-consistent facts: retried with tenacity, optionally held N times in a row."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

T = TypeVar("T")


class NotYet(AssertionError):
    """Raised by a check that does not hold yet; the last one is re-raised at the deadline."""


def eventually(check: Callable[[], T], timeout_s: float, interval_s: float = 0.1, in_a_row: int = 1) -> T:
    """Runs ``check`` until it returns without raising ``in_a_row`` times consecutively.

    ``check`` raises AssertionError (or NotYet) while the fact does not hold; at the deadline the
    last failure propagates with its message.
    """
    streak = {"n": 0}

    def attempt() -> T:
        try:
            result = check()
        except AssertionError:
            streak["n"] = 0
            raise
        streak["n"] += 1
        if streak["n"] < in_a_row:
            raise NotYet(f"held {streak['n']} of {in_a_row} times in a row")
        return result

    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(interval_s),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    )
    return retrying(attempt)
