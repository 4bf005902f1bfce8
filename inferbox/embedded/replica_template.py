"""Model-server replicas forked from a pre-imported template (``inferbox.modelserver.template``).

A replica forked this way is still a process of its own, in its own session and the pod's own network
namespace, with its own log, environment and start time; it only skips the imports. When the
template cannot be reached, replicas start the ordinary way.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from inferbox.embedded.health import wait_until
from inferbox.embedded.network import Pod
from inferbox.embedded.processes import ManagedProcess, Supervisor
from inferbox.embedded.socket_dir import connect_unix, ensure_socket_dir
from inferbox.errors import PlatformError

TEMPLATE_NAME = "model-server-template"
MODEL_SERVER_MODULE = "inferbox.modelserver"
CALL_TIMEOUT_S = 10.0
# Single-threaded math libraries: a fork copies only the calling thread, and the models are tiny.
TEMPLATE_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ReplicaTemplate:
    def __init__(self, supervisor: Supervisor, state_dir: Path, env: dict[str, str]) -> None:
        self.supervisor = supervisor
        self.announce = state_dir / "model-server-template.socket-path"
        self.announce.unlink(missing_ok=True)
        host = Pod(name=TEMPLATE_NAME, ip="127.0.0.1")  # no pod: it serves nothing on the network
        self.process = supervisor.start(
            TEMPLATE_NAME,
            [
                sys.executable,
                "-m",
                f"{MODEL_SERVER_MODULE}.template",
                "--announce",
                str(self.announce),
                "--registry",
                str(supervisor.registry),
                "--socket",
                # A state folder can be too deep for a Unix socket's path; the platform and the
                # reaper remove this short folder however the template ends.
                str(ensure_socket_dir(state_dir) / "model-server-template.sock"),
            ],
            host,
            {**env, **TEMPLATE_ENV},
        )

    def wait_ready(self, timeout_s: float) -> None:
        process = self.process

        def dead() -> str | None:
            return None if process.alive() else f"it exited; log {process.log_path}:\n{process.log_tail()}"

        wait_until("the model-server template", self._answers, timeout_s, dead, fix=f"see {process.log_path}")

    def _call(self, request: dict[str, object]) -> dict[str, object]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CALL_TIMEOUT_S)
            connect_unix(sock, self.announce.read_text())
            sock.sendall(json.dumps(request).encode() + b"\n")
            with sock.makefile("rb") as answer:
                reply: dict[str, object] = json.loads(answer.readline() or b"{}")
        return reply

    def _answers(self) -> bool:
        try:
            return self._call({"op": "ping"}).get("ok") is True
        except (OSError, ValueError):
            return False

    def available(self) -> bool:
        return self.process.alive() and self.announce.exists()

    def spawn(self, name: str, args: list[str], pod: Pod, env: dict[str, str]) -> ManagedProcess:
        """A replica with ``python -m inferbox.modelserver ARGS``'s behaviour, forked in ``pod``."""
        started_at = time.monotonic()
        try:
            reply = self._call(
                {
                    "op": "fork",
                    "name": name,
                    "args": args,
                    "env": env,
                    "netns": pod.netns_path,
                    "log": str(self.supervisor.log_dir / f"{name}.log"),
                }
            )
        except (OSError, ValueError) as exc:
            raise PlatformError(f"the model-server template did not fork {name}: {exc}", "see its log") from exc
        pid = reply.get("pid")
        if not isinstance(pid, int):
            raise PlatformError(f"the model-server template did not fork {name}: {reply}", "see its log")
        return self.supervisor.adopt(name, pid, pod, started_at)


def model_server_args(argv: list[str]) -> list[str] | None:
    """The arguments of a ``python -m inferbox.modelserver ...`` command line, or None for another."""
    prefix = [sys.executable, "-m", MODEL_SERVER_MODULE]
    return argv[len(prefix) :] if argv[: len(prefix)] == prefix else None
