"""Fixtures of the chaos suite: each check runs one experiment file with Chaos Toolkit's engine
against the ``platform`` fixture, asserts on its journal and saves the journal in the report.

After every experiment the steady state must hold again; if it does not, the later chaos checks
are failed with that cause instead of running on a broken platform.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferbox.chaos.experiments import EXPERIMENT_DIR, run
from inferbox.chaos.session import Session, use_platform
from inferbox.contract import Capability, Platform
from inferbox.evidence import Evidence
from inferbox.pytest_plugin.core import FOLDER_KEY
from inferbox.report.model import REPORTS_ROOT, new_run_folder

BROKEN = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def chaos_folder(request: pytest.FixtureRequest) -> Path:
    folder = request.config.stash.get(FOLDER_KEY, None) or new_run_folder("chaos", REPORTS_ROOT)
    return Path(folder) / "artifacts" / "chaos"


SETTLE_S = 120.0


def _warm(platform: Platform) -> None:
    """Every model keeps at least one replica (as between the experiments of a run): an experiment
    starts from a warm platform instead of timing the cold starts of models idle since the last."""
    if Capability.AUTOSCALING in platform.capabilities:
        for model in platform.topology.predictive_models:
            platform.set_scale_bounds(model, 1, None, SETTLE_S)


@pytest.fixture(scope="module")
def warm_platform(platform: Platform) -> Iterator[Platform]:
    _warm(platform)
    yield platform
    if Capability.AUTOSCALING in platform.capabilities:
        for model in platform.topology.predictive_models:
            platform.restore_model(model, SETTLE_S)


@pytest.fixture
def experiment(
    warm_platform: Platform, chaos_folder: Path, evidence: Evidence, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], tuple[dict[str, Any], Session]]]:
    """Runs ``suites/chaos/experiments/<name>.json``; returns its journal and the run's session."""
    broken = request.config.stash.get(BROKEN, None)
    if broken:
        pytest.fail(f"not run: an earlier chaos experiment left the platform broken ({broken})")
    sessions: list[tuple[str, dict[str, Any], Session]] = []

    def run_one(name: str) -> tuple[dict[str, Any], Session]:
        folder = chaos_folder / name
        with use_platform(warm_platform, folder) as session:
            try:
                journal = run(EXPERIMENT_DIR / f"{name}.json", session)
            finally:
                _warm(warm_platform)  # the experiment's rollback restored the manifests' bounds
        sessions.append((name, journal, session))
        return journal, session

    yield run_one
    for name, journal, session in sessions:
        after = (journal.get("steady_states") or {}).get("after") or {}
        if journal.get("status") in ("aborted", "interrupted") or after.get("steady_state_met") is False:
            # A broken promise is this check's failure; a platform that does not serve is everyone's.
            probes = [
                p["activity"]["name"]
                for p in after.get("probes", [])
                if not p.get("tolerance_met") and p["activity"]["name"] != "promises-kept"
            ]
            if probes or journal.get("status") in ("aborted", "interrupted"):
                why = ", ".join(probes) or journal.get("status")
                request.config.stash[BROKEN] = f"{name}: the steady state did not come back ({why})"
        judged = session.folder / "judgement.json"
        summary = json.loads(judged.read_text()) if judged.exists() else {}
        evidence.figure(
            "chaos",
            {
                "experiment": name,
                "title": journal.get("experiment", {}).get("title", name),
                "status": journal.get("status"),
                "deviated": journal.get("deviated"),
                "before": (journal.get("steady_states") or {}).get("before", {}).get("steady_state_met"),
                "after": after.get("steady_state_met"),
                "judgement": summary,
                "faults": [
                    {"kind": f.kind, "target": f.target, "started": f.started, "healed": f.healed, "bound_s": f.bound_s}
                    for f in session.faults
                ],
                "journal": str(session.folder / "journal.json"),
            },
        )
        if summary.get("per_second"):
            from inferbox.chaos.plot import timeline_png

            png = timeline_png(summary, session.folder / "timeline.png")
            # Relative to the report folder, where summary.html shows it.
            report_folder = request.config.stash.get(FOLDER_KEY, None)
            evidence.figure("chaos_timeline_png", os.path.relpath(png, report_folder) if report_folder else str(png))
