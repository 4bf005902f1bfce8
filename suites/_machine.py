"""The machine as a shared resource of checks that run side by side.

Checks that run in threads beside each other (the serverless checks of ``serving/_overlap.py``, the
background checks of ``_background.py``) mostly wait. Their heavy sections — a cold start being
timed, a burst, load that starts replicas, a budget spent as fast as the gateway answers — run
``alone()``: never two at once, so no timing is taken while another check loads the machine.
"""

from __future__ import annotations

import threading

_ALONE = threading.Lock()


class Alone:
    """A section that must not share the machine with another check's heavy section; ``release()``
    ends it early (the rest of the check only waits)."""

    def __init__(self) -> None:
        _ALONE.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            _ALONE.release()

    def __enter__(self) -> Alone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def alone() -> Alone:
    """Waits for the machine to be free of other heavy sections, then holds it (use with ``with``)."""
    return Alone()
