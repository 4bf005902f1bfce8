"""Chaos experiment files are checked before anything is injected: the file and the field are named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from inferbox.chaos.experiments import EXPERIMENT_DIR, ExperimentError, check_experiment, load
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.topology import Topology, read_topology


@pytest.fixture(scope="module")
def topology() -> Topology:
    return read_topology(load_manifests(DEFAULT_MANIFEST_DIR))


def _experiment(name: str = "1-replica-loss") -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXPERIMENT_DIR / f"{name}.json").read_text())
    return body


@pytest.mark.parametrize("path", sorted(EXPERIMENT_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_experiment_is_valid(path: Path, topology: Topology) -> None:
    experiment = load(path, topology)
    assert experiment["rollbacks"], "every experiment rolls back what it did"
    names = [a["provider"]["func"] for a in experiment["method"]]
    assert "judge" in names, "every experiment judges its promises"
    assert "start_prober" in names, "every experiment runs under load"


def test_nine_experiments_are_shipped() -> None:
    assert len(list(EXPERIMENT_DIR.glob("*.json"))) == 9


def test_an_unknown_action_is_refused_naming_file_and_field(topology: Topology) -> None:
    experiment = _experiment()
    experiment["method"][2]["provider"]["func"] = "kill_everything"
    with pytest.raises(ExperimentError) as caught:
        check_experiment(Path("x.json"), experiment, topology)
    assert "x.json: method[2].provider.func: unknown action 'kill_everything'" in caught.value.problem
    assert "kill_replica" in caught.value.fix


def test_a_missing_model_is_refused(topology: Topology) -> None:
    experiment = _experiment()
    experiment["method"][0]["provider"]["arguments"]["model"] = "tenant-z/nothing"
    with pytest.raises(ExperimentError, match=r"method\[0\]\.provider\.arguments\.model: the platform serves no model"):
        check_experiment(Path("x.json"), experiment, topology)


def test_a_tolerance_outside_zero_one_is_refused(topology: Topology) -> None:
    experiment = _experiment()
    experiment["steady-state-hypothesis"]["probes"][0]["tolerance"] = 1.5
    with pytest.raises(ExperimentError, match=r"steady-state-hypothesis\.probes\[0\]\.tolerance is 1\.5, outside 0-1"):
        check_experiment(Path("x.json"), experiment, topology)
    ratio = _experiment()
    ratio["method"][1]["provider"]["arguments"]["success_ratio"] = -0.1
    with pytest.raises(ExperimentError, match=r"success_ratio is -0\.1, outside 0-1"):
        check_experiment(Path("x.json"), ratio, topology)


def test_a_foreign_module_is_refused(topology: Topology) -> None:
    experiment = copy.deepcopy(_experiment())
    experiment["method"][0]["provider"]["module"] = "os"
    with pytest.raises(ExperimentError, match="is not the inferbox extension"):
        check_experiment(Path("x.json"), experiment, topology)


def test_an_unknown_tenant_is_refused(topology: Topology) -> None:
    experiment = _experiment("7-partition")
    for activity in experiment["method"]:
        if "tenant" in (activity["provider"].get("arguments") or {}):
            activity["provider"]["arguments"]["tenant"] = "tenant-z"
    with pytest.raises(ExperimentError, match="the platform has no tenant 'tenant-z'"):
        check_experiment(Path("x.json"), experiment, topology)


def test_a_file_that_is_not_json_is_named(tmp_path: Path, topology: Topology) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ExperimentError, match=r"broken\.json: not valid JSON"):
        load(broken, topology)
