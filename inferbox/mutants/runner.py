"""Running the conformance checks against every mutant.

First the baseline: every test a mutant names must pass on the unmutated platform (run here, or
read from a conformance run's report of the same manifests and profile). Then each mutant runs its
named tests only, in its own pytest process; it is killed when every one of them fails (an error in
setup or a skip does not count).

Where a mutant runs (the verdict is the same either way; only the time differs): ``jobs`` workers
take mutants from one queue, the longest first (by the last run's times; without them, a rule of
thumb: ``_longest_first``). On the embedded target a mutant whose changes only a part of the
platform that restarts on its own reads (see ``inferbox.embedded.reconfigure``: today the gateway's
routes and policies and the knobs it reads, or nothing the platform reads at all, such as a
dashboard) runs on its worker's *shared* kept platform:
before its tests the platform takes the mutated manifests in place and restarts that part only.
Every other mutant gets a *private* platform of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferbox.errors import InferboxError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.mutants.model import Mutant, mutate
from inferbox.profile import DEFAULT_PROFILE
from inferbox.report.model import REPORTS_ROOT, new_run_folder, point_latest, utc_now

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# Mutants of these files wait on the platform's clocks (scale to zero, cold starts): started first.
LONG_RUNNING = ("autoscaling.yaml",)
PYTEST_LIMIT_S = 900.0  # one pytest run of a mutant is stopped past this
WARM_SETTLE_S = 90.0  # a model of the shared platform starting a replica from zero


@dataclass
class MutantResult:
    name: str
    breaks: str
    killed: bool
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> outcome
    duration_s: float = 0.0
    problem: str = ""
    platform: str = "private"  # "private", or "shared (<parts restarted>)"


def _run_pytest(
    test_ids: list[str],
    manifests: Path,
    report_dir: Path,
    knobs: dict[str, Any],
    platform: str,
    keep_state_dir: Path | None = None,
) -> dict[str, str]:
    env = {**os.environ, "INFERBOX_KNOBS": json.dumps(knobs) if knobs else ""}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *test_ids,
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-p",
        "no:randomly",
        # Hypothesis's pytest plugin takes a second to import and only reports; the checks that use
        # Hypothesis run the same without it. A mutant's run is mostly such start-up costs.
        "-p",
        "no:hypothesispytest",
        "--inferbox-platform",
        platform,
        "--inferbox-manifests",
        str(manifests),
        "--inferbox-report-dir",
        str(report_dir),
    ]
    if keep_state_dir is not None:
        cmd.append("--inferbox-keep-platform")
        env["INFERBOX_STATE_DIR"] = str(keep_state_dir)
    with open(report_dir / "pytest.log", "w") as log:
        try:
            subprocess.run(
                cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=PYTEST_LIMIT_S
            )
        except subprocess.TimeoutExpired:
            log.write(f"\ninferbox: stopped after {PYTEST_LIMIT_S:.0f}s\n")
    report = report_dir / "report.json"
    if not report.exists():
        return {}
    return {t["id"]: t["outcome"] for t in json.loads(report.read_text())["tests"]}


def run_baseline(mutants: list[Mutant], folder: Path, manifests: Path, platform: str) -> dict[str, str]:
    ids = sorted({test for m in mutants for test in m.kills})
    target = folder / "baseline"
    target.mkdir(parents=True, exist_ok=True)
    outcomes = _run_pytest(ids, manifests, target, {}, platform)
    return {test: outcomes.get(test, "not run") for test in ids}


def baseline_from_report(mutants: list[Mutant], report: Path, manifests: Path, platform: str) -> dict[str, str]:
    """The baseline as a conformance run of the same manifests, profile and target recorded it
    (``make test`` runs the conformance suite just before the mutants)."""
    try:
        body = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        raise InferboxError(f"cannot read the baseline report {report}: {exc}", "run `make conformance` first") from exc
    mismatches = [
        f"{what} {got!r} (not {want!r})"
        for what, got, want in (
            ("target", body.get("target"), platform),
            ("manifests", str(Path(body.get("manifests", "")).resolve()), str(manifests.resolve())),
            ("profile", str(Path(body.get("profile", "")).resolve()), str(DEFAULT_PROFILE.resolve())),
        )
        if got != want
    ]
    if mismatches:
        raise InferboxError(
            f"the baseline report {report} is of another run: {', '.join(mismatches)}",
            "run the conformance suite of these manifests first, or run without --baseline-report",
        )
    outcomes = {t["id"]: t["outcome"] for t in body.get("tests", [])}
    return {test: outcomes.get(test, "not run") for test in sorted({t for m in mutants for t in m.kills})}


def _verdict(mutant: Mutant, outcomes: dict[str, str], report_dir: Path, started: float, where: str) -> MutantResult:
    per_test = {test: outcomes.get(test, "not run") for test in mutant.kills}
    killed = all(outcome == "failed" for outcome in per_test.values())
    problem = ""
    if not outcomes:
        problem = f"pytest wrote no report; see {report_dir / 'pytest.log'}"
    elif not killed:
        survivors = [t for t, o in per_test.items() if o != "failed"]
        problem = f"{len(survivors)} named test(s) did not fail: " + ", ".join(
            f"{t} ({per_test[t]})" for t in survivors
        )
    duration = round(time.monotonic() - started, 1)
    return MutantResult(mutant.name, mutant.breaks, killed, per_test, duration, problem, where)


def run_mutant(mutant: Mutant, folder: Path, manifests: Path, platform: str) -> MutantResult:
    """The mutant on a private platform of its own."""
    start = time.monotonic()
    target = folder / mutant.name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"inferbox-mutant-{mutant.name}-") as tmp:
        try:
            mutated = mutate(mutant, manifests, Path(tmp) / "manifests")
        except Exception as exc:  # a mutant that cannot be applied is a broken mutant, reported as such
            return MutantResult(mutant.name, mutant.breaks, False, problem=f"cannot apply: {exc}")
        outcomes = _run_pytest(list(mutant.kills), mutated, target, mutant.knobs, platform)
    return _verdict(mutant, outcomes, target, start, "private")


def shares_a_platform(mutant: Mutant, manifests: Path) -> bool:
    """Whether the mutant changes only parts a running embedded platform restarts on its own."""
    from inferbox.embedded.knobs import Knobs, parse_knobs
    from inferbox.embedded.reconfigure import change_between

    with tempfile.TemporaryDirectory(prefix="inferbox-mutant-plan-") as tmp:
        try:
            mutated = load_manifests(mutate(mutant, manifests, Path(tmp) / "manifests"))
            knobs = parse_knobs(json.dumps(mutant.knobs) if mutant.knobs else "")
        except Exception:  # reported when it runs on its own platform
            return False
        return change_between(load_manifests(manifests), mutated, Knobs(), knobs).parts() is not None


class SharedPlatform:
    """One kept embedded platform that mutants take turns on, each reconfiguring it first."""

    def __init__(self, folder: Path, manifests: Path) -> None:
        self.manifests = manifests
        self.state_dir = Path(tempfile.mkdtemp(prefix="inferbox-mutants-shared-"))
        self.folder = folder

    def __enter__(self) -> SharedPlatform:
        from inferbox.embedded.lifecycle import start_daemon

        start_daemon(self.manifests, self.state_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        from inferbox.embedded.lifecycle import stop_daemon

        stop_daemon(self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def run(self, mutant: Mutant) -> MutantResult | None:
        """The mutant's tests on the shared platform; None if the platform cannot take it in place
        (then it needs a platform of its own)."""
        from inferbox.embedded.control import remote

        start = time.monotonic()
        target = self.folder / mutant.name
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"inferbox-mutant-{mutant.name}-") as tmp:
            try:
                mutated = mutate(mutant, self.manifests, Path(tmp) / "manifests")
            except Exception as exc:
                return MutantResult(mutant.name, mutant.breaks, False, problem=f"cannot apply: {exc}")
            control = remote(self.state_dir)
            if control is None:
                return None
            try:
                parts = control.reconfigure(str(mutated), json.dumps(mutant.knobs) if mutant.knobs else "")
            except InferboxError as exc:
                (target / "reconfigured.txt").write_text(f"refused: {exc}\n")
                return None
            (target / "reconfigured.txt").write_text(f"parts restarted: {', '.join(parts) or 'none'}\n")
            self._hold_warm(control, mutated)
            outcomes = _run_pytest(list(mutant.kills), mutated, target, {}, "embedded", keep_state_dir=self.state_dir)
        return _verdict(mutant, outcomes, target, start, f"shared ({', '.join(parts) or 'no restart'})")

    @staticmethod
    def _hold_warm(control: Any, manifests: Path) -> None:
        """Each model at one ready replica before the session, as the conformance suite's earlier
        modules leave them: a session would otherwise begin with cold starts from zero. A check
        that needs the manifests' own bounds restores them itself (every serving check does)."""
        from inferbox.topology import read_topology

        for model in read_topology(load_manifests(manifests)).models:
            control.set_bounds(model.tenant, model.name, 1, 1, WARM_SETTLE_S)


