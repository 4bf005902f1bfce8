"""How much a figure may move between runs of the same platform before ``report diff`` flags it,
and which way is worse.

Rules come from a YAML file (``tolerances.yaml`` beside this module by default, or
``--tolerances FILE``): the first rule whose ``match`` (a glob on the figure's dotted name, e.g.
``cold_start_s.median``) fits applies. A change is flagged when it exceeds
``max(absolute, relative * |old|)`` and, when repeated runs are given, the spread seen between them.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from inferbox.errors import InferboxError

DEFAULT_TOLERANCES = Path(__file__).with_name("tolerances.yaml")
DIRECTIONS = ("higher", "lower", "none")


@dataclass(frozen=True)
class Tolerance:
    match: str
    worse: str = "none"  # which way is a regression: higher, lower, or none (the figure only informs)
    relative: float = 0.0
    absolute: float = 0.0

    def allowed(self, old: float) -> float:
        return max(self.absolute, self.relative * abs(old))


def _rule(path: Path, index: int, raw: Any) -> Tolerance:
    where = f"{path}: figures[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("match"), str):
        raise InferboxError(
            f"{where} needs a 'match' glob", "e.g. {match: 'cold_start_s.*', worse: higher, relative: 0.5}"
        )
    unknown = set(raw) - {"match", "worse", "relative", "absolute", "why"}
    if unknown:
        raise InferboxError(f"{where} has unknown keys {sorted(unknown)}", "use match, worse, relative, absolute, why")
    worse = raw.get("worse", "none")
    if worse not in DIRECTIONS:
        raise InferboxError(f"{where}: worse must be one of {', '.join(DIRECTIONS)}, not {worse!r}", "")
    try:
        relative, absolute = float(raw.get("relative", 0.0)), float(raw.get("absolute", 0.0))
    except (TypeError, ValueError):
        raise InferboxError(f"{where}: relative and absolute must be numbers", "") from None
    if relative < 0 or absolute < 0:
        raise InferboxError(f"{where}: relative and absolute must not be negative", "")
    return Tolerance(raw["match"], worse, relative, absolute)


@cache
def load_tolerances(path: Path = DEFAULT_TOLERANCES) -> tuple[Tolerance, ...]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InferboxError(f"tolerances file {path} does not exist", "pass an existing file to --tolerances") from None
    rules = (data or {}).get("figures") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise InferboxError(f"{path} has no 'figures' list", "see inferbox/report/tolerances.yaml for the format")
    return tuple(_rule(path, i, raw) for i, raw in enumerate(rules))


def tolerance_for(name: str, rules: tuple[Tolerance, ...]) -> Tolerance:
    for rule in rules:
        if fnmatch.fnmatchcase(name, rule.match):
            return rule
    return Tolerance("*")
