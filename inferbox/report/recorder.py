"""From pytest's per-phase test reports to the run report's records, and the platform's start as a
test of its own.

A platform that cannot start (a busy port, a refused manifest) must not leave CI an empty green
JUnit file: the start is a test named ``inferbox-platform-setup[<target>]`` that runs first; when it
errors, its error carries the cause, the run stops there and pytest exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferbox.report.failures import describe_failure, safe_name
from inferbox.report.model import RunReport, TestRecord
from inferbox.report.properties import junit_properties

SETUP_TEST = "inferbox-platform-setup"
TEST_LOGS = Path("logs") / "tests"


def _start_platform(platform: object) -> None:
    """Stands the platform up (the ``platform`` fixture); the checks that follow reuse it."""


def platform_setup_item(session: pytest.Session, target: str) -> pytest.Item:
    return pytest.Function.from_parent(session, name=f"{SETUP_TEST}[{target}]", callobj=_start_platform)


def add_platform_setup(session: pytest.Session, items: list[pytest.Item], target: str) -> None:
    """Puts the platform-start test first when any selected test uses the platform (not in a
    collection-only listing: it is no check of the platform)."""
    if session.config.option.collectonly:
        return
    if any("platform" in getattr(item, "fixturenames", ()) for item in items):
        items.insert(0, platform_setup_item(session, target))


def is_platform_setup(nodeid: str) -> bool:
    return nodeid.removeprefix("::").startswith(f"{SETUP_TEST}[")


def _outcome(report: pytest.TestReport) -> str:
    outcome: str = report.outcome
    if report.when != "call" and report.failed:
        outcome = "error"
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    return outcome


def _apply_properties(record: TestRecord, user_properties: list[tuple[str, Any]]) -> None:
    for key, value in user_properties:
        if key == "figure":
            record.figures[value[0]] = value[1]
        elif key == "retries":
            record.retries = int(value)
        elif key == "markers":
            record.markers = list(value)
        elif key == "features":
            record.features = list(value)


def _write_log(folder: Path, nodeid: str, sections: list[tuple[str, str]]) -> str | None:
    """The test's captured output (stdout, stderr, logging) in its own file; None when there was none."""
    kept = [(title, text) for title, text in sections if text.strip()]
    if not kept:
        return None
    relative = TEST_LOGS / f"{safe_name(nodeid)}.log"
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"===== {title} =====\n{text.rstrip()}\n\n" for title, text in kept))
    return relative.as_posix()


def record_phase(run: RunReport, report: pytest.TestReport, folder: Path | None) -> None:
    """Adds what one phase (setup, call, teardown) of a test tells to the run report, then leaves the
    report's properties in the form JUnit should print."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        record = TestRecord(id=report.nodeid, outcome=_outcome(report), duration_s=round(report.duration, 4))
        if report.skipped and isinstance(report.longrepr, tuple):
            record.skip_reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            record.message, record.traceback = describe_failure(report.longrepr)
        _apply_properties(record, report.user_properties)
        run.tests.append(record)
    elif report.when == "teardown":
        if report.failed:
            message, traceback = describe_failure(report.longrepr)
            run.tests.append(
                TestRecord(id=report.nodeid, outcome="error", message=f"in teardown: {message}", traceback=traceback)
            )
        log = _write_log(folder, report.nodeid, report.sections) if folder is not None else None
        if log:
            for record in run.tests:
                if record.id == report.nodeid:
                    record.log = log
    report.user_properties = junit_properties(report.user_properties)
