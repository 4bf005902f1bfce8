"""Chaos experiment files: checked before anything is injected, run on Chaos Toolkit's engine, and
their journals saved.

An experiment file is refused, naming the file and the field, when an activity names a function
the inferbox extension does not have, an argument names a model or tenant the platform does not
serve, or a ratio (a tolerance or an argument ending in ``ratio``) is outside 0-1; Chaos Toolkit's
own validation follows. Rollbacks always run (also on Ctrl-C or a broken promise), and whatever the
run injected is rolled back once more when it ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

from inferbox.chaos import actions, probes
from inferbox.chaos.session import Session
from inferbox.data import suites_root
from inferbox.errors import InferboxError
from inferbox.topology import Topology

EXPERIMENT_DIR = suites_root() / "chaos" / "experiments"
MODULES = {"inferbox.chaos.actions": actions, "inferbox.chaos.probes": probes}
SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}


class ExperimentError(InferboxError):
    """An experiment file that must not run."""


def _activities(experiment: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for index, probe in enumerate(hypothesis.get("probes") or []):
        found.append((f"steady-state-hypothesis.probes[{index}]", probe))
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            found.append((f"{section}[{index}]", activity))
    return found


def _check_ratio(path: Path, where: str, value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and not 0.0 <= float(value) <= 1.0:
        raise ExperimentError(f"{path}: {where} is {value}, outside 0-1", "a ratio or tolerance is between 0 and 1")


def check_experiment(path: Path, experiment: dict[str, Any], topology: Topology) -> None:
    """Refuses an experiment that must not run, naming the file and the field."""
    if not isinstance(experiment, dict) or not experiment.get("method"):
        raise ExperimentError(f"{path}: no method", "an experiment file needs a method (a list of activities)")
    models = {m.name for m in topology.models} | {f"{m.tenant}/{m.name}" for m in topology.models}
    tenants = {t.name for t in topology.tenants}
    for where, activity in _activities(experiment):
        if not isinstance(activity, dict) or not isinstance(activity.get("provider"), dict):
            raise ExperimentError(f"{path}: {where} has no provider", "give the activity a python provider")
        provider = activity["provider"]
        module = MODULES.get(str(provider.get("module")))
        if provider.get("type") != "python" or module is None:
            raise ExperimentError(
                f"{path}: {where}.provider: module {provider.get('module')!r} is not the inferbox extension",
                f"use one of {', '.join(MODULES)}",
            )
        func = getattr(module, str(provider.get("func")), None)
        if not callable(func) or str(provider.get("func")).startswith("_"):
            public = sorted(
                n for n, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__
            )
            raise ExperimentError(
                f"{path}: {where}.provider.func: unknown {activity.get('type', 'activity')} {provider.get('func')!r} "
                f"in {provider['module']}",
                f"known: {', '.join(n for n in public if not n.startswith('_'))}",
            )
        arguments = provider.get("arguments") or {}
        for name, value in arguments.items():
            here = f"{where}.provider.arguments.{name}"
            if name == "model" and value not in models:
                raise ExperimentError(
                    f"{path}: {here}: the platform serves no model {value!r}", f"models: {', '.join(sorted(models))}"
                )
            if name == "tenant" and value not in tenants:
                raise ExperimentError(
                    f"{path}: {here}: the platform has no tenant {value!r}", f"tenants: {', '.join(sorted(tenants))}"
                )
            if name.endswith("ratio"):
                _check_ratio(path, here, value)
        if "tolerance" in activity:
            _check_ratio(path, f"{where}.tolerance", activity["tolerance"])
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ExperimentError(f"{path}: {exc}", "see Chaos Toolkit's experiment format") from exc


def load(path: Path, topology: Topology) -> dict[str, Any]:
    try:
        experiment: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ExperimentError(f"no experiment file {path}", f"experiments live in {EXPERIMENT_DIR}") from exc
    except json.JSONDecodeError as exc:
        raise ExperimentError(f"{path}: not valid JSON: {exc}", "fix the JSON syntax") from exc
    check_experiment(path, experiment, topology)
    return experiment


def run(path: Path, session: Session) -> dict[str, Any]:
    """Runs one experiment file against the session's platform; returns its journal (also saved as
    ``journal.json`` in the session's folder). Every fault injected is rolled back at the end."""
    experiment = load(path, session.platform.topology)
    journal: dict[str, Any] = {}
    logging.getLogger("chaostoolkit").setLevel(logging.INFO)
    try:
        journal = run_experiment(experiment, settings=json.loads(json.dumps(SETTINGS)))
    finally:
        # Whatever happened (Ctrl-C, an error in the engine): nothing this run injected stays.
        for fault in session.faults:
            with contextlib.suppress(Exception):
                session.platform.heal(fault)
        if session.prober is not None and session.prober.running:
            with contextlib.suppress(Exception):
                session.prober.result()
        while session.held:
            with contextlib.suppress(Exception):
                session.platform.restore_model(session.held.pop(), actions.SETTLE_S)
        (session.folder / "journal.json").write_text(json.dumps(journal, indent=2, default=str))
    return journal
