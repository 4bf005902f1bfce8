"""The state one chaos run shares between its activities: the platform, the faults it injected (so
rollbacks undo exactly those), the prober, the measurements and the verdicts.

Under pytest the check hands its ``platform`` in (``use_platform``). Under ``chaos run`` the first
activity opens the target named by the experiment's configuration (a kept platform: ``inferbox
up``, or a Kind/existing cluster) and the run closes it at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.chaos.prober import Prober
from inferbox.contract import Fault, Platform
from inferbox.topology import Model


@dataclass
class Verdict:
    """One promise of an experiment, judged from the measurements."""

    name: str
    value: Any
    bound: Any
    passed: bool
    detail: str = ""


@dataclass
class Session:
    platform: Platform
    folder: Path
    faults: list[Fault] = field(default_factory=list)
    held: list[Model] = field(default_factory=list)  # models whose bounds this run changed
    prober: Prober | None = None
    marks: dict[str, float] = field(default_factory=dict)  # named wall-clock instants
    measured: dict[str, Any] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    stack: ExitStack | None = None

    def mark(self, name: str) -> float:
        self.marks[name] = time.time()
        return self.marks[name]

    def model(self, name: str) -> Model:
        for model in self.platform.topology.models:
            if name in (model.name, f"{model.tenant}/{model.name}"):
                return model
        known = ", ".join(f"{m.tenant}/{m.name}" for m in self.platform.topology.models)
        raise ValueError(f"the platform serves no model {name!r} (models: {known})")

    def kept(self) -> bool:
        return all(v.passed for v in self.verdicts)


_CURRENT: list[Session] = []


@contextlib.contextmanager
def use_platform(platform: Platform, folder: Path) -> Iterator[Session]:
    """The session of a chaos run inside pytest: activities use this platform and write under ``folder``."""
    session = Session(platform, folder)
    folder.mkdir(parents=True, exist_ok=True)
    _CURRENT[:] = [session]
    try:
        yield session
    finally:
        _CURRENT.clear()


def current(configuration: dict[str, Any] | None = None) -> Session:
    """The run's session; under ``chaos run`` the target is opened on first use."""
    if _CURRENT:
        return _CURRENT[0]
    session = _open(configuration or {})
    _CURRENT[:] = [session]
    return session


def _open(configuration: dict[str, Any]) -> Session:
    """Opens the configured target (kept platforms only: a chaos run never stands one up)."""
    from inferbox.manifests import DEFAULT_MANIFEST_DIR
    from inferbox.profile import DEFAULT_PROFILE, load_profile
    from inferbox.targets import TargetOptions, target_factory

    name = str(configuration.get("inferbox_target") or os.environ.get("INFERBOX_PLATFORM", "embedded"))
    manifests = Path(str(configuration.get("inferbox_manifests") or DEFAULT_MANIFEST_DIR))
    profile = Path(str(configuration.get("inferbox_profile") or DEFAULT_PROFILE))
    folder = Path(str(configuration.get("inferbox_output") or "chaos-output")).resolve()
    options = TargetOptions(manifests.resolve(), load_profile(profile), folder, keep=True)
    stack = ExitStack()
    platform = stack.enter_context(target_factory(name)(options))
    session = Session(platform, folder, stack=stack)
    folder.mkdir(parents=True, exist_ok=True)
    atexit.register(close)
    return session


def close() -> None:
    """Ends a ``chaos run`` session: anything still injected is rolled back, the target closed."""
    if not _CURRENT:
        return
    session = _CURRENT.pop()
    for fault in session.faults:
        with contextlib.suppress(Exception):
            session.platform.heal(fault)
    if session.stack is not None:
        session.stack.close()
