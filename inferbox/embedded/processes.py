"""Starting, watching and stopping the platform's processes, always by PID.

Every process is started in its own session (a Ctrl-C in the terminal reaches only the owner, which
then stops everything in order) and recorded in a registry file with its kernel start time, so that
a PID reused by an unrelated process is never signalled. A reaper process (see reaper.py) reads the
same registry and cleans up if the owner dies without stopping the platform.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from inferbox.embedded.network import Pod


def proc_start_time(pid: int) -> float | None:
    """When ``pid`` started (psutil's create time: the kernel's start time on the boot clock), or None
    if it is gone or has exited (a zombie). A reused PID has another start time, so (PID, start
    time) names one process."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None  # it has exited; only its parent has yet to read its exit status
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


# psutil derives a start time from the boot time it read once per process, and the kernel's boot
# time (/proc/stat btime) moves by a second or so as the wall clock is adjusted: two processes can
# see one process's start time apart by that much. A PID reused within this margin of the first
# process's start is not a concern (the first must have exited first).
START_TIME_MARGIN_S = 2.0


def is_same_process(pid: int, start_time: float) -> bool:
    started = proc_start_time(pid)
    return started is not None and abs(started - start_time) < START_TIME_MARGIN_S


@dataclass
class ManagedProcess:
    """A process of the platform: started by the supervisor (``popen``), or forked for it by the
    replica template (``forked_pid``; the template reaps it, so it is gone once it exits)."""

    name: str
    pod: Pod
    popen: subprocess.Popen[bytes] | None
    log_path: Path
    start_time: float
    started_at: float
    forked_pid: int | None = None

    @property
    def pid(self) -> int:
        if self.popen is not None:
            return self.popen.pid
        assert self.forked_pid is not None
        return self.forked_pid

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return is_same_process(self.pid, self.start_time) and not _is_zombie(self.pid)

    def exit_code(self) -> int | None:
        """The exit code once it exited, when known (a forked replica's is its template's to read)."""
        return None if self.popen is None else self.popen.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def terminate(pid: int, start_time: float, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``, only if ``pid`` is still the process we started."""
    if not is_same_process(pid, start_time):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_same_process(pid, start_time) or _is_zombie(pid):
            return
        time.sleep(0.02)
    if is_same_process(pid, start_time):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


def _is_zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return True


@dataclass(frozen=True)
class RestartPolicy:
    """The kubelet's ``restartPolicy: Always`` and its back-off: a container that exits is started
    again at once the first time, then after 10 s, doubling up to 5 minutes; the back-off starts
    over once it has run 10 minutes. ``never`` is ``restartPolicy: Never``."""

    never: bool = False
    initial_backoff_s: float = 10.0
    max_backoff_s: float = 300.0
    reset_after_s: float = 600.0
    poll_s: float = 0.05

    def delay(self, restarts_in_a_row: int) -> float:
        if restarts_in_a_row == 0:
            return 0.0
        return float(min(self.initial_backoff_s * 2 ** (restarts_in_a_row - 1), self.max_backoff_s))


@dataclass
class Watch:
    """One process kept running: ``start`` makes a new one, ``restarted`` hears of it."""

    current: ManagedProcess
    start: Callable[[], ManagedProcess]
    restarted: Callable[[ManagedProcess], None]
    policy: RestartPolicy
    restarts: list[float] = field(default_factory=list)  # wall-clock times of restarts
    stopped: threading.Event = field(default_factory=threading.Event)


class Supervisor:
    """Owns the platform's processes."""

    def __init__(self, state_dir: Path, log_dir: Path) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.registry = state_dir / "processes"
        self.processes: list[ManagedProcess] = []
        self.watches: dict[str, Watch] = {}
        state_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)

    def keep_running(
        self,
        proc: ManagedProcess,
        start: Callable[[], ManagedProcess],
        restarted: Callable[[ManagedProcess], None],
        policy: RestartPolicy,
    ) -> Watch:
        """Restarts ``proc`` whenever it exits, as the kubelet restarts a container; stopping it
        through this supervisor ends the watch first."""
        watch = Watch(proc, start, restarted, policy)
        self.watches[proc.name] = watch
        if not policy.never:
            threading.Thread(target=self._watch, args=(watch,), name=f"restart-{proc.name}", daemon=True).start()
        return watch

    def _watch(self, watch: Watch) -> None:
        in_a_row = 0
        while not watch.stopped.is_set():
            if watch.current.alive():
                if in_a_row and time.monotonic() - watch.current.started_at > watch.policy.reset_after_s:
                    in_a_row = 0
                watch.stopped.wait(watch.policy.poll_s)
                continue
            # The back-off is the policy's schedule: waiting here is the restart delay itself.
            if watch.stopped.wait(watch.policy.delay(in_a_row)):
                return
            with contextlib.suppress(ValueError):
                self.processes.remove(watch.current)
            try:
                watch.current = watch.start()
            except Exception as exc:  # a failed start is one more crash; the log says why
                with open(self.log_dir / "supervisor.log", "a") as log:
                    log.write(f"restarting {watch.current.name} failed: {exc}\n")
            else:
                watch.restarts.append(time.time())
                watch.restarted(watch.current)
            in_a_row += 1

    def start(self, name: str, argv: list[str], pod: Pod, env: dict[str, str] | None = None) -> ManagedProcess:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            popen = subprocess.Popen(
                [*pod.exec_prefix(), *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            log.close()
        start_time = proc_start_time(popen.pid) or 0.0
        with open(self.registry, "a") as registry:
            registry.write(f"{popen.pid} {start_time!r} {name}\n")
        proc = ManagedProcess(name, pod, popen, log_path, start_time, time.monotonic())
        self.processes.append(proc)
        return proc

    def adopt(self, name: str, pid: int, pod: Pod, started_at: float) -> ManagedProcess:
        """A process started on the supervisor's behalf (a replica forked from the template, which
        registered it already): watched and stopped by PID like the others."""
        proc = ManagedProcess(
            name, pod, None, self.log_dir / f"{name}.log", proc_start_time(pid) or 0.0, started_at, forked_pid=pid
        )
        self.processes.append(proc)
        return proc

    def stop(self, proc: ManagedProcess, grace_s: float = 5.0) -> None:
        watch = self.watches.get(proc.name)
        if watch is not None and watch.current is proc:
            watch.stopped.set()  # a deliberate stop is not a crash
        terminate(proc.pid, proc.start_time, grace_s)
        if proc.popen is not None:
            try:
                proc.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if proc in self.processes:
            self.processes.remove(proc)

    def stop_all(self, grace_s: float = 5.0) -> None:
        for watch in self.watches.values():
            watch.stopped.set()
        # Signal everything first, then wait: shutdown takes the slowest process's time, not the sum.
        for proc in self.processes:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        for proc in list(self.processes):
            self.stop(proc, grace_s)
        self.registry.unlink(missing_ok=True)
