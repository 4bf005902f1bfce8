"""Serverless checks whose waits overlap across models.

Most of a serverless check's time is spent waiting for an idle model to reach zero (the platform's
stable window and grace period), and nothing shares one model's idleness with another model's. So
the checks marked ``@pytest.mark.overlap(stage)`` run early, one thread per model, each model's
checks in stage order, while the other models wait for zero; each check then reports its own
outcome when pytest reaches it. What each check does and asserts is unchanged: the very same test
function runs, with the same fixtures (``platform``, ``gateway``, ``token_for``, ``model``,
``evidence``).

Two rules keep the verdicts what they were when the checks ran one after another:

- while overlapped checks run, no other test runs (a test that is not one of them waits until all
  of them have finished), so nothing else sends a model traffic that would end its idleness;
- sections that load the machine (a cold start being measured, a burst, load that starts replicas)
  run ``alone()`` (``suites/_machine.py``): never two at once, so one model's cold start is not
  timed while another model starts replicas. Waiting for zero needs no such section.
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from inferbox.contract import Capability
from inferbox.evidence import Evidence
from inferbox.topology import Model

from .._deferred import DeferredCheck
from .._machine import Alone, alone

__all__ = ["Alone", "Overlap", "Stage", "alone"]

MARK = "overlap"
SESSION_FIXTURES = ("platform", "gateway", "token_for")
ALLOWED_ARGUMENTS = {*SESSION_FIXTURES, "model", "evidence"}
STOP_WAIT_S = 120.0  # at the end of a session, how long a check still running may take to finish


class Stage(IntEnum):
    """The order of one model's overlapped checks: those that need it warm first, then idleness,
    then the cycles from zero (each of which starts by waiting for zero again)."""

    CANARY = 10
    PROMOTE = 11
    SCALE_OUT = 20
    IDLE = 30
    COLD_START = 40
    BURST = 50


def stage_of(item: pytest.Item) -> int | None:
    mark = item.get_closest_marker(MARK)
    return int(mark.args[0]) if mark is not None and mark.args else None


@dataclass
class Step(DeferredCheck):
    """One overlapped check, in its model's stage order."""

    stage: int
    model: Model


def _runnable(item: pytest.Item, capabilities: frozenset[Capability]) -> bool:
    """Whether the item can run outside its turn: a function with only the fixtures provided here,
    no skip or xfail mark, and every capability it declares present (else its turn skips it)."""
    if not isinstance(item, pytest.Function) or stage_of(item) is None:
        return False
    if any(item.get_closest_marker(name) is not None for name in ("skip", "skipif", "xfail")):
        return False
    if set(inspect.signature(item.obj).parameters) - ALLOWED_ARGUMENTS:
        return False
    needed = [str(arg) for mark in item.iter_markers("capability") for arg in mark.args]
    return all(Capability(c) in capabilities for c in needed) and "model" in item.callspec.params


class Overlap:
    """The overlapped checks of a session: planned from the selected items, run in threads."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = {step.item.nodeid: step for step in steps}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def plan(cls, items: list[pytest.Item], capabilities: frozenset[Capability]) -> Overlap:
        steps = []
        for item in items:
            if _runnable(item, capabilities):
                assert isinstance(item, pytest.Function)
                stage = stage_of(item)
                assert stage is not None
                model = item.callspec.params["model"]
                assert isinstance(model, Model)
                steps.append(Step(item, stage, model))
        return cls(steps)

    def has(self, item: pytest.Item) -> bool:
        return item.nodeid in self.steps

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self, fixtures: dict[str, Any], folder: Path | None) -> None:
        by_model: dict[tuple[str, str], list[Step]] = {}
        for step in self.steps.values():
            by_model.setdefault((step.model.tenant, step.model.name), []).append(step)
        for (tenant, name), steps in sorted(by_model.items()):
            ordered = sorted(steps, key=lambda s: s.stage)
            thread = threading.Thread(
                target=self._run_model, args=(ordered, fixtures, folder), name=f"overlap-{tenant}-{name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _run_model(self, steps: list[Step], fixtures: dict[str, Any], folder: Path | None) -> None:
        for step in steps:
            if self._stop.is_set():
                step.not_run()
            else:
                step.run({**fixtures, "model": step.model, "evidence": Evidence(step.item, folder)})

    def outcome(self, item: pytest.Item) -> None:
        """Waits for the item's check to have run; raises what it raised."""
        self.steps[item.nodeid].report("overlapped_run_s")

    def finish(self) -> None:
        """Waits until every overlapped check has run."""
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        """No further check starts; the one running may finish (bounded)."""
        self._stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


OVERLAP_KEY = pytest.StashKey[Overlap]()
