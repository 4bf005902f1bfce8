"""A run writes report.json (versioned), junit.xml and summary.html, with outcomes, skip reasons and figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from inferbox.report.model import load_report

REPO = Path(__file__).resolve().parents[2]
SAMPLE = """
import pytest

def test_passes(evidence):
    evidence.figure("latency_ms", {"p50": 1.5})

def test_skips():
    pytest.skip("target embedded lacks capability: example")

def test_fails():
    assert 1 == 2
"""


def test_a_run_writes_its_report(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    folder = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_sample.py"),
            "-p",
            "no:cacheprovider",
            "--report-dir",
            str(folder),
            "--rootdir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert f"report: {folder}" in done.stdout
    report = load_report(folder)
    outcomes = {t["id"].split("::")[1]: t for t in report["tests"]}
    assert outcomes["test_passes"]["outcome"] == "passed"
    assert outcomes["test_passes"]["figures"] == {"latency_ms": {"p50": 1.5}}
    assert outcomes["test_skips"]["skip_reason"] == "target embedded lacks capability: example"
    assert outcomes["test_fails"]["outcome"] == "failed"
    assert report["summary"] == {"passed": 1, "skipped": 1, "failed": 1}
    assert (folder / "junit.xml").exists()
    assert "test_fails" in (folder / "summary.html").read_text()
    assert json.loads((folder / "report.json").read_text())["schema"] == "inferbox.io/report/v1"
