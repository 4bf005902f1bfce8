"""Running a load profile against a platform: Locust in its own processes, then the summary.

``import locust`` monkey-patches the standard library with gevent, so Locust never runs inside the
caller's process (pytest, the CLI): it runs as ``python -m locust`` (one local process, or a master
and N workers), started where the target places load clients, bounded in time and stopped by PID.
Tenants' credentials go to Locust in a private temporary file, never into the report folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inferbox.contract import Capability, LoadClientPlace, Platform
from inferbox.errors import InferboxError
from inferbox.load.plan import build_plan, tenants_needing_tokens
from inferbox.load.profiles import LoadProfile, LoadProfileError, SloFile
from inferbox.load.records import read_records
from inferbox.load.report import write_outputs
from inferbox.load.summary import summarise
from inferbox.report.model import utc_now
from inferbox.waiting import eventually

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# Locust needs this long beyond the profile to spawn, stop its users and write its reports.
GRACE_S = 60.0


@dataclass(frozen=True)
class TimedAction:
    """Something done ``at_s`` seconds after the load starts (e.g. a chaos action), in a thread."""

    at_s: float
    name: str
    run: Callable[[], Any]


class WorkerLauncher(Protocol):
    """Starts Locust workers elsewhere (e.g. a Kubernetes Job, inferbox.load.kind_job.JobWorkers)."""

    bind_host: str  # where the master listens so those workers reach it
    gateway_url: str  # the gateway as those workers reach it (e.g. its in-cluster Service)

    def launch(
        self, run: str, plan: dict[str, Any], credentials: dict[str, dict[str, str]], master_port: int
    ) -> AbstractContextManager[None]: ...


@dataclass
class LoadResult:
    folder: Path
    summary: dict[str, Any]
    plan: dict[str, Any]
    returncode: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.summary.get("passed"))

    def verdict(self, name: str) -> dict[str, Any]:
        for verdict in self.summary["slos"]:
            if verdict["name"] == name:
                return dict(verdict)
        raise KeyError(f"no SLO {name!r}; SLOs: {[v['name'] for v in self.summary['slos']]}")


def needs_direct_access(profile: LoadProfile) -> bool:
    return profile.overhead


def needs_ai_gateway(profile: LoadProfile) -> bool:
    return profile.streams


def ai_gateway_url(platform: Platform, profile: LoadProfile, launcher: WorkerLauncher | None) -> str | None:
    """The AI Gateway's address for a profile that streams chat completions (None: it does not)."""
    if not needs_ai_gateway(profile):
        return None
    if launcher is not None:
        # Launched workers know the gateway's in-cluster address only, not the AI Gateway's.
        raise LoadProfileError(
            f"load profile {profile.name} streams chat completions through the AI Gateway, which in-cluster workers "
            "do not reach yet",
            "run it with Locust on this machine (without --in-cluster); the AI Gateway is port-forwarded",
        )
    if Capability.AI_GATEWAY not in platform.capabilities:
        raise LoadProfileError(
            f"load profile {profile.name} streams chat completions, and target {platform.target} lacks capability: "
            f"{Capability.AI_GATEWAY}",
            "run it on a target with the AI Gateway",
        )
    return platform.ai_gateway_url()


