"""A pre-imported model-server process that replicas are forked from.

Importing KServe, FastAPI, scikit-learn and NumPy takes most of a model server's start (about two
seconds on our machines, several under load). This process imports them once and waits on a Unix
socket (owner-only). For each request it forks a child that becomes a replica of its own: a new
session (its own process group, as any replica), its stdout and stderr in the replica's log, its own
network namespace (``setns`` into the pod's), the replica's environment and arguments, then KServe's
model server as ``python -m inferbox.modelserver`` would run it. The parent answers with the child's
PID and reaps children as they exit; the platform watches and stops them by PID like every process.

``python -m inferbox.modelserver.template --announce FILE --registry FILE --socket PATH``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MAX_REQUEST = 1 << 20
STOP_GRACE_S = 5.0  # how long replicas may take to stop when the template is stopped
_children: set[int] = set()


def _preload() -> None:
    """Everything a replica imports before it serves (what makes a start slow)."""
    import fastapi  # noqa: F401
    import joblib  # noqa: F401
    import kserve  # noqa: F401
    import numpy  # noqa: F401
    import sklearn.ensemble
    import sklearn.linear_model  # noqa: F401
    import uvicorn  # noqa: F401
    from kserve.protocol.rest import server  # noqa: F401

    import inferbox.modelserver.__main__
    import inferbox.modelserver.models  # noqa: F401


def _reap(_signum: int, _frame: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while (pid := os.waitpid(-1, os.WNOHANG)[0]) > 0:
            _children.discard(pid)


def _stop(_signum: int, _frame: Any) -> None:
    """Stops the replicas it forked and waits for them before it goes: an orphaned replica would be
    reparented away from everything that reaps it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while _children and time.monotonic() < deadline:
        for pid in list(_children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            _children.discard(pid)
        time.sleep(0.02)  # polling the children's exit within the grace period
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    sys.exit(0)


def _become_replica(request: dict[str, Any], listener: socket.socket, conn: socket.socket) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        listener.close()
        conn.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        if request.get("netns"):
            from inferbox.embedded.netns import enter_netns

            enter_netns(request["netns"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["inferbox.modelserver", *request["args"]]
        from inferbox.modelserver.__main__ import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _register(registry: Path, pid: int, name: str) -> None:
    """The child joins the platform's process registry at once, so a crash of the platform between
    this fork and the platform's next step still leaves it to the reaper."""
    from inferbox.embedded.processes import proc_start_time

    with open(registry, "a") as out:
        out.write(f"{pid} {proc_start_time(pid) or 0.0!r} {name}\n")


def _handle(conn: socket.socket, listener: socket.socket, registry: Path) -> None:
    with conn, conn.makefile("rb") as stream:
        line = stream.readline(MAX_REQUEST)
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            conn.sendall(json.dumps({"error": f"not JSON: {exc}"}).encode() + b"\n")
            return
        if request.get("op") == "ping":
            conn.sendall(b'{"ok": true}\n')
            return
        pid = os.fork()
        if pid == 0:
            _become_replica(request, listener, conn)
        _children.add(pid)
        _register(registry, pid, str(request.get("name", "replica")))
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def serve(announce: Path, registry: Path, path: Path) -> None:
    """Serves fork requests on the Unix socket ``path`` (in the platform's short socket folder,
    which the platform and its reaper remove however this process ends), and writes the path to
    ``announce`` once it listens."""
    _preload()
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.unlink(missing_ok=True)
        listener.bind(str(path))
        listener.listen(128)  # replicas of a burst are spawned together
        announce.write_text(str(path))
        print(f"replica template ready on {path}", flush=True)
        while True:
            conn, _ = listener.accept()
            _handle(conn, listener, registry)
    finally:
        listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m inferbox.modelserver.template")
    parser.add_argument("--announce", required=True, type=Path, help="where to write the socket's path")
    parser.add_argument("--registry", required=True, type=Path, help="the platform's process registry")
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to serve fork requests on")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    serve(args.announce, args.registry, args.socket)


if __name__ == "__main__":
    main()