@dataclass
class MutationRun:
    folder: Path
    baseline: dict[str, str]
    results: list[MutantResult]
    started: str
    finished: str
    baseline_source: str = "run"

    @property
    def killed(self) -> int:
        return sum(r.killed for r in self.results)

    @property
    def baseline_ok(self) -> bool:
        return all(outcome == "passed" for outcome in self.baseline.values())

    def write(self) -> Path:
        body = {
            "schema": "inferbox.io/mutation/v1",
            "started": self.started,
            "finished": self.finished,
            "killed": self.killed,
            "total": len(self.results),
            "baseline_ok": self.baseline_ok,
            "baseline_source": self.baseline_source,
            "baseline": self.baseline,
            "mutants": [asdict(r) for r in self.results],
        }
        path = self.folder / "mutation.json"
        path.write_text(json.dumps(body, indent=2))
        return path


Done = Callable[[MutantResult], MutantResult]


def previous_durations(root: Path = REPORTS_ROOT) -> dict[str, float]:
    """Each mutant's time in the last run (to start the longest first); empty without one."""
    try:
        body = json.loads((root / "mutants-latest" / "mutation.json").read_text())
        return {str(m["name"]): float(m.get("duration_s") or 0.0) for m in body.get("mutants", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _longest_first(mutants: list[Mutant], previous: dict[str, float], shareable: set[str]) -> list[Mutant]:
    """By the last run's times when it timed every one of them (a run of a few mutants leaves the
    others unknown); otherwise mutants that wait on the platform's clocks first, then those that
    need a platform of their own (its start and stop), then those with more checks to fail."""
    if all(m.name in previous for m in mutants):
        return sorted(mutants, key=lambda m: -previous[m.name])
    return sorted(mutants, key=lambda m: (m.source not in LONG_RUNNING, m.name in shareable, -len(m.kills)))


class Worker:
    """Runs mutants one after another: those that can share on a kept platform of its own
    (started at its first such mutant, reconfigured for each), the others on private platforms."""

    def __init__(self, folder: Path, manifests: Path, platform: str, done: Done) -> None:
        self.folder, self.manifests, self.platform, self.done = folder, manifests, platform, done
        self.host: SharedPlatform | None = None
        self.host_failed = False

    def run(self, mutant: Mutant, shareable: bool) -> None:
        result = self._shared(mutant) if shareable else None
        self.done(result or run_mutant(mutant, self.folder, self.manifests, self.platform))

    def _shared(self, mutant: Mutant) -> MutantResult | None:
        if self.host_failed:
            return None
        if self.host is None:
            host = SharedPlatform(self.folder, self.manifests)
            try:
                self.host = host.__enter__()
            except InferboxError as exc:
                self.host_failed = True
                (self.folder / f"shared-platform-{threading.get_ident()}.txt").write_text(f"{exc}\n")
                host.__exit__(None, None, None)
                return None
        return self.host.run(mutant)

    def close(self) -> None:
        if self.host is not None:
            self.host.__exit__(None, None, None)
            self.host = None


def _run_mutants(
    mutants: list[Mutant], folder: Path, manifests: Path, platform: str, jobs: int, share: bool, done: Done
) -> None:
    shareable = {m.name for m in mutants if share and platform == "embedded" and shares_a_platform(m, manifests)}
    queue = _longest_first(mutants, previous_durations(), shareable)
    lock = threading.Lock()
    stop = threading.Event()

    def work() -> None:
        worker = Worker(folder, manifests, platform, done)
        try:
            while not stop.is_set():
                with lock:
                    if not queue:
                        return
                    mutant = queue.pop(0)
                worker.run(mutant, mutant.name in shareable)
        finally:
            worker.close()

    threads = [threading.Thread(target=work, name=f"mutants-{i}") for i in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()  # each worker finishes the mutant it runs, then stops its platform
        for thread in threads:
            thread.join()
        raise


def run_all(
    mutants: list[Mutant],
    manifests: Path = DEFAULT_MANIFEST_DIR,
    platform: str = "embedded",
    jobs: int = 1,
    progress: Any = None,
    baseline_report: Path | None = None,
    share: bool = True,
) -> MutationRun:
    mutants = [m for m in mutants if platform in m.targets]  # e.g. Grafana's mutants need a cluster
    folder = new_run_folder("mutants", REPORTS_ROOT)
    started = utc_now()
    if baseline_report is not None:
        baseline = baseline_from_report(mutants, baseline_report, manifests, platform)
        source = str(baseline_report)
    else:
        baseline = run_baseline(mutants, folder, manifests, platform)
        source = "run"
    results: dict[str, MutantResult] = {}
    if all(outcome == "passed" for outcome in baseline.values()):
        lock = threading.Lock()

        def done(result: MutantResult) -> MutantResult:
            with lock:
                results[result.name] = result
            if progress:
                progress(result)
            return result

        _run_mutants(mutants, folder, manifests, platform, jobs, share, done)
    ordered = [results[m.name] for m in mutants if m.name in results]
    run = MutationRun(folder, baseline, ordered, started, utc_now(), source)
    run.write()
    point_latest(folder, "mutants-latest")
    return run
