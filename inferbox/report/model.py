"""The report's data: one record per test, and the run around them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "inferbox.io/report/v1"
REPORTS_ROOT = Path("reports")
OUTCOME_ORDER = ("failed", "error", "xpassed", "passed", "skipped", "xfailed")


def suite_of(test_id: str) -> str:
    """The area a test belongs to: ``suites/security/...`` -> security, ``tests/unit/...`` -> unit;
    the platform's start (a test of the plugin's own) -> platform."""
    path = test_id.split("::", 1)[0]
    if not path:
        return "platform"
    parts = path.split("/")
    if len(parts) > 2 and parts[0] in ("suites", "tests"):
        return parts[1]
    return parts[0].removesuffix(".py")


@dataclass
class TestRecord:
    id: str
    outcome: str  # passed, failed, skipped, error, xfailed, xpassed
    duration_s: float = 0.0
    markers: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    message: str | None = None  # a failure's assertion message (the exception's own text)
    traceback: str | None = None  # the whole traceback, without pytest's dump of the function's arguments
    retries: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    log: str | None = None  # the test's captured output, relative to the report folder


@dataclass
class RunReport:
    target: str
    started: str
    finished: str = ""
    duration_s: float = 0.0
    command: str = ""
    profile: str = ""
    manifests: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] = field(default_factory=dict)
    tests: list[TestRecord] = field(default_factory=list)
    mutation: dict[str, Any] | None = None

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for test in self.tests:
            counts[test.outcome] = counts.get(test.outcome, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["summary"] = self.summary()
        return {"schema": SCHEMA, **body}

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "report.json"
        path.write_text(json.dumps(self.to_json(), indent=2, default=str))
        return path


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_run_folder(target: str, root: Path = REPORTS_ROOT) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = root / f"{stamp}-{target}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = root / f"{stamp}-{target}-{suffix}"
    folder.mkdir(parents=True)
    return folder


def point_latest(folder: Path, name: str = "latest") -> None:
    """reports/latest -> the newest run folder (a relative symlink, replaced atomically)."""
    link = folder.parent / name
    tmp = folder.parent / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.name)
    tmp.replace(link)


def load_report(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "report.json"
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not an inferbox report (schema {data.get('schema')!r})")
    return data
