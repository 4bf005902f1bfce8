"""A check run outside its turn (in a thread of the overlapped serving checks or of the background
checks), whose outcome is reported when pytest reaches it.

The very same test function runs, with the arguments it names; what it raised (an assertion, a skip)
is kept and raised again in its turn, so its verdict is what it would have been in order.
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class DeferredCheck:
    """One check run early: its test item and, once run, how it ended."""

    item: pytest.Function
    done: threading.Event = field(default_factory=threading.Event, kw_only=True)
    error: BaseException | None = field(default=None, kw_only=True)
    seconds: float = field(default=0.0, kw_only=True)

    def run(self, arguments: dict[str, Any]) -> None:
        """Calls the check's function with the arguments it names; keeps what it raised."""
        wanted = inspect.signature(self.item.obj).parameters
        began = time.monotonic()
        try:
            self.item.obj(**{name: arguments[name] for name in wanted})
        except BaseException as exc:  # the check's own outcome (assertion, skip...), re-raised in its turn
            self.error = exc
        finally:
            self.seconds = time.monotonic() - began
            self.done.set()

    def not_run(self) -> None:
        """The session stopped before the check's thread reached it."""
        self.error = RuntimeError("not run: the test session stopped first")
        self.done.set()

    def report(self, figure: str) -> None:
        """In the check's turn: waits for it to have run, records its run time, raises what it raised."""
        self.done.wait()
        self.item.user_properties.append(("figure", (figure, round(self.seconds, 3))))
        if self.error is not None:
            raise self.error
