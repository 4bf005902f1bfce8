"""A run writes report.json (versioned), junit.xml, summary.html and summary.md, with outcomes, skip
reasons, failure messages, whole tracebacks and figures; a platform that cannot start is a named error."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET  # parses junit.xml this test's own run wrote
from pathlib import Path

from inferbox.report.failures import describe_failure
from inferbox.report.model import load_report
from inferbox.report.properties import junit_properties

REPO = Path(__file__).resolve().parents[2]
SAMPLE = """
import pytest

class Huge:
    def __repr__(self):
        return "Huge(" + "x" * 20000 + ")"

@pytest.fixture
def platformish():
    return Huge()

def test_passes(evidence):
    evidence.figure("latency_ms", {"p50": 1.5})
    evidence.figure("targets", 5)
    print("said something")

def test_skips():
    pytest.skip("target embedded lacks capability: example")

def first_frame(depth):
    return deeper(depth)

def deeper(depth):
    if depth:
        return deeper(depth - 1)
    return last_frame()

def last_frame():
    assert 1 == 2, "the canary got 3 of 400 requests"

@pytest.mark.conformance
def test_fails(platformish):
    first_frame(60)
"""


def _pytest(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


def test_a_run_writes_its_report(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    folder = tmp_path / "report"
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    import os

    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary)}
    done = _pytest(tmp_path, str(tmp_path / "test_sample.py"), "--inferbox-report-dir", str(folder), env=env)
    assert done.returncode == 1, done.stdout
    assert f"report: {folder}" in done.stdout
    report = load_report(folder)
    outcomes = {t["id"].split("::")[1]: t for t in report["tests"]}
    assert outcomes["test_passes"]["outcome"] == "passed"
    assert outcomes["test_passes"]["figures"] == {"latency_ms": {"p50": 1.5}, "targets": 5}
    assert outcomes["test_skips"]["skip_reason"] == "target embedded lacks capability: example"
    assert outcomes["test_fails"]["outcome"] == "failed"
    assert report["summary"] == {"passed": 1, "skipped": 1, "failed": 1}
    assert json.loads((folder / "report.json").read_text())["schema"] == "inferbox.io/report/v1"
    assert "test_fails" in (folder / "summary.html").read_text()
    # The test's captured output is a file of its own, named in the report.
    log = outcomes["test_passes"]["log"]
    assert "said something" in (folder / log).read_text()
    # CI's job summary: the Markdown is appended, the earlier step's text kept.
    markdown = (folder / "summary.md").read_text()
    assert "1 failed" in markdown
    assert "`test_sample.py::test_fails`" in markdown
    assert "the canary got 3 of 400 requests" in markdown
    assert step_summary.read_text() == "earlier step\n" + markdown + "\n"


def test_a_failure_keeps_its_message_on_top_and_its_whole_traceback(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    folder = tmp_path / "report"
    _pytest(tmp_path, str(tmp_path / "test_sample.py"), "--inferbox-report-dir", str(folder))
    [failed] = [t for t in load_report(folder)["tests"] if t["outcome"] == "failed"]
    assert failed["message"] == "AssertionError: the canary got 3 of 400 requests\nassert 1 == 2"
    traceback = failed["traceback"]
    # Whole: from the test function down to the frame that failed, 60 frames deep.
    assert traceback.startswith("@pytest.mark.conformance\n    def test_fails(platformish):\n>       first_frame(60)")
    assert "def last_frame():" in traceback
    assert traceback.count(": in deeper") >= 60
    # No dump of the fixture's repr (pytest's function-arguments block) anywhere.
    assert "Huge(xxx" not in traceback
    assert "platformish = " not in traceback


def test_junit_properties_are_values_not_reprs(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    folder = tmp_path / "report"
    _pytest(tmp_path, str(tmp_path / "test_sample.py"), "--inferbox-report-dir", str(folder))
    tree = ET.parse(folder / "junit.xml")  # noqa: S314
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }
    assert properties["test_passes"] == {"figure.latency_ms.p50": "1.5", "figure.targets": "5"}
    assert properties["test_fails"] == {"markers": "conformance"}


def test_properties_flatten_numbers_and_write_the_rest_as_json() -> None:
    pairs = junit_properties(
        [
            ("figure", ("cold_start_s", {"median": 2.5, "n": 10})),
            ("figure", ("canary_interval", [55, 107])),
            ("figure", ("artifact:isolation-matrix.txt", "artifacts/isolation-matrix.txt")),
            ("markers", ["conformance", "security"]),
            ("features", []),
            ("retries", 2),
        ]
    )
    assert pairs == [
        ("figure.cold_start_s.median", "2.5"),
        ("figure.cold_start_s.n", "10"),
        ("figure.canary_interval", "[55, 107]"),
        ("artifact", "artifacts/isolation-matrix.txt"),
        ("markers", "conformance security"),
        ("retries", "2"),
    ]


def test_a_failure_described_from_a_plain_message() -> None:
    assert describe_failure("inferbox: the platform did not start") == ("inferbox: the platform did not start", "")


def test_a_platform_that_cannot_start_is_the_error_of_a_named_test(tmp_path: Path) -> None:
    (tmp_path / "test_uses_platform.py").write_text(
        "def test_one(platform):\n    pass\n\ndef test_two(platform):\n    pass\n"
    )
    folder = tmp_path / "report"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _pytest(
            tmp_path,
            str(tmp_path / "test_uses_platform.py"),
            "--inferbox-report-dir",
            str(folder),
            "--inferbox-gateway-port",
            str(port),
            "--inferbox-network",
            "loopback",
        )
    assert done.returncode == 1, done.stdout + done.stderr  # tests failed, not pytest's internal error (3)
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")
    [case] = list(suite.iter("testcase"))
    assert case.get("name") == "inferbox-platform-setup[embedded]"
    error = case.find("error")
    assert error is not None
    assert f"port 127.0.0.1:{port} for the gateway is already in use" in (error.get("message") or "")
    [record] = load_report(folder)["tests"]
    assert record["outcome"] == "error"
    assert "did not start" in record["message"]
    assert "inferbox-platform-setup[embedded]" in (folder / "summary.md").read_text()
