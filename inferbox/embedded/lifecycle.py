"""Starting, finding and stopping embedded platforms that outlive one command (``inferbox up``,
``pytest --keep-platform``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from inferbox.embedded.processes import is_same_process
from inferbox.embedded.reaper import reap
from inferbox.embedded.state import PlatformState, read_state
from inferbox.errors import PlatformError
from inferbox.waiting import NotYet, eventually


def default_state_dir() -> Path:
    """Where a kept platform's state lives: ``$INFERBOX_STATE_DIR``, else a per-user folder
    (``$XDG_STATE_HOME/inferbox/embedded``, ``~/.local/state/inferbox/embedded``), so every command
    finds the running platform whatever the current directory."""
    override = os.environ.get("INFERBOX_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "inferbox" / "embedded"


def running_state(state_dir: Path) -> PlatformState | None:
    """The state of a live daemon platform in ``state_dir``; leftovers of a dead one are cleaned."""
    path = state_dir / "state.json"
    if not path.exists():
        return None
    state = read_state(path)
    if is_same_process(state.owner_pid, state.owner_start_time):
        return state
    reap(state_dir, state.netns_prefix)
    return None


def start_daemon(
    manifests: Path,
    state_dir: Path,
    gateway_port: int = 0,
    admin_port: int = 0,
    network: str = "auto",
    timeout_s: float = 180.0,
    progress: Callable[[str], None] = lambda _: None,
) -> PlatformState:
    """Starts a platform in a background process and waits until it is ready."""
    if running_state(state_dir):
        raise PlatformError(
            f"an embedded platform is already running from {state_dir}",
            "use it, or stop it first with `inferbox down`",
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("state.json", "error.json"):
        (state_dir / stale).unlink(missing_ok=True)
    log_dir = state_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    log_path = log_dir / "daemon.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferbox.embedded.daemon",
                "--manifests",
                str(manifests.resolve()),
                "--state-dir",
                str(state_dir),
                "--log-dir",
                str(log_dir),
                "--gateway-port",
                str(gateway_port),
                "--admin-port",
                str(admin_port),
                "--network",
                network,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    progress("starting JWT server, model servers and gateway")

    def started() -> PlatformState:
        if (state_dir / "state.json").exists():
            return read_state(state_dir / "state.json")
        if (state_dir / "error.json").exists() or daemon.poll() is not None:
            daemon.wait(timeout=30)
            raise _start_failure(state_dir / "error.json", daemon.returncode, log_path, log_start)
        raise NotYet("the platform is starting")

    try:
        return eventually(started, timeout_s, 0.1)
    except NotYet:
        os.kill(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
        raise PlatformError(
            f"the embedded platform did not become ready within {timeout_s:.0f}s",
            f"see the component logs in {log_dir}",
        ) from None


def _start_failure(error_file: Path, code: int, log_path: Path, log_start: int) -> PlatformError:
    """The cause of a failed start in one or two lines: the daemon's own error (a bad manifest names
    its file and the fix), else the last line it wrote (the end of a traceback), with the log's path."""
    if error_file.exists():
        error = json.loads(error_file.read_text())
        return PlatformError(error["problem"], error["fix"] or f"the full traceback is in {log_path}")
    last = ""
    if log_path.exists():
        with open(log_path, "rb") as log:
            log.seek(log_start)
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
        last = lines[-1] if lines else ""
    return PlatformError(
        f"the platform process exited with code {code}" + (f": {last}" if last else " without a word"),
        f"the full output is in {log_path}",
    )


def stop_daemon(state_dir: Path, timeout_s: float = 30.0) -> bool:
    """Stops the daemon platform in ``state_dir``; returns False if none was running."""
    path = state_dir / "state.json"
    if not path.exists():
        return False
    state = read_state(path)
    pid, start = state.owner_pid, state.owner_start_time
    if is_same_process(pid, start):
        os.kill(pid, signal.SIGTERM)

        def gone() -> None:
            if is_same_process(pid, start):
                raise NotYet(f"the platform process {pid} is still stopping")

        with contextlib.suppress(NotYet):  # the reaper below removes whatever it left
            eventually(gone, timeout_s, 0.05)
        with contextlib.suppress(ChildProcessError):  # started by this process: collect its exit status
            os.waitpid(pid, os.WNOHANG)
    # Whatever state the daemon left, nothing of this instance survives.
    reap(state_dir, state.netns_prefix)
    return True
