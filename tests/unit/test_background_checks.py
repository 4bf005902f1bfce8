"""Background checks (suites/_background.py): moved to the end, started once the other checks of their
folder have run, run beside the rest of the session, and each reported in its own turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import json, threading, time
import pytest
from suites._background import (
    background_checks, plan_background, relay_background_outcome, stop_background,
)

EVENTS = []
LOCK = threading.Lock()


def pytest_configure(config):
    config.addinivalue_line("markers", "background: runs beside the others")


@pytest.fixture(scope="session")
def log():
    def add(what):
        with LOCK:
            EVENTS.append([what, threading.current_thread().name])
    return add


@pytest.fixture(scope="session")
def beside():
    return threading.Event()  # set by a background check while another folder's check waits for it


@pytest.fixture
def narrow():
    return "function-scoped"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    plan_background(config, items)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    return relay_background_outcome(pyfuncitem)


def pytest_sessionfinish(session):
    stop_background(session.config)
    with open("events.json", "w") as out:
        json.dump(EVENTS, out)
"""

WAITING = """
import pytest

pytestmark = pytest.mark.background


@pytest.mark.parametrize("case", ["passes", "fails"])
def test_waits_out_a_window(log, beside, case, evidence):
    log(f"background {case}")
    beside.set()
    evidence.figure("case", case)
    assert case == "passes", "the window never closed"


def test_needs_a_narrow_fixture(log, narrow):
    log("narrow")
"""

NEIGHBOUR = """
def test_first_neighbour(log):
    log("neighbour 1")


def test_last_neighbour(log):
    log("neighbour 2")
"""

OTHER = """
def test_runs_while_the_background_does(log, beside):
    log("other")
    assert beside.wait(30), "the background checks had not started"
"""

EVIDENCE = """
import pytest
from inferbox.evidence import Evidence


@pytest.fixture
def evidence(request):
    return Evidence(request.node)
"""


def _session(tmp_path: Path, *args: str) -> tuple[str, list[list[str]], list[tuple[str, str]]]:
    """Runs the little session; returns its output, what ran in which thread (in order), and each
    test's outcome in the order pytest reported them."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST) + textwrap.dedent(EVIDENCE))
    for folder, name, text in (
        ("a_budget", "test_a_neighbours.py", NEIGHBOUR),
        ("a_budget", "test_b_waiting.py", WAITING),
        ("b_other", "test_other.py", OTHER),
    ):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(textwrap.dedent(text))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-v", "-o", "addopts=", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    events = json.loads((tmp_path / "events.json").read_text())
    reported = [
        (line.split(" ")[0], line.split(" ")[1])
        for line in done.stdout.splitlines()
        if "::" in line and line.split(" ")[1:2] in (["PASSED"], ["FAILED"])
    ]
    return done.stdout, events, reported


def test_background_checks_run_beside_the_rest_and_report_last(tmp_path: Path) -> None:
    output, events, reported = _session(tmp_path)

    assert [test for test, _ in reported] == [
        "a_budget/test_a_neighbours.py::test_first_neighbour",
        "a_budget/test_a_neighbours.py::test_last_neighbour",
        "a_budget/test_b_waiting.py::test_needs_a_narrow_fixture",
        "b_other/test_other.py::test_runs_while_the_background_does",
        "a_budget/test_b_waiting.py::test_waits_out_a_window[passes]",
        "a_budget/test_b_waiting.py::test_waits_out_a_window[fails]",
    ], output
    outcomes = dict(reported)
    assert outcomes["a_budget/test_b_waiting.py::test_waits_out_a_window[passes]"] == "PASSED"
    assert outcomes["a_budget/test_b_waiting.py::test_waits_out_a_window[fails]"] == "FAILED"
    assert outcomes["b_other/test_other.py::test_runs_while_the_background_does"] == "PASSED", output
    assert "the window never closed" in output  # the failure's own message, in its own turn
    threads = {what: thread for what, thread in events}
    assert threads["background passes"] == threads["background fails"] == "background"
    assert threads["narrow"] == threads["other"] == "MainThread"  # a narrower fixture: its own turn
    # Started only after the last other check of its folder.
    assert [what for what, _ in events].index("neighbour 2") < [what for what, _ in events].index("background passes")


def test_a_deselected_background_check_never_runs(tmp_path: Path) -> None:
    _, events, reported = _session(tmp_path, "-k", "not waits_out and not runs_while")

    assert [what for what, _ in events] == ["neighbour 1", "neighbour 2", "narrow"]
    assert all(outcome == "PASSED" for _, outcome in reported)


def test_alone_the_background_checks_start_in_their_own_turn(tmp_path: Path) -> None:
    _, events, reported = _session(tmp_path, "-k", "waits_out")

    assert sorted(what for what, _ in events) == ["background fails", "background passes"]
    assert dict(reported) == {
        "a_budget/test_b_waiting.py::test_waits_out_a_window[passes]": "PASSED",
        "a_budget/test_b_waiting.py::test_waits_out_a_window[fails]": "FAILED",
    }
