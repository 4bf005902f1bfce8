"""Kubernetes-style Warning events of the embedded platform (a refused pod, a failed reload).

Kept in memory for the contract (a scale request reports the refusals it caused) and appended to
``logs/events.log`` for people.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Event:
    time: float
    namespace: str
    reason: str
    message: str
    type: str = "Warning"


class EventLog:
    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / "events.log"
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def record(self, namespace: str, reason: str, message: str) -> None:
        event = Event(time.time(), namespace, reason, message)
        with self._lock:
            self._events.append(event)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as log:
                log.write(f"{time.strftime('%H:%M:%S')} {event.type} {reason} {namespace}: {message}\n")

    def mark(self) -> int:
        """A position in the log; ``since(mark)`` returns what was recorded after it."""
        with self._lock:
            return len(self._events)

    def since(self, mark: int, namespace: str | None = None) -> list[Event]:
        with self._lock:
            found = self._events[mark:]
        return [e for e in found if namespace is None or e.namespace == namespace]