@contextlib.contextmanager
def load_place(
    platform: Platform, profile: LoadProfile, launcher: WorkerLauncher | None = None
) -> Iterator[LoadClientPlace]:
    """Where Locust runs: beside the workloads when the profile goes direct to replicas, where the
    launcher puts its workers, or this machine."""
    if launcher is not None:
        if needs_direct_access(profile):
            raise LoadProfileError(
                f"load profile {profile.name} goes directly to model replicas, which launched workers do not",
                "run it without external workers",
            )
        yield LoadClientPlace((), launcher.gateway_url)
        return
    if not needs_direct_access(profile):
        yield LoadClientPlace((), platform.gateway_url)
        return
    if Capability.DIRECT_MODEL_ACCESS not in platform.capabilities:
        raise LoadProfileError(
            f"load profile {profile.name} goes directly to model replicas, and target {platform.target} lacks "
            f"capability: {Capability.DIRECT_MODEL_ACCESS}",
            "run it on the embedded target, or drop the `via: direct` entries from its mix",
        )
    tenants = sorted({m.tenant or "" for m in profile.mix if m.via == "direct"})
    if len(tenants) != 1 or not tenants[0]:
        raise LoadProfileError(
            f"load profile {profile.name}: `via: direct` entries must name one tenant (found {tenants})",
            "a direct path calls replicas as a workload of one tenant would; name that tenant in each entry",
        )
    with platform.load_client(f"load-{profile.name}", tenants[0]) as place:
        yield place


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_private(directory: Path, name: str, body: Any) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle)
    return path


def _locust_cmd(prefix: Sequence[str], profile: LoadProfile, *extra: str) -> list[str]:
    return [
        *prefix,
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--stop-timeout",
        str(int(profile.timeout_s) + 1),
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
        *extra,
    ]


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _run_actions(folder: Path, actions: Sequence[TimedAction], events: list[dict[str, Any]], deadline: float) -> None:
    """Waits for Locust's start marker, then runs each action at its offset; records when it ran."""

    def started() -> dict[str, Any]:
        path = folder / "started.json"
        assert path.exists(), "Locust has not started the load yet"
        body: dict[str, Any] = json.loads(path.read_text())
        return body

    try:
        marker = eventually(started, timeout_s=max(1.0, deadline - time.monotonic()), interval_s=0.05)
    except AssertionError:
        events.append({"name": "actions", "error": "the load never started; no action ran"})
        return
    for action in sorted(actions, key=lambda a: a.at_s):
        wait = marker["t0_mono"] + action.at_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # scheduling the action on the run's timeline, not synchronisation
        began_mono, began_wall = time.monotonic(), time.time()
        entry: dict[str, Any] = {"name": action.name}
        try:
            result = action.run()
            entry["result"] = repr(result)
            ended_mono = getattr(result, "ended", None) or time.monotonic()
            started_mono = getattr(result, "started", None) or began_mono
        except Exception as exc:  # recorded in the summary; the run's checks decide what it means
            entry["error"] = f"{type(exc).__name__}: {exc}"
            started_mono, ended_mono = began_mono, time.monotonic()
        # Wall-clock offsets: the records' timeline is aligned by wall clock.
        entry["wall_from"] = began_wall + (started_mono - began_mono)
        entry["wall_to"] = began_wall + (ended_mono - began_mono)
        events.append(entry)


