"""Source x destination matrices for the isolation checks: rendering and differences.

A cell holds a short verdict; tables print sources as rows and destinations as columns, the way
Cyclonus prints its truth tables, so expected and observed can be read side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Cell:
    source: str
    destination: str
    expected: str
    observed: str
    detail: str = ""

    @property
    def differs(self) -> bool:
        return self.expected != self.observed


def render(cells: Iterable[Cell], which: str, title: str) -> str:
    """A text table of the ``which`` ("expected" or "observed") verdicts."""
    cells = list(cells)
    sources = list(dict.fromkeys(c.source for c in cells))
    destinations = list(dict.fromkeys(c.destination for c in cells))
    by_key = {(c.source, c.destination): getattr(c, which) for c in cells}
    width = max([len(d) for d in destinations] + [10])
    first = max([len(s) for s in sources] + [len(title)])
    lines = [title.ljust(first) + " | " + " | ".join(d.ljust(width) for d in destinations)]
    lines.append("-" * len(lines[0]))
    for source in sources:
        row = [str(by_key.get((source, d), "")).ljust(width) for d in destinations]
        lines.append(source.ljust(first) + " | " + " | ".join(row))
    return "\n".join(lines)


def report(cells: list[Cell], legend: str) -> str:
    """Both matrices and every difference, for an assertion message and the run's report."""
    diffs = [c for c in cells if c.differs]
    parts = [
        render(cells, "expected", "expected"),
        "",
        render(cells, "observed", "observed"),
        "",
        legend,
    ]
    if diffs:
        parts += ["", f"{len(diffs)} difference(s):"]
        parts += [
            f"  {c.source} -> {c.destination}: expected {c.expected}, observed {c.observed} ({c.detail})" for c in diffs
        ]
    return "\n".join(parts)


def as_json(cells: list[Cell]) -> list[dict[str, object]]:
    return [{**asdict(c), "differs": c.differs} for c in cells]
