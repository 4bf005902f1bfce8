"""The flake report: the conformance suite run again and again against one platform, optionally
with a CPU hog pinned to one core, and each test's pass rate with the failures' messages.

``python -m inferbox.flakes --runs 10 --noise --output docs/flakes.md`` (``make flakes RUNS=10
NOISE=1``) starts one kept embedded platform, runs ``pytest -m conformance --inferbox-keep-platform`` RUNS
times against it (a report folder per run), stops the platform and the hog by PID, and prints (and
writes, with ``--output``) the table. A suite that never cries wolf has every test at RUNS/RUNS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from inferbox.embedded.lifecycle import running_state, start_daemon, stop_daemon
from inferbox.errors import InferboxError
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.report.model import REPORTS_ROOT, new_run_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_LIMIT_S = 1200.0  # one conformance run is stopped (its process group) past this
HOG_CORE = 0
console = Console()


@dataclass
class TestRate:
    runs: int = 0
    passed: int = 0
    messages: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    number: int
    seconds: float
    load_before: str
    load_after: str
    outcomes: dict[str, str]
    messages: dict[str, str]
    exit_code: int


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def first_error(message: str) -> str:
    """The assertion of a pytest failure: its first ``E`` line(s), else its last line."""
    lines = [line[1:].strip() for line in message.splitlines() if line.startswith("E ")]
    text = " ".join(lines[:2]) if lines else (message.strip().splitlines() or [""])[-1]
    return text[:400]


@contextmanager
def cpu_hog(enabled: bool, limit_s: float) -> Iterator[int | None]:
    """A busy loop pinned to one core for at most ``limit_s`` seconds, stopped by its PID."""
    if not enabled:
        yield None
        return
    code = f"import time\nend = time.monotonic() + {limit_s:.0f}\nwhile time.monotonic() < end:\n    pass\n"
    hog = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        os.sched_setaffinity(hog.pid, {HOG_CORE})
        yield hog.pid
    finally:
        hog.terminate()
        try:
            hog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            hog.kill()
            hog.wait()


def run_once(number: int, folder: Path, state_dir: Path, extra: list[str]) -> RunSummary:
    report_dir = folder / f"run-{number:02d}"
    report_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "conformance",
        "--inferbox-keep-platform",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "--inferbox-report-dir",
        str(report_dir),
        *extra,
    ]
    env = {**os.environ, "INFERBOX_STATE_DIR": str(state_dir)}
    load_before = load_average()
    began = time.monotonic()
    with open(report_dir / "pytest.log", "w") as log:
        process = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=RUN_LIMIT_S)
        except subprocess.TimeoutExpired:
            code = _stop_run(process)
        except BaseException:  # interrupted: the run stops too, then the platform
            _stop_run(process)
            raise
    seconds = time.monotonic() - began
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    report = report_dir / "report.json"
    if report.exists():
        for test in json.loads(report.read_text())["tests"]:
            outcomes[test["id"]] = test["outcome"]
            if test["outcome"] in ("failed", "error"):
                messages[test["id"]] = first_error(test.get("message", ""))
    return RunSummary(number, seconds, load_before, load_average(), outcomes, messages, code)


def _stop_run(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGTERM)  # its own process group: pytest and what it started
    return process.wait()


def rates(runs: list[RunSummary]) -> dict[str, TestRate]:
    """Per test: in how many runs it ran (passed, failed or errored), passed, and why not."""
    table: dict[str, TestRate] = {}
    for run in runs:
        for test, outcome in run.outcomes.items():
            if outcome == "skipped":
                continue
            rate = table.setdefault(test, TestRate())
            rate.runs += 1
            if outcome == "passed":
                rate.passed += 1
            else:
                rate.messages.append(f"run {run.number}: {run.messages.get(test) or outcome}")
    return table


def markdown(runs: list[RunSummary], table: dict[str, TestRate], command: str, noise: bool) -> str:
    flaky = {t: r for t, r in table.items() if r.passed < r.runs}
    steady = len(table) - len(flaky)
    lines = [
        "# Flake report",
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')}: {len(runs)} runs of `pytest -m conformance` against",
        "one kept embedded platform"
        + (f", with a CPU hog pinned to core {HOG_CORE} throughout." if noise else ", without added noise."),
        "The machine's load average (1, 5, 15 min) is given before and after each run; other work ran beside it.",
        "",
        "| run | seconds | exit | load before | load after | failed |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        failed = sum(1 for o in run.outcomes.values() if o in ("failed", "error"))
        lines.append(
            f"| {run.number} | {run.seconds:.0f} | {run.exit_code} | {run.load_before} | {run.load_after} | {failed} |"
        )
    lines += ["", f"**{steady} of {len(table)} tests passed in every run they ran in.**", ""]
    if flaky:
        lines += ["| test | passed | failures |", "|---|---|---|"]
        for test, rate in sorted(flaky.items()):
            why = "<br>".join(m.replace("|", "\\|") for m in rate.messages)
            lines.append(f"| `{test}` | {rate.passed}/{rate.runs} | {why} |")
        lines.append("")
    return "\n".join(lines)


def print_table(table: dict[str, TestRate]) -> None:
    out = Table(title="pass rate per test (only tests that failed at least once)", title_justify="left")
    for column in ("test", "passed", "failures"):
        out.add_column(column)
    for test, rate in sorted(table.items()):
        if rate.passed < rate.runs:
            out.add_row(test, f"{rate.passed}/{rate.runs}", "\n".join(rate.messages))
    steady = sum(1 for r in table.values() if r.passed == r.runs)
    if steady < len(table):
        console.print(out)
    console.print(f"{steady} of {len(table)} tests passed in every run")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a CI timeout, `kill`) and SIGINT (even when a background shell ignored it) stop the
    # current run, the platform and the hog in order, instead of leaving them running.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m inferbox.flakes", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--noise", action="store_true", help=f"a CPU hog pinned to core {HOG_CORE} during the runs")
    parser.add_argument("--output", type=Path, help="also write the report as Markdown to this file")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".inferbox" / "flakes")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    command = f"make flakes RUNS={args.runs}" + (" NOISE=1" if args.noise else "")
    folder = new_run_folder("flakes", REPORTS_ROOT)
    if running_state(args.state_dir):
        raise InferboxError(f"a platform is already running from {args.state_dir}", "stop it first with its daemon")
    console.print(f"starting one kept embedded platform ({args.state_dir})")
    state = start_daemon(DEFAULT_MANIFEST_DIR, args.state_dir)
    console.print(f"platform ready in {state.ready_after_s}s; reports under {folder}")
    runs: list[RunSummary] = []
    try:
        with cpu_hog(args.noise, args.runs * RUN_LIMIT_S) as hog:
            if hog is not None:
                console.print(f"noise: CPU hog PID {hog} pinned to core {HOG_CORE}")
            for number in range(1, args.runs + 1):
                run = run_once(number, folder, args.state_dir, args.pytest_args)
                runs.append(run)
                failed = [t for t, o in run.outcomes.items() if o in ("failed", "error")]
                console.print(
                    f"run {number}/{args.runs}: {run.seconds:.0f}s, {len(run.outcomes)} tests, {len(failed)} failed "
                    f"(load {run.load_before} -> {run.load_after})"
                )
    finally:
        stop_daemon(args.state_dir)
    table = rates(runs)
    print_table(table)
    text = markdown(runs, table, command, args.noise)
    (folder / "flakes.md").write_text(text)
    if args.output:
        args.output.write_text(text)
        console.print(f"written: {args.output}")
    return 0 if all(r.passed == r.runs for r in table.values()) and table else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InferboxError as exc:
        console.print(f"[red]{exc}[/red]")
        sys.exit(2)
