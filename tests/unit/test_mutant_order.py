"""The order mutants are handed to workers: longest first, so the run does not end on a long one."""

from __future__ import annotations

from inferbox.mutants.model import Mutant
from inferbox.mutants.runner import _longest_first


def _mutant(name: str, source: str, kills: int) -> Mutant:
    return Mutant(name, "breaks", (), tuple(f"t{i}" for i in range(kills)), source=source)


MUTANTS = [
    _mutant("shared-one-check", "security.yaml", 1),
    _mutant("private-one-check", "mesh.yaml", 1),
    _mutant("shared-three-checks", "security.yaml", 3),
    _mutant("clock", "autoscaling.yaml", 1),
]
SHAREABLE = {"shared-one-check", "shared-three-checks"}


def names(mutants: list[Mutant]) -> list[str]:
    return [m.name for m in mutants]


def test_the_last_runs_times_order_them_when_it_timed_every_one() -> None:
    times = {"shared-one-check": 40.0, "private-one-check": 5.0, "shared-three-checks": 20.0, "clock": 10.0}
    assert names(_longest_first(MUTANTS, times, SHAREABLE)) == [
        "shared-one-check",
        "shared-three-checks",
        "clock",
        "private-one-check",
    ]


def test_without_a_time_for_each_clocks_then_own_platforms_then_more_checks() -> None:
    partial = {"shared-one-check": 40.0}  # a run of one mutant says nothing of the others
    expected = ["clock", "private-one-check", "shared-three-checks", "shared-one-check"]
    assert names(_longest_first(MUTANTS, partial, SHAREABLE)) == expected
    assert names(_longest_first(MUTANTS, {}, SHAREABLE)) == expected
