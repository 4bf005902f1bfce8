"""Checks that run in the background while the rest of the session goes on.

A check marked ``@pytest.mark.background`` spends most of its time waiting out a window of the
platform's (a token budget refills once a minute) and shares nothing with the other suites' checks.
Such checks are moved to the end of the session. They start in one thread, one after another, as soon
as no other check of their own folder is left to run (those checks use what a background check
exhausts), and each reports how it ended in its own turn at the end. What a check does and asserts is
unchanged: the very same test function runs, with the same session fixtures, its parameters and its
own ``evidence``.

A background check's heavy section (spending a budget as fast as the gateway answers) runs
``alone()`` (``_machine.py``), so no other check's timing is taken meanwhile. A check that asks for
a fixture narrower than the session cannot run outside its turn and runs in its turn as usual.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferbox.evidence import Evidence
from inferbox.pytest_plugin.core import FOLDER_KEY

from ._deferred import DeferredCheck

MARK = "background"
STOP_WAIT_S = 180.0  # at the end of a session, how long a background check still running may take


def _fixtures_of(item: pytest.Function) -> list[str]:
    """The fixtures the check's function asks for, other than its parameters and ``evidence``."""
    parameters = _parameters(item)
    return [name for name in inspect.signature(item.obj).parameters if name not in parameters and name != "evidence"]


def _parameters(item: pytest.Function) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


def _runnable(item: pytest.Item) -> bool:
    """A background-marked function whose fixtures are all session-scoped, with no skip or xfail mark."""
    if not isinstance(item, pytest.Function) or item.get_closest_marker(MARK) is None:
        return False
    if any(item.get_closest_marker(name) is not None for name in ("skip", "skipif", "xfail")):
        return False
    definitions = item._fixtureinfo.name2fixturedefs
    return all(name in definitions and definitions[name][-1].scope == "session" for name in _fixtures_of(item))


class Background:
    """The background checks of a session: planned from the collected items, run in one thread."""

    def __init__(self, steps: list[DeferredCheck], starter: str) -> None:
        self.steps = {step.item.nodeid: step for step in steps}
        self.folders = {step.item.path.parent for step in steps}
        self.starter = starter  # the node after whose run the thread starts
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def plan(cls, items: list[pytest.Item]) -> Background | None:
        """Moves the background checks to the end of ``items`` (in place); None when there are none."""
        background = [item for item in items if _runnable(item)]
        if not background:
            return None
        chosen = {item.nodeid for item in background}
        items[:] = [item for item in items if item.nodeid not in chosen] + background
        folders = {item.path.parent for item in background}
        # The last other check of their folders; with none, the first background check starts them.
        neighbours = [item for item in items if item.nodeid not in chosen and item.path.parent in folders]
        starter = neighbours[-1] if neighbours else background[0]
        steps = [DeferredCheck(item) for item in background if isinstance(item, pytest.Function)]
        return cls(steps, starter.nodeid)

    def has(self, item: pytest.Item) -> bool:
        return item.nodeid in self.steps

    def pending_in(self, folder: Path) -> bool:
        """Whether a background check of ``folder`` is still to run or running."""
        return any(not step.done.is_set() for step in self.steps.values() if step.item.path.parent == folder)

    def fixtures(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        """The session fixtures the checks need, from a request of a node of their folder."""
        names = {name for step in self.steps.values() for name in _fixtures_of(step.item)}
        return {name: request.getfixturevalue(name) for name in sorted(names)}

    def start(self, fixtures: dict[str, Any], folder: Path | None) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(fixtures, folder), name="background", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def _run(self, fixtures: dict[str, Any], folder: Path | None) -> None:
        for step in self.steps.values():
            if self._stop.is_set():
                step.not_run()
            else:
                step.run({**fixtures, **_parameters(step.item), "evidence": Evidence(step.item, folder)})

    def outcome(self, item: pytest.Item) -> None:
        """Waits for the item's check to have run; raises what it raised."""
        self.steps[item.nodeid].report("background_run_s")

    def stop(self) -> None:
        """No further check starts; the one running may finish (bounded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)


BACKGROUND_KEY = pytest.StashKey[Background]()


# -- wiring (called from the suites' conftest) ----------------------------------------------------


def plan_background(config: pytest.Config, items: list[pytest.Item]) -> None:
    """At the end of collection: the background checks go last, and are remembered."""
    background = Background.plan(items)
    if background is not None:
        config.stash[BACKGROUND_KEY] = background


@pytest.fixture(autouse=True)
def background_checks(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the last other check of their folder (or at the first of them), the background checks
    start, with the session fixtures that node sees."""
    background = request.config.stash.get(BACKGROUND_KEY, None)
    if background is None or background.started or request.node.nodeid != background.starter:
        yield
        return
    fixtures = background.fixtures(request)
    folder = request.config.stash.get(FOLDER_KEY, None)
    if background.has(request.node):
        background.start(fixtures, folder)
        yield
    else:
        yield
        background.start(fixtures, folder)


def relay_background_outcome(pyfuncitem: pytest.Function) -> bool | None:
    """In a background check's turn: how it ended (True), or None for any other check."""
    background = pyfuncitem.config.stash.get(BACKGROUND_KEY, None)
    if background is None or not background.has(pyfuncitem):
        return None
    if not background.started:  # its starter never set up its fixtures (skipped, failed in setup)
        background.start(dict(pyfuncitem.funcargs), pyfuncitem.config.stash.get(FOLDER_KEY, None))
    background.outcome(pyfuncitem)
    return True


def stop_background(config: pytest.Config) -> None:
    background = config.stash.get(BACKGROUND_KEY, None)
    if background is not None:
        background.stop()
