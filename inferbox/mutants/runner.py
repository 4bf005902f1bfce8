"""Running the conformance checks against every mutant.

First the baseline: every test a mutant names must pass on the unmutated platform. Then each mutant
runs in its own pytest process on its own embedded platform, with only the tests it names; it is
killed when every one of them fails (an error in setup or a skip does not count).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.mutants.model import Mutant, mutate
from inferbox.report.model import REPORTS_ROOT, new_run_folder, point_latest, utc_now

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class MutantResult:
    name: str
    breaks: str
    killed: bool
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> outcome
    duration_s: float = 0.0
    problem: str = ""


def _run_pytest(
    test_ids: list[str], manifests: Path, report_dir: Path, knobs: dict[str, Any], platform: str
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
        "--inferbox-platform",
        platform,
        "--inferbox-manifests",
        str(manifests),
        "--inferbox-report-dir",
        str(report_dir),
    ]
    with open(report_dir / "pytest.log", "w") as log:
        subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
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


def run_mutant(mutant: Mutant, folder: Path, manifests: Path, platform: str) -> MutantResult:
    start = time.monotonic()
    target = folder / mutant.name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"inferbox-mutant-{mutant.name}-") as tmp:
        try:
            mutated = mutate(mutant, manifests, Path(tmp) / "manifests")
        except Exception as exc:  # a mutant that cannot be applied is a broken mutant, reported as such
            return MutantResult(mutant.name, mutant.breaks, False, problem=f"cannot apply: {exc}")
        outcomes = _run_pytest(list(mutant.kills), mutated, target, mutant.knobs, platform)
    per_test = {test: outcomes.get(test, "not run") for test in mutant.kills}
    killed = all(outcome == "failed" for outcome in per_test.values())
    problem = ""
    if not outcomes:
        problem = f"pytest wrote no report; see {target / 'pytest.log'}"
    elif not killed:
        survivors = [t for t, o in per_test.items() if o != "failed"]
        problem = f"{len(survivors)} named test(s) did not fail: " + ", ".join(
            f"{t} ({per_test[t]})" for t in survivors
        )
    return MutantResult(mutant.name, mutant.breaks, killed, per_test, round(time.monotonic() - start, 1), problem)


@dataclass
class MutationRun:
    folder: Path
    baseline: dict[str, str]
    results: list[MutantResult]
    started: str
    finished: str

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
            "baseline": self.baseline,
            "mutants": [asdict(r) for r in self.results],
        }
        path = self.folder / "mutation.json"
        path.write_text(json.dumps(body, indent=2))
        return path


def run_all(
    mutants: list[Mutant],
    manifests: Path = DEFAULT_MANIFEST_DIR,
    platform: str = "embedded",
    jobs: int = 1,
    progress: Any = None,
) -> MutationRun:
    mutants = [m for m in mutants if platform in m.targets]  # e.g. Grafana's mutants need a cluster
    folder = new_run_folder("mutants", REPORTS_ROOT)
    started = utc_now()
    baseline = run_baseline(mutants, folder, manifests, platform)
    results: list[MutantResult] = []
    if all(outcome == "passed" for outcome in baseline.values()):

        def one(mutant: Mutant) -> MutantResult:
            result = run_mutant(mutant, folder, manifests, platform)
            if progress:
                progress(result)
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(pool.map(one, mutants))
    run = MutationRun(folder, baseline, results, started, utc_now())
    run.write()
    point_latest(folder, "mutants-latest")
    return run
