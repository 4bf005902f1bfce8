"""Comparing run reports: the verdict a version bump needs.

A test regression is a test that passed in OLD and does not pass in NEW (failed, error, newly
skipped), or that OLD passed and NEW did not run (unless NEW is declared a subset). Figures
(latencies, cold starts, counts...) are compared per test case: a figure is flagged only when its
change exceeds its tolerance (``tolerances.yaml``) and, when repeated runs of a side are given, the
spread seen between them; it is a regression only when it moves the way its rule calls worse.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferbox.report.tolerances import Tolerance, tolerance_for

PASSING = {"passed", "xfailed"}
NOT_RUN = "not run"


@dataclass(frozen=True)
class OutcomeChange:
    test: str
    old: str
    new: str


@dataclass(frozen=True)
class FigureChange:
    test: str  # the full test id, case included
    name: str  # the figure's dotted name
    old: float  # the median over OLD's runs
    new: float
    allowed: float  # the change this figure may make between runs of the same platform
    basis: str  # what ``allowed`` comes from
    verdict: str  # regression, improvement or changed (a figure with no worse direction)

    @property
    def change(self) -> float:
        return self.new - self.old

    @property
    def relative(self) -> float | None:
        """The change as a fraction of OLD; None when OLD is zero (a percentage would be infinite)."""
        return self.change / abs(self.old) if self.old else None


@dataclass
class ReportDiff:
    versions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    regressions: list[OutcomeChange] = field(default_factory=list)
    fixes: list[OutcomeChange] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)  # in OLD only: (test, OLD's outcome)
    figures: list[FigureChange] = field(default_factory=list)
    compared_figures: int = 0
    mutation: tuple[Any, Any] | None = None
    runs: tuple[int, int] = (1, 1)

    @property
    def figure_regressions(self) -> list[FigureChange]:
        return [f for f in self.figures if f.verdict == "regression"]

    @property
    def ok(self) -> bool:
        """No test regression and no figure regression: the exit code of ``report diff`` is 0."""
        return not self.regressions and not self.figure_regressions


def numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """Flattens a figure (a number or nested mapping of numbers) into dotted names."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, int | float):
        return {prefix: float(value)}
    if isinstance(value, dict):
        found: dict[str, float] = {}
        for key, inner in value.items():
            found.update(numbers(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {}


def _figures(reports: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """(test, figure) -> its values, one per run that recorded it."""
    found: dict[tuple[str, str], list[float]] = {}
    for report in reports:
        for test in report["tests"]:
            for name, value in numbers(test.get("figures") or {}).items():
                found.setdefault((test["id"], name), []).append(value)
    return found


def _spread(values: list[float]) -> float | None:
    return max(values) - min(values) if len(values) >= 2 else None


def compare_figure(test: str, name: str, old: list[float], new: list[float], rule: Tolerance) -> FigureChange | None:
    """The change of one figure when it exceeds what runs of the same platform show; else None."""
    before, after = float(statistics.median(old)), float(statistics.median(new))
    allowed, basis = rule.allowed(before), f"tolerance {rule.match}"
    # Repeated runs that spread wider than the tolerance show this machine is noisier than the rule
    # assumes: the change must then exceed that spread too. (Two or three runs underestimate the
    # noise, so they widen the tolerance but never narrow it.)
    spreads = [s for s in (_spread(old), _spread(new)) if s is not None]
    if spreads and max(spreads) > allowed:
        allowed, basis = max(spreads), f"spread of {len(old)}+{len(new)} runs"
    change = after - before
    if abs(change) <= allowed or change == 0:
        return None
    if rule.worse == "none":
        verdict = "changed"
    else:
        worse = change > 0 if rule.worse == "higher" else change < 0
        verdict = "regression" if worse else "improvement"
    return FigureChange(test, name, before, after, allowed, basis, verdict)


def _outcomes(reports: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each test's outcome; over repeated runs of one side, a test passes only if it passed every time."""
    outcomes: dict[str, str] = {}
    for report in reports:
        for test in report["tests"]:
            seen = outcomes.get(test["id"])
            if seen is None or (seen in PASSING and test["outcome"] not in PASSING):
                outcomes[test["id"]] = test["outcome"]
    return outcomes


def diff_reports(
    old: dict[str, Any] | Sequence[dict[str, Any]],
    new: dict[str, Any] | Sequence[dict[str, Any]],
    rules: tuple[Tolerance, ...] = (),
    subset: bool = False,
) -> ReportDiff:
    """OLD and NEW are one report each, or several runs of the same platform (their spread is the noise)."""
    olds = [old] if isinstance(old, dict) else list(old)
    news = [new] if isinstance(new, dict) else list(new)
    result = ReportDiff(runs=(len(olds), len(news)))
    old_versions, new_versions = olds[0].get("versions") or {}, news[0].get("versions") or {}
    for name in sorted(set(old_versions) | set(new_versions)):
        before, after = old_versions.get(name), new_versions.get(name)
        if before != after:
            result.versions[name] = (before, after)
    old_tests, new_tests = _outcomes(olds), _outcomes(news)
    for test_id in sorted(old_tests.keys() | new_tests.keys()):
        before, after = old_tests.get(test_id), new_tests.get(test_id)
        if before is None:
            result.added.append((test_id, str(after)))
        elif after is None:
            result.removed.append((test_id, before))
            if before in PASSING and not subset:
                result.regressions.append(OutcomeChange(test_id, before, NOT_RUN))
        elif before in PASSING and after not in PASSING:
            result.regressions.append(OutcomeChange(test_id, before, after))
        elif before not in PASSING and after in PASSING:
            result.fixes.append(OutcomeChange(test_id, before, after))
    old_figures, new_figures = _figures(olds), _figures(news)
    for key in sorted(old_figures.keys() & new_figures.keys()):
        result.compared_figures += 1
        change = compare_figure(*key, old_figures[key], new_figures[key], tolerance_for(key[1], rules))
        if change is not None:
            result.figures.append(change)
    old_mutation, new_mutation = olds[0].get("mutation"), news[0].get("mutation")
    if old_mutation != new_mutation:
        result.mutation = (old_mutation, new_mutation)
    return result