def run_locust(
    plan: dict[str, Any],
    profile: LoadProfile,
    place: LoadClientPlace,
    folder: Path,
    credentials: dict[str, dict[str, str]],
    actions: Sequence[TimedAction] = (),
    launcher: WorkerLauncher | None = None,
    worker_prefix: Callable[[int], Sequence[str]] = lambda _: (),
) -> tuple[int, list[dict[str, Any]]]:
    """Runs Locust for the plan; returns its exit code and the timed actions as they ran.

    With ``plan["workers"]`` set, a master and that many workers run: local processes, or workers
    started by ``launcher`` (the master then listens on the launcher's bind host). Local worker i's
    command starts with ``worker_prefix(i)`` (a benchmark pins each to a CPU of its own).
    """
    workers = int(plan["workers"])
    deadline_s = profile.total_s + GRACE_S
    events: list[dict[str, Any]] = []
    for stale in ("started.json", "samples.json", "samples.bin"):  # a previous run's, in a reused folder
        (folder / stale).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="inferbox-load-") as private:
        plan_path = _write_private(Path(private), "plan.json", plan)
        creds_path = _write_private(Path(private), "credentials.json", credentials)
        env = {
            **os.environ,
            "INFERBOX_LOAD_PLAN": str(plan_path),
            "INFERBOX_LOAD_CREDENTIALS": str(creds_path),
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        }
        outputs = ["--csv", str(folder / "locust"), "--html", str(folder / "locust.html")]
        processes: list[subprocess.Popen[bytes]] = []
        logs = []
        try:
            if workers:
                port = free_port()
                master = _locust_cmd(
                    place.command_prefix,
                    profile,
                    "--master",
                    "--expect-workers",
                    str(workers),
                    "--master-bind-host",
                    launcher.bind_host if launcher else "127.0.0.1",
                    "--master-bind-port",
                    str(port),
                    *outputs,
                )
                commands = [("locust", master)] + [
                    (
                        f"locust-worker-{i}",
                        _locust_cmd(
                            (*place.command_prefix, *worker_prefix(i)),
                            profile,
                            "--worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(port),
                        ),
                    )
                    for i in range(0 if launcher else workers)
                ]
            else:
                commands = [("locust", _locust_cmd(place.command_prefix, profile, *outputs))]
            for name, command in commands:
                log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed below
                logs.append(log)
                processes.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=folder,
                        start_new_session=True,
                    )
                )
            stack = contextlib.ExitStack()
            if launcher and workers:
                run = f"{plan['name']}-{secrets.token_hex(3)}"  # unique per run: objects of runs never clash
                stack.enter_context(launcher.launch(run, plan, credentials, port))
            started = time.monotonic()
            thread = None
            if actions:
                thread = threading.Thread(
                    target=_run_actions, args=(folder, actions, events, started + GRACE_S), daemon=True
                )
                thread.start()
            with stack:
                try:
                    code = processes[0].wait(timeout=deadline_s)
                except subprocess.TimeoutExpired as exc:
                    raise InferboxError(
                        f"Locust did not finish profile {profile.name} within {deadline_s:.0f}s",
                        f"see {folder / 'locust.log'}",
                    ) from exc
            if thread is not None:
                thread.join(timeout=GRACE_S)
            for worker in processes[1:]:
                worker.wait(timeout=30)
            return code, events
        finally:
            for process in processes:
                _stop(process)
            for log in logs:
                log.close()


def run_profile(
    platform: Platform,
    profile: LoadProfile,
    slo: SloFile,
    folder: Path,
    workers: int | None = None,
    actions: Sequence[TimedAction] = (),
    progress: Callable[[str], None] = lambda _: None,
    launcher: WorkerLauncher | None = None,
) -> LoadResult:
    """Runs ``profile`` against ``platform``, writes every output into ``folder``; the verdicts are in the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()  # Locust runs in this folder; every path it gets must be absolute
    with load_place(platform, profile, launcher) as place:
        plan = build_plan(
            profile,
            slo,
            platform.topology,
            platform.profile,
            place,
            folder,
            workers,
            ai_gateway_url(platform, profile, launcher),
        )
        credentials = {
            tenant: {
                "client_id": platform.credentials(tenant).client_id,
                "client_secret": platform.credentials(tenant).client_secret,
            }
            for tenant in tenants_needing_tokens(plan)
        }
        (folder / "plan.json").write_text(json.dumps(plan, indent=2))
        started = utc_now()
        progress(
            f"load profile {profile.name}: {profile.mode} loop, {profile.total_s:g}s, peak {profile.peak_rate:g} req/s"
            + (f", {plan['workers']} workers" if plan["workers"] else "")
        )
        code, events = run_locust(plan, profile, place, folder, credentials, actions, launcher)
    records = read_records(folder)
    for event in events:
        if "wall_from" in event:
            event["from_s"] = round(event.pop("wall_from") - records.origin_wall, 4)
            event["to_s"] = round(event.pop("wall_to") - records.origin_wall, 4)
    context = {
        "target": platform.target,
        "versions": platform.versions(),
        "started": started,
        "locust_exit_code": code,
        "place": "beside the workloads" if place.command_prefix else "this machine",
    }
    summary = summarise(records, plan, profile, slo, context, events)
    summary["files"] = write_outputs(folder, summary, records, profile)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return LoadResult(folder, summary, plan, code, events)
