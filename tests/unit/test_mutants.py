"""Every mutant applies cleanly, stays inside what the embedded target interprets, and names tests
that exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inferbox.cluster import upstream
from inferbox.cluster.validation import check_objects
from inferbox.cluster.versions import load_versions
from inferbox.embedded.gateway_plan import plan_gateway
from inferbox.embedded.subset import check_all_supported
from inferbox.errors import ManifestError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, dump_objects, load_manifests
from inferbox.mutants.model import Mutant, apply_pointer, load_mutants, mutate

MUTANTS = load_mutants()
KUBERNETES_VERSION = "1.32"
# The pinned CRDs where they have been fetched (scripts/upstream-schemas); otherwise custom
# resources are checked against the catalogue only, and tests/cluster/test_kind_validation.py, which
# validates every mutant's objects against the pinned CRDs, is skipped saying so.
PINNED = upstream.find(load_versions(environ={}))
REPO = Path(__file__).resolve().parents[2]


def test_there_are_at_least_ten_mutants() -> None:
    assert len(MUTANTS) >= 10


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_applies_and_changes_the_platform(mutant: Mutant, tmp_path: Path) -> None:
    mutated = load_manifests(mutate(mutant, DEFAULT_MANIFEST_DIR, tmp_path / "m"))
    check_all_supported(mutated)
    plan_gateway(mutated)
    # A mutant is a break a real cluster would accept: it stays valid for the pinned APIs.
    problems = check_objects(((o.source, o.body) for o in mutated), KUBERNETES_VERSION, PINNED)
    assert not problems, "\n".join(problems)
    if mutant.patches:
        changed_objects = dump_objects(mutated) != dump_objects(load_manifests(DEFAULT_MANIFEST_DIR))
        changed_files = _other_files(tmp_path / "m") != _other_files(DEFAULT_MANIFEST_DIR)
        assert changed_objects or changed_files, "the patch changed nothing"


def _other_files(root: Path) -> dict[str, str]:
    """Files under manifests/ that are not Kubernetes objects (dashboards), by relative path."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.json"))}


@pytest.fixture(scope="module")
def collected_ids() -> set[str]:
    done = subprocess.run(
        # Chaos checks are guarded by mutants too (mutants/chaos.yaml).
        [
            sys.executable,
            "-m",
            "pytest",
            "suites",  # where checks live; the suite's own tests would only be collected and deselected
            "-m",
            "conformance or chaos",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_names_existing_conformance_tests(mutant: Mutant, collected_ids: set[str]) -> None:
    missing = [test for test in mutant.kills if test not in collected_ids]
    assert not missing, f"{mutant.name} names tests that do not exist: {missing}"


def test_every_conformance_check_has_a_mutant(collected_ids: set[str]) -> None:
    """Each check (test function) is named by at least one mutant, for at least one of its cases."""
    checks = {test.split("[")[0] for test in collected_ids}
    guarded = {test.split("[")[0] for m in MUTANTS for test in m.kills}
    assert not checks - guarded, f"checks no mutant proves: {sorted(checks - guarded)}"


def test_only_chaos_experiments_wait_for_the_nightly_run(collected_ids: set[str]) -> None:
    """`make test` runs every mutant but the nightly ones: those may only guard chaos experiments,
    so every conformance check is still proven on each run."""
    nightly_kills = {test for m in MUTANTS if m.nightly for test in m.kills}
    assert all(test.startswith("suites/chaos/") for test in nightly_kills), sorted(nightly_kills)
    checks = {test.split("[")[0] for test in collected_ids if not test.startswith("suites/chaos/")}
    guarded = {test.split("[")[0] for m in MUTANTS if not m.nightly for test in m.kills}
    assert not checks - guarded, f"checks proven only nightly: {sorted(checks - guarded)}"


def test_nightly_must_be_a_boolean(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "kind: MutantSet\nmutants:\n- name: m\n  nightly: sometimes\n  knobs: {a: 1}\n  kills: [t]\n"
    )
    with pytest.raises(ManifestError, match="nightly"):
        load_mutants(tmp_path)


def test_json_pointer_operations() -> None:
    doc = {"a": {"b": [1, 2]}}
    apply_pointer(doc, "add", "/a/b/-", 3)
    apply_pointer(doc, "replace", "/a/b/0", 9)
    apply_pointer(doc, "remove", "/a/b/1")
    apply_pointer(doc, "add", "/a/c", "x")
    assert doc == {"a": {"b": [9, 3], "c": "x"}}
    with pytest.raises(KeyError):
        apply_pointer(doc, "remove", "/a/zzz")
