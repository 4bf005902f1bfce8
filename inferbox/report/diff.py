"""Comparing two run reports: the verdict a version bump needs.

A regression is a test that passed in OLD and does not pass in NEW (failed, error, or newly skipped),
or a test OLD ran that NEW no longer has. Figures (latencies, cold starts, ...) are compared number
by number; a relative change beyond ``threshold`` is listed, but only outcomes decide the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSING = {"passed", "xfailed"}


@dataclass
class FigureChange:
    test: str
    name: str
    old: float
    new: float

    @property
    def relative(self) -> float:
        return (self.new - self.old) / abs(self.old) if self.old else float("inf")


@dataclass
class ReportDiff:
    versions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    regressions: list[tuple[str, str, str]] = field(default_factory=list)  # (test, old, new)
    fixes: list[tuple[str, str, str]] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    figures: list[FigureChange] = field(default_factory=list)
    mutation: tuple[Any, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.regressions and not any(old in PASSING for _, old in self.removed)


def _numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """Flattens a figure (a number or nested mapping of numbers) into dotted names."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, int | float):
        return {prefix: float(value)}
    if isinstance(value, dict):
        found: dict[str, float] = {}
        for key, inner in value.items():
            found.update(_numbers(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {}


def diff_reports(old: dict[str, Any], new: dict[str, Any], threshold: float = 0.10) -> ReportDiff:
    result = ReportDiff()
    for name in sorted(set(old.get("versions", {})) | set(new.get("versions", {}))):
        before, after = old.get("versions", {}).get(name), new.get("versions", {}).get(name)
        if before != after:
            result.versions[name] = (before, after)
    old_tests = {t["id"]: t for t in old["tests"]}
    new_tests = {t["id"]: t for t in new["tests"]}
    for test_id in sorted(old_tests.keys() | new_tests.keys()):
        before, after = old_tests.get(test_id), new_tests.get(test_id)
        if before is None:
            assert after is not None
            result.added.append((test_id, after["outcome"]))
            continue
        if after is None:
            result.removed.append((test_id, before["outcome"]))
            continue
        if before["outcome"] in PASSING and after["outcome"] not in PASSING:
            result.regressions.append((test_id, before["outcome"], after["outcome"]))
        elif before["outcome"] not in PASSING and after["outcome"] in PASSING:
            result.fixes.append((test_id, before["outcome"], after["outcome"]))
        old_figures = _numbers(before.get("figures", {}))
        for name, new_value in _numbers(after.get("figures", {})).items():
            if name in old_figures:
                change = FigureChange(test_id, name, old_figures[name], new_value)
                if abs(change.relative) >= threshold:
                    result.figures.append(change)
    old_mutation, new_mutation = old.get("mutation"), new.get("mutation")
    if old_mutation != new_mutation:
        result.mutation = (old_mutation, new_mutation)
    return result
