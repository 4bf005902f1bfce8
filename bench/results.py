"""Saved benchmark results: ``bench/results/<bench>.json``, the only source of figures the docs quote.

Each file holds one run of one benchmark: the figures (value, unit, target), the raw details behind
them, the commit measured, the machine and how busy it was, and the date. ``python -m bench`` writes
them; the README's benchmark table is generated from them (``python -m bench --readme``), and a unit
test fails when the README and the saved results differ.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferbox.errors import InferboxError

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
SCHEMA = "inferbox.io/bench-result/v1"
OPS = {"<=": lambda v, b: v <= b, ">=": lambda v, b: v >= b}


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``op``/``bound`` is its target (none: shown for comparison only)."""

    key: str
    label: str
    value: float
    unit: str
    op: str | None = None
    bound: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if (self.op is None) != (self.bound is None) or (self.op is not None and self.op not in OPS):
            raise ValueError(f"figure {self.key}: a target needs both op (one of {sorted(OPS)}) and bound")

    @property
    def passed(self) -> bool | None:
        if self.op is None or self.bound is None:
            return None
        return bool(OPS[self.op](self.value, self.bound))


@dataclass
class Result:
    bench: str
    title: str
    figures: list[Figure]
    details: dict[str, Any] = field(default_factory=dict)
    commit: str = ""
    dirty: bool = False
    date: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["figures"] = [{**asdict(f), "passed": f.passed} for f in self.figures]
        return body

    @staticmethod
    def from_json(body: dict[str, Any]) -> Result:
        if body.get("schema") != SCHEMA:
            raise InferboxError(f"not a saved benchmark result ({SCHEMA})", "re-run the benchmark with python -m bench")
        figures = [Figure(**{k: v for k, v in f.items() if k != "passed"}) for f in body["figures"]]
        return Result(**{**body, "figures": figures})


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def machine_before() -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    busy, total = _cpu_times()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "_busy": busy,
        "_total": total,
    }


def machine_after(machine: dict[str, Any]) -> dict[str, Any]:
    """Adds how busy the machine was during the run: all CPUs, this benchmark's processes included."""
    busy, total = _cpu_times()
    span = total - machine.pop("_total")
    machine["cpu_busy_share_during_run"] = round((busy - machine.pop("_busy")) / span, 3) if span else None
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return machine


@contextmanager
def measuring() -> Iterator[dict[str, Any]]:
    """The machine's description, completed with its busyness when the run ends."""
    machine = machine_before()
    yield machine
    machine_after(machine)


def stamp(result: Result, machine: dict[str, Any]) -> Result:
    result.commit = _git("rev-parse", "HEAD")
    # Saved results themselves do not count: a run rewrites them as it goes.
    result.dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"))
    result.date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result.machine = machine
    return result


def save(result: Result, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.bench}.json"
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return path


def load(bench: str, directory: Path = RESULTS_DIR) -> Result | None:
    path = directory / f"{bench}.json"
    if not path.exists():
        return None
    return Result.from_json(json.loads(path.read_text()))
