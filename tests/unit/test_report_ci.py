"""docs/ci/github-actions.yml runs what exists: inferbox's real pytest options and commands, and
keeps the folder the run writes its report to."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from inferbox.cli import build_parser
from tests.unit.test_report_pytest_options import _inferbox_options

WORKFLOW = Path(__file__).resolve().parents[2] / "docs" / "ci" / "github-actions.yml"


def _runs() -> list[str]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["conformance"]["steps"]
    return [str(step["run"]) for step in steps if "run" in step]


def test_the_workflow_uses_real_pytest_options_and_keeps_the_report_folder() -> None:
    known = {s for strings, _ in _inferbox_options() for s in strings}
    [suite] = [run for run in _runs() if "pytest -m conformance" in run]
    used = set(re.findall(r"--inferbox-[a-z-]+", suite))
    assert used, "the suite step names its report folder"
    assert used <= known, used - known
    folder = re.search(r"--inferbox-report-dir (\S+)", suite)
    assert folder is not None
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["conformance"]["steps"]
    kept = [s["with"] for s in steps if str(s.get("uses", "")).startswith(("actions/upload-artifact", "mikepenz/"))]
    assert kept[0]["report_paths"] == f"{folder.group(1)}/junit.xml"
    assert kept[1]["path"] == folder.group(1)


def test_the_diff_step_is_a_real_command() -> None:
    [diff] = [run for run in _runs() if "report diff" in run]
    command = re.search(r"inferbox (report diff .*?) >>", diff)
    assert command is not None
    args = command.group(1).replace('"$base"', "old").split()
    parsed = build_parser().parse_args(args)
    assert parsed.format == "markdown"
