"""The runner end to end against a local Envoy that answers at once: one Locust process, a master with
local workers, and a master whose workers a launcher starts elsewhere (as the cluster Job does)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.load_runs import envoy_endpoint, known_endpoint, plan_for
from inferbox.contract import LoadClientPlace
from inferbox.load.records import OK, read_records
from inferbox.load.runner import LOCUSTFILE, run_locust

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fast_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with envoy_endpoint(tmp_path_factory.mktemp("envoy")) as base:
        yield f"{base}/fast"


class LocalLauncher:
    """Starts workers as local processes from the plan alone, the way the cluster Job's pods do."""

    bind_host = "127.0.0.1"

    def __init__(self, folder: Path, gateway_url: str) -> None:
        self.folder = folder
        self.gateway_url = gateway_url
        self.runs: list[str] = []

    @contextlib.contextmanager
    def launch(
        self, run: str, plan: dict[str, Any], credentials: dict[str, dict[str, str]], master_port: int
    ) -> Iterator[None]:
        self.runs.append(run)
        (self.folder / "worker-plan.json").write_text(json.dumps(plan))
        (self.folder / "worker-credentials.json").write_text(json.dumps(credentials))
        env = {
            **os.environ,
            "INFERBOX_LOAD_PLAN": str(self.folder / "worker-plan.json"),
            "INFERBOX_LOAD_CREDENTIALS": str(self.folder / "worker-credentials.json"),
        }
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-port", str(master_port)]
        workers = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(int(plan["workers"]))
        ]
        try:
            yield
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "master-and-2-workers"])
def test_every_scheduled_request_is_recorded_once(fast_url: str, tmp_path: Path, workers: int) -> None:
    plan, profile = plan_for("run", fast_url, 50.0, 4.0, tmp_path)
    plan["workers"] = workers
    code, _ = run_locust(plan, profile, LoadClientPlace((), fast_url), tmp_path, {})
    assert code == 0, (tmp_path / "locust.log").read_text()[-2000:]
    records = read_records(tmp_path)
    assert records.scheduled == 200
    assert len(records) == 200
    assert (records.outcome == OK).all()
    assert set(records.worker.tolist()) == ({0} if workers == 0 else {0, 1})
    assert (records.latency > 0).all()
    assert (records.delay >= 0).all(), "a request left before its intended time"
    assert (records.service > 0).all()
    assert (tmp_path / "locust_stats.csv").exists()
    assert (tmp_path / "locust.html").exists()


def test_workers_from_a_launcher_serve_the_plan(fast_url: str, tmp_path: Path) -> None:
    plan, profile = plan_for("run", fast_url, 50.0, 4.0, tmp_path)
    plan["workers"] = 2
    launcher = LocalLauncher(tmp_path, fast_url)
    code, _ = run_locust(plan, profile, LoadClientPlace((), fast_url), tmp_path, {}, launcher=launcher)
    assert code == 0, (tmp_path / "locust.log").read_text()[-2000:]
    records = read_records(tmp_path)
    assert (records.scheduled, len(records)) == (200, 200)
    assert set(records.worker.tolist()) == {0, 1}
    assert launcher.runs[0].startswith("run-")


def test_a_stall_grows_the_pool_instead_of_holding_requests_back(tmp_path: Path) -> None:
    """Every answer frozen for 0.5 s at every 40th request, 40/s, 2 connections to begin with: the
    requests due during a freeze leave on new connections, none waits for one, and the first
    request of each freeze measures the whole freeze from its intended time."""
    with known_endpoint(tmp_path, delay_ms=5.0, stall_every=40, stall_ms=500.0) as stalling:
        plan, profile = plan_for("stall", stalling.url, 40.0, 4.0, tmp_path, users=2, warmup_s=0.0)
        code, _ = run_locust(plan, profile, LoadClientPlace((), stalling.url), tmp_path, {})
    assert code == 0, (tmp_path / "locust.log").read_text()[-2000:]
    records = read_records(tmp_path)
    assert (records.scheduled, len(records)) == (160, 160)
    assert (records.outcome == OK).all()
    assert len(stalling.report["freezes"]) == 4
    generator = records.generator or {}
    assert generator["queued"] == 0, generator
    assert generator["connections_peak"] >= 0.5 * 40 * 0.5, f"the pool did not grow during a freeze: {generator}"
    assert records.latency.max() >= 0.5, "the freeze does not show from the intended time"
