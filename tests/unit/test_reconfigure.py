"""Which parts of a running embedded platform a mutant's change touches: the gateway alone for its
routes, policies and knobs, the autoscaler alone for autoscaling settings and the activator's knob;
a new platform for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.embedded.knobs import Knobs
from inferbox.embedded.reconfigure import change_between
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.mutants.model import load_mutants, mutate
from inferbox.mutants.runner import shares_a_platform

BASE = load_manifests(DEFAULT_MANIFEST_DIR)
MUTANTS = {m.name: m for m in load_mutants()}


def _changed(name: str, tmp_path: Path) -> frozenset[str] | None:
    mutated = load_manifests(mutate(MUTANTS[name], DEFAULT_MANIFEST_DIR, tmp_path / "m"))
    return change_between(BASE, mutated, Knobs(), Knobs()).parts()


def test_the_same_manifests_restart_nothing() -> None:
    assert change_between(BASE, BASE, Knobs(), Knobs()).parts() == frozenset()


@pytest.mark.parametrize("name", ["audience-not-checked", "extra-unprotected-route", "reference-grant-missing"])
def test_gateway_objects_restart_the_gateway_only(name: str, tmp_path: Path) -> None:
    assert _changed(name, tmp_path) == frozenset({"gateway"})


@pytest.mark.parametrize("name", ["min-replicas-one", "max-replicas-one", "grace-period-beyond-deadline"])
def test_autoscaling_settings_change_the_autoscaler_only(name: str, tmp_path: Path) -> None:
    assert _changed(name, tmp_path) == frozenset({"autoscaler"})


@pytest.mark.parametrize(
    "name",
    [
        "model-serves-wrong-artifact",  # the same InferenceService, another container: new replicas
        "permissive-mtls",
        "jwt-server-issues-anonymously",
        "gateway-metrics-port-disabled",
    ],
)
def test_anything_else_needs_a_new_platform(name: str, tmp_path: Path) -> None:
    assert _changed(name, tmp_path) is None


def test_knobs_restart_the_part_that_reads_them_and_others_need_a_new_platform() -> None:
    assert change_between(BASE, BASE, Knobs(), Knobs(jwt_clock_skew_s=1)).parts() == frozenset({"gateway"})
    assert change_between(BASE, BASE, Knobs(), Knobs(activator_drops_held_requests=True)).parts() == frozenset(
        {"autoscaler"}
    )
    trust = change_between(BASE, BASE, Knobs(), Knobs(sidecar_trust_any_ca=True))
    assert trust.parts() is None
    assert trust.unowned() == ["knob sidecar_trust_any_ca"]


def test_a_dashboard_edit_shares_a_platform_without_restarting_anything(tmp_path: Path) -> None:
    assert _changed("dashboard-panel-on-misspelled-metric", tmp_path) == frozenset()
    assert shares_a_platform(MUTANTS["dashboard-panel-on-misspelled-metric"], DEFAULT_MANIFEST_DIR)
    assert not shares_a_platform(MUTANTS["sidecar-trusts-any-ca"], DEFAULT_MANIFEST_DIR)


def test_the_baseline_comes_from_a_conformance_report_of_the_same_run_only(tmp_path: Path) -> None:
    import json

    from inferbox.errors import InferboxError
    from inferbox.mutants.runner import baseline_from_report
    from inferbox.profile import DEFAULT_PROFILE

    mutant = MUTANTS["audience-not-checked"]
    report = tmp_path / "report.json"
    body = {
        "target": "embedded",
        "manifests": str(DEFAULT_MANIFEST_DIR),
        "profile": str(DEFAULT_PROFILE),
        "tests": [{"id": mutant.kills[0], "outcome": "passed"}],
    }
    report.write_text(json.dumps(body))
    baseline = baseline_from_report([mutant], report, DEFAULT_MANIFEST_DIR, "embedded")
    assert baseline[mutant.kills[0]] == "passed"
    assert all(baseline[t] == "not run" for t in mutant.kills[1:])  # a test the run missed fails the baseline
    report.write_text(json.dumps({**body, "manifests": str(tmp_path)}))
    with pytest.raises(InferboxError, match="is of another run: manifests"):
        baseline_from_report([mutant], report, DEFAULT_MANIFEST_DIR, "embedded")
