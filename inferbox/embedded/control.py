"""The control channel of a kept embedded platform (``inferbox up``, ``pytest --keep-platform``).

The platform's control plane (autoscaler, deployer, quota ledger) lives in the process that started
it. A target in another process reads live replica state and changes replica bounds through this
channel, exactly as it does in process: a Unix socket in the platform's state folder (owner-only),
one JSON request and one JSON answer per connection, a fixed list of operations.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferbox.errors import InferboxError, PlatformError
from inferbox.mesh import ScaleOutcome
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus

if TYPE_CHECKING:
    from inferbox.embedded.platform import EmbeddedPlatform

SOCKET_NAME = "control.sock"
MAX_REQUEST = 65536
# The longest an operation may take (a bound change waits for replicas to start) plus the answer.
CALL_TIMEOUT_S = 300.0


def _operations(platform: EmbeddedPlatform) -> dict[str, Callable[..., Any]]:
    serving = platform.serving

    def quota(tenant: str) -> Any:
        assert platform.mesh is not None
        return platform.mesh.ledger.status(tenant)

    return {
        "workload_state": platform.workload_state,
        "component_status": platform.component_status,
        "quota_status": quota,
        "settings": lambda ns, name: asdict(serving.settings(ns, name)),
        "revision_status": lambda ns, name: [asdict(r) for r in serving.revision_status(ns, name)],
        "timings": lambda ns, name, since: [asdict(t) for t in serving.timings(ns, name, since)],
        "served": serving.served,
        "set_bounds": lambda ns, name, low, high, settle: asdict(serving.set_bounds(ns, name, low, high, settle)),
        "promote": serving.promote,
        "restore": serving.restore,
    }


class ControlServer:
    def __init__(self, platform: EmbeddedPlatform, path: Path) -> None:
        self.path = path
        operations = _operations(platform)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline(MAX_REQUEST))
                    operation = operations[str(request["op"])]
                    answer: dict[str, Any] = {"ok": operation(*request.get("args", []))}
                except InferboxError as exc:
                    answer = {"error": {"problem": exc.problem, "fix": exc.fix}}
                except Exception as exc:  # the caller gets the failure, the platform keeps running
                    answer = {"error": {"problem": f"{type(exc).__name__}: {exc}", "fix": ""}}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        path.unlink(missing_ok=True)
        self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self._server.daemon_threads = True
        os.chmod(path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def call(path: Path, op: str, *args: Any) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CALL_TIMEOUT_S)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise PlatformError(
                f"cannot reach the kept platform's control channel {path}: {exc}", "restart it with `inferbox up`"
            ) from exc
        sock.sendall(json.dumps({"op": op, "args": list(args)}).encode() + b"\n")
        with sock.makefile("rb") as answer_file:
            answer = json.loads(answer_file.readline() or b"{}")
    if "error" in answer:
        raise PlatformError(answer["error"]["problem"], answer["error"]["fix"])
    if "ok" not in answer:
        raise PlatformError(f"the control channel {path} gave no answer to {op}", "see the daemon's log")
    return answer["ok"]


class _RemoteServing:
    def __init__(self, path: Path) -> None:
        self.path = path

    def settings(self, namespace: str, name: str) -> AutoscalingSettings:
        return AutoscalingSettings(**call(self.path, "settings", namespace, name))

    def revision_status(self, namespace: str, name: str) -> list[RevisionStatus]:
        return [RevisionStatus(**r) for r in call(self.path, "revision_status", namespace, name)]

    def timings(self, namespace: str, name: str, since: float) -> list[ReplicaTiming]:
        return [ReplicaTiming(**t) for t in call(self.path, "timings", namespace, name, since)]

    def served(self, namespace: str, name: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in call(self.path, "served", namespace, name).items()}

    def set_bounds(self, namespace: str, name: str, low: int | None, high: int | None, settle_s: float) -> ScaleOutcome:
        raw = call(self.path, "set_bounds", namespace, name, low, high, settle_s)
        return ScaleOutcome(raw["requested"], raw["running"], tuple(raw["refusals"]))

    def promote(self, namespace: str, name: str, settle_s: float) -> None:
        call(self.path, "promote", namespace, name, settle_s)

    def restore(self, namespace: str, name: str, settle_s: float) -> None:
        call(self.path, "restore", namespace, name, settle_s)


class _RemoteLedger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def status(self, tenant: str) -> tuple[dict[str, str], dict[str, str]] | None:
        raw = call(self.path, "quota_status", tenant)
        return None if raw is None else (raw[0], raw[1])


class _RemoteMesh:
    def __init__(self, path: Path) -> None:
        self.ledger = _RemoteLedger(path)


class RemotePlatform:
    """What the embedded target uses of a live platform, through the control channel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.serving = _RemoteServing(path)
        self.mesh = _RemoteMesh(path)

    def workload_state(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = call(self.path, "workload_state")
        return rows

    def component_status(self) -> dict[str, dict[str, Any]]:
        status: dict[str, dict[str, Any]] = call(self.path, "component_status")
        return status


def remote(state_dir: Path) -> RemotePlatform | None:
    """The control channel of a kept platform in ``state_dir``, if it answers."""
    path = state_dir / SOCKET_NAME
    if not path.exists():
        return None
    with contextlib.suppress(PlatformError):
        call(path, "workload_state")
        return RemotePlatform(path)
    return None
