"""What the load benchmarks run: endpoints with known answer times, inferbox's locustfile on a
plan, and wrk (Debian's package) beside it, each pinned to a CPU when asked."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from inferbox.contract import LoadClientPlace
from inferbox.embedded.envoy_common import TYPES
from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.errors import InferboxError
from inferbox.load.profiles import LoadProfile, Stage
from inferbox.load.records import Records, read_records
from inferbox.load.runner import free_port, run_locust
from inferbox.waiting import eventually

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "paced.lua"
BODY = '{"instances": [[6.8, 2.8, 4.8, 1.4]]}'
BUFFER = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"


def pinned(cpu: int | None) -> tuple[str, ...]:
    """A command prefix that keeps a process on one CPU (nothing when there is no such CPU or taskset)."""
    if cpu is None or shutil.which("taskset") is None or cpu >= (os.cpu_count() or 1):
        return ()
    return ("taskset", "-c", str(cpu))


def realtime_allowed() -> bool:
    """Whether this process may give its children the lowest real-time priority (SCHED_FIFO 1)."""
    try:
        return os.sched_get_priority_min(os.SCHED_FIFO) >= 1 and (os.geteuid() == 0)
    except (OSError, AttributeError):
        return False


def _ready(url: str) -> None:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError as exc:
        raise AssertionError(f"{url}: {exc}") from exc


def _accepts(port: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError as exc:
        raise AssertionError(f"port {port}: {exc}") from exc


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _envoy_bootstrap(port: int, admin: int) -> dict[str, Any]:
    hcm = {
        "@type": TYPES["hcm"],
        "stat_prefix": "bench",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "bench",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "{}"}}}
                    ],
                }
            ]
        },
        # The buffer filter reads each request to its end before the direct response: Envoy closes a
        # connection whose response finished before its request did, and keep-alive is the point.
        "http_filters": [
            {"name": "envoy.filters.http.buffer", "typed_config": {"@type": BUFFER, "max_request_bytes": 65536}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": TYPES["router"]}},
        ],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
                    ],
                }
            ]
        },
    }


@contextlib.contextmanager
def envoy_endpoint(folder: Path, cpu: int | None = None, concurrency: int = 1) -> Iterator[str]:
    """One Envoy answering every request from its route table (costs the server microseconds)."""
    port, admin = free_port(), free_port()
    config = folder / "envoy.yaml"
    config.write_text(yaml.safe_dump(_envoy_bootstrap(port, admin)))
    command = [envoy_binary(), "-c", str(config), "--concurrency", str(concurrency), "--disable-hot-restart"]
    with open(folder / "envoy.log", "wb") as log:
        envoy = subprocess.Popen(
            [*pinned(cpu), *command, "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        eventually(lambda: _ready(f"http://127.0.0.1:{admin}/ready"), timeout_s=30, interval_s=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(envoy)


@dataclass
class Endpoint:
    url: str
    report: dict[str, Any] = field(default_factory=dict)  # bench.endpoint's own report, after it stopped


@contextlib.contextmanager
def known_endpoint(
    folder: Path,
    delay_ms: float,
    stall_every: int = 0,
    stall_ms: float = 0.0,
    cpu: int | None = None,
    realtime: bool = False,
) -> Iterator[Endpoint]:
    """bench.endpoint: answers ``delay_ms`` after each request arrived, optionally with freezes."""
    port = free_port()
    report = folder / f"endpoint-{port}.json"
    command = [
        sys.executable,
        "-m",
        "bench.endpoint",
        f"--port={port}",
        f"--delay-ms={delay_ms}",
        f"--stall-every={stall_every}",
        f"--stall-ms={stall_ms}",
        f"--report={report}",
        *(["--realtime"] if realtime else []),
    ]
    with open(folder / f"endpoint-{port}.log", "wb") as log:
        process = subprocess.Popen(
            [*pinned(cpu), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    endpoint = Endpoint(f"http://127.0.0.1:{port}")
    try:
        # A TCP connect, not a request: the stall schedule counts requests.
        eventually(lambda: _accepts(port), timeout_s=30, interval_s=0.05)
        yield endpoint
    finally:
        _stop(process)
        if report.exists():
            endpoint.report = json.loads(report.read_text())


def plan_for(
    name: str,
    url: str,
    rate: float,
    seconds: float,
    folder: Path,
    users: int = 50,
    workers: int = 0,
    warmup_s: float = 2.0,
    realtime: bool = False,
) -> tuple[dict[str, Any], LoadProfile]:
    """A one-stage open-loop plan of constant spacing against one URL, answer not checked."""
    profile = LoadProfile(name, "bench", (Stage(seconds, rate, users),), warmup_s=warmup_s, timeout_s=5.0)
    target = {
        "label": name,
        "tenant": "bench",
        "model": "bench",
        "protocol": "v1",
        "via": "direct",
        "weight": 1.0,
        "method": "POST",
        "url": url,
        "host": "bench",
        "auth": False,
        "body": BODY,
        "expect": None,
    }
    plan = {
        "name": name,
        "mode": "open",
        "arrival": "constant",
        "seed": 1,
        "stages": [{"seconds": seconds, "rate": rate, "users": users}],
        "warmup_s": warmup_s,
        "timeout_s": 5.0,
        "workers": workers,
        "targets": [target],
        "token": {"base_url": url, "host": "bench", "path": "/token", "refresh_before_expiry_s": 60},
        "output_dir": str(folder),
        "realtime": realtime,
    }
    return plan, profile


def run_plan(
    plan: dict[str, Any],
    profile: LoadProfile,
    folder: Path,
    prefix: Sequence[str] = (),
    worker_prefix: Callable[[int], Sequence[str]] = lambda _: (),
) -> Records:
    folder.mkdir(parents=True, exist_ok=True)
    url = plan["targets"][0]["url"]
    place = LoadClientPlace(tuple(prefix), url)
    code, _ = run_locust(plan, profile, place, folder, {}, worker_prefix=worker_prefix)
    if code != 0:
        raise InferboxError(f"Locust exited with {code} in {plan['name']}", f"see {folder / 'locust.log'}")
    return read_records(folder)


@dataclass
class WrkRun:
    requests: int
    errors: dict[str, int]
    latency_s: np.ndarray[Any, np.dtype[np.float64]]  # every request's latency, from wrk's histogram
    duration_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def wrk(
    url: str,
    seconds: float,
    connections: int,
    threads: int = 1,
    rate_per_thread: float | None = None,
    cpu: int | None = None,
    realtime: bool = False,
) -> WrkRun:
    """wrk 4 with the pacing script (``rate_per_thread``) or flat out (None); its full latency histogram."""
    binary = shutil.which("wrk")
    if binary is None:
        raise InferboxError(
            "wrk is not installed", "install Debian's wrk package: apt-get install wrk (make bench asks)"
        )
    command = [
        *(("chrt", "-f", "1") if realtime else ()),
        *pinned(cpu),
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    if rate_per_thread:
        command += ["--", f"{rate_per_thread:g}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith('{"inferbox_wrk"')), None)
    if done.returncode != 0 or line is None:
        said = done.stderr.strip() or done.stdout[-500:]
        raise InferboxError(f"wrk failed: {said}", "run the command by hand to see why: " + " ".join(command))
    body = json.loads(line)
    pairs = np.array(body["latency_us"], dtype=np.float64).reshape(-1, 2)
    latency = np.repeat(pairs[:, 0], pairs[:, 1].astype(np.int64)) / 1e6
    return WrkRun(int(body["requests"]), body["errors"], latency, body["duration_us"] / 1e6)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
