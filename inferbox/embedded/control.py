"""The embedded platform's control plane as the target sees it, in this process or in another.

The control plane (autoscaler, deployer, quota ledger) lives in the process that started the
platform. ``ControlPlane`` is what the embedded target uses of it: ``LocalControl`` answers in that
process; a kept platform (``inferbox up``, ``pytest --keep-platform``) serves the same operations on
a Unix socket in its state folder (owner-only, one JSON request and one JSON answer per connection)
and ``RemoteControl`` calls them from another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from inferbox.contract_types import Fault
from inferbox.embedded.chaos import ChaosControl
from inferbox.embedded.deployer import Deployer
from inferbox.embedded.knobs import Knobs, parse_knobs
from inferbox.embedded.quota import QuotaLedger
from inferbox.embedded.serving import ServingControlPlane
from inferbox.embedded.socket_dir import connect_unix, socket_dir_for
from inferbox.embedded.state import ComponentStatus, WorkloadRow, parse, to_json
from inferbox.errors import InferboxError, PlatformError
from inferbox.mesh import QuotaStatus, ScaleOutcome
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus

SOCKET_NAME = "control.sock"
MAX_REQUEST = 65536
# The longest an operation may take (a bound change waits for replicas to start) plus the answer.
CALL_TIMEOUT_S = 300.0


class ControlPlane(Protocol):
    """Live facts and changes of a running embedded platform."""

    def workload_rows(self) -> list[WorkloadRow]: ...

    def component_status(self) -> dict[str, ComponentStatus]: ...

    def quota_status(self, tenant: str) -> QuotaStatus | None: ...

    def settings(self, namespace: str, name: str) -> AutoscalingSettings: ...

    def revision_status(self, namespace: str, name: str) -> list[RevisionStatus]: ...

    def timings(self, namespace: str, name: str, since: float) -> list[ReplicaTiming]: ...

    def served(self, namespace: str, name: str) -> dict[str, int]: ...

    def set_bounds(
        self, namespace: str, name: str, low: int | None, high: int | None, settle_s: float
    ) -> ScaleOutcome: ...

    def promote(self, namespace: str, name: str, settle_s: float) -> None: ...

    def restore(self, namespace: str, name: str, settle_s: float) -> None: ...

    def reconfigure(self, manifests_dir: str, knobs: str) -> list[str]: ...

    def chaos_inject(self, kind: str, target: dict[str, Any], seconds: float) -> Fault: ...

    def chaos_heal(self, fault_id: str) -> Fault: ...

    def chaos_faults(self) -> list[Fault]: ...


Reconfigure = Callable[[Path, Knobs], list[str]]


class LocalControl:
    """The control plane in the process that runs the platform."""

    def __init__(
        self,
        deployer: Deployer,
        serving: ServingControlPlane,
        ledger: QuotaLedger,
        components: Callable[[], dict[str, ComponentStatus]],
        reconfigure: Reconfigure | None = None,
        chaos: ChaosControl | None = None,
    ) -> None:
        self._chaos = chaos
        self._deployer = deployer
        self._serving = serving
        self._ledger = ledger
        self._components = components
        self._reconfigure = reconfigure

    def workload_rows(self) -> list[WorkloadRow]:
        return self._deployer.workload_rows()

    def component_status(self) -> dict[str, ComponentStatus]:
        return self._components()

    def quota_status(self, tenant: str) -> QuotaStatus | None:
        status = self._ledger.status(tenant)
        return None if status is None else QuotaStatus(tenant, *status)

    def settings(self, namespace: str, name: str) -> AutoscalingSettings:
        return self._serving.settings(namespace, name)

    def revision_status(self, namespace: str, name: str) -> list[RevisionStatus]:
        return self._serving.revision_status(namespace, name)

    def timings(self, namespace: str, name: str, since: float) -> list[ReplicaTiming]:
        return self._serving.timings(namespace, name, since)

    def served(self, namespace: str, name: str) -> dict[str, int]:
        return self._serving.served(namespace, name)

    def set_bounds(self, namespace: str, name: str, low: int | None, high: int | None, settle_s: float) -> ScaleOutcome:
        return self._serving.set_bounds(namespace, name, low, high, settle_s)

    def promote(self, namespace: str, name: str, settle_s: float) -> None:
        self._serving.promote(namespace, name, settle_s)

    def restore(self, namespace: str, name: str, settle_s: float) -> None:
        self._serving.restore(namespace, name, settle_s)

    def reconfigure(self, manifests_dir: str, knobs: str) -> list[str]:
        """Takes another manifest set and knobs (INFERBOX_KNOBS' JSON) in place, restarting only
        the parts they touch; refused when that needs a new platform."""
        if self._reconfigure is None:
            raise PlatformError("this platform cannot be reconfigured in place", "start a new one")
        return self._reconfigure(Path(manifests_dir).resolve(), parse_knobs(knobs))

    # -- chaos: faults live in the owner, whose timers roll them back at their bound ------------------
    def _faults(self) -> ChaosControl:
        if self._chaos is None:
            raise PlatformError("this platform cannot inject faults (it is not started)", "start it first")
        return self._chaos

    def chaos_inject(self, kind: str, target: dict[str, Any], seconds: float) -> Fault:
        return self._faults().inject(kind, target, seconds)

    def chaos_heal(self, fault_id: str) -> Fault:
        return self._faults().heal(fault_id)

    def chaos_faults(self) -> list[Fault]:
        return self._faults().active()


# The operations the channel serves: each a method of ControlPlane.
OPERATIONS = (
    "workload_rows",
    "component_status",
    "quota_status",
    "settings",
    "revision_status",
    "timings",
    "served",
    "set_bounds",
    "promote",
    "restore",
    "reconfigure",
    "chaos_inject",
    "chaos_heal",
    "chaos_faults",
)


class _ChannelServer(socketserver.ThreadingUnixStreamServer):
    # socketserver's default backlog is 5. Checks run side by side (overlapped serving checks, a
    # background check, their pollers), and while the accepting thread waits for a CPU a sixth
    # caller would be refused at once: a Unix socket does not queue past its backlog.
    request_queue_size = 128


class ControlServer:
    def __init__(self, control: ControlPlane, path: Path) -> None:
        self.path = path

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline(MAX_REQUEST))
                    op = str(request["op"])
                    if op not in OPERATIONS:
                        raise PlatformError(f"unknown control operation {op!r}", f"use one of {', '.join(OPERATIONS)}")
                    result = getattr(control, op)(*request.get("args", []))
                    answer: dict[str, Any] = {"ok": None if result is None else to_json(result)}
                except InferboxError as exc:
                    answer = {"error": {"problem": exc.problem, "fix": exc.fix}}
                except Exception as exc:  # the caller gets the failure, the platform keeps running
                    answer = {"error": {"problem": f"{type(exc).__name__}: {exc}", "fix": ""}}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        path.unlink(missing_ok=True)
        self._server = _ChannelServer(str(path), Handler)
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
            connect_unix(sock, path)
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


class RemoteControl:
    """A kept platform's control plane, through its channel."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _call(self, kind: Any, op: str, *args: Any) -> Any:
        return parse(kind, call(self.path, op, *args), f"the control channel's answer to {op}")

    def workload_rows(self) -> list[WorkloadRow]:
        rows: list[WorkloadRow] = self._call(list[WorkloadRow], "workload_rows")
        return rows

    def component_status(self) -> dict[str, ComponentStatus]:
        status: dict[str, ComponentStatus] = self._call(dict[str, ComponentStatus], "component_status")
        return status

    def quota_status(self, tenant: str) -> QuotaStatus | None:
        status: QuotaStatus | None = self._call(QuotaStatus | None, "quota_status", tenant)
        return status

    def settings(self, namespace: str, name: str) -> AutoscalingSettings:
        settings: AutoscalingSettings = self._call(AutoscalingSettings, "settings", namespace, name)
        return settings

    def revision_status(self, namespace: str, name: str) -> list[RevisionStatus]:
        found: list[RevisionStatus] = self._call(list[RevisionStatus], "revision_status", namespace, name)
        return found

    def timings(self, namespace: str, name: str, since: float) -> list[ReplicaTiming]:
        found: list[ReplicaTiming] = self._call(list[ReplicaTiming], "timings", namespace, name, since)
        return found

    def served(self, namespace: str, name: str) -> dict[str, int]:
        counts: dict[str, int] = self._call(dict[str, int], "served", namespace, name)
        return counts

    def set_bounds(self, namespace: str, name: str, low: int | None, high: int | None, settle_s: float) -> ScaleOutcome:
        outcome: ScaleOutcome = self._call(ScaleOutcome, "set_bounds", namespace, name, low, high, settle_s)
        return outcome

    def promote(self, namespace: str, name: str, settle_s: float) -> None:
        call(self.path, "promote", namespace, name, settle_s)

    def reconfigure(self, manifests_dir: str, knobs: str) -> list[str]:
        parts: list[str] = self._call(list[str], "reconfigure", manifests_dir, knobs)
        return parts

    def restore(self, namespace: str, name: str, settle_s: float) -> None:
        call(self.path, "restore", namespace, name, settle_s)

    def chaos_inject(self, kind: str, target: dict[str, Any], seconds: float) -> Fault:
        fault: Fault = self._call(Fault, "chaos_inject", kind, target, seconds)
        return fault

    def chaos_heal(self, fault_id: str) -> Fault:
        fault: Fault = self._call(Fault, "chaos_heal", fault_id)
        return fault

    def chaos_faults(self) -> list[Fault]:
        faults: list[Fault] = self._call(list[Fault], "chaos_faults")
        return faults


def control_socket(state_dir: Path) -> Path:
    """Where the kept platform in ``state_dir`` serves its control channel."""
    return socket_dir_for(state_dir) / SOCKET_NAME


def remote(state_dir: Path) -> RemoteControl | None:
    """The control channel of a kept platform in ``state_dir``, if it answers."""
    path = control_socket(state_dir)
    if not path.exists():
        return None
    with contextlib.suppress(PlatformError):
        call(path, "component_status")
        return RemoteControl(path)
    return None
