"""Chaos on the embedded target: faults injected by the process that owns the platform.

Faults live here, in the owner, because the owner is what outlives a chaos run: every fault with
something to undo (a stalled replica, a stopped component, a partition) gets a timer that rolls it
back at its bound, whoever asked for it and whatever became of them. A chaos run that crashes
therefore leaves nothing behind once the bound has passed; if the owner itself dies, the reaper
kills every process and deletes every network namespace (and with them the partition rules).

- a replica is killed as a pod deleted with grace 0: SIGKILL to its processes; the deployer's
  liveness watch notices within the kubelet's relist period and the autoscaler replaces it;
- a replica is stalled with SIGSTOP of its model server's process group, SIGCONT at the bound;
- the gateway is killed with SIGKILL; the supervisor's restart policy starts it again;
- the token issuer is scaled to zero and back (its Deployment), the telemetry stack (Prometheus
  and the trace store) is killed and started again with the same command, data and addresses;
- a partition drops, inside every pod of a tenant, whatever comes from the gateway's pod and the
  activator (the gateway's hops): nftables in the pod's own namespace, in a table of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from inferbox.contract_types import STOPPABLE_COMPONENTS, Fault, FaultKind
from inferbox.embedded import netpol
from inferbox.embedded.deployer import Deployer, Replica
from inferbox.embedded.gateway import EmbeddedGateway
from inferbox.embedded.gateway_plan import jwks_service
from inferbox.embedded.network import Network, Pod
from inferbox.embedded.observability import EmbeddedObservability
from inferbox.embedded.processes import ManagedProcess, Supervisor, is_same_process
from inferbox.embedded.workloads import service_selects
from inferbox.errors import PlatformError
from inferbox.manifests import ManifestSet
from inferbox.waiting import eventually

CHAOS_TABLE = "inferbox_chaos"
MAX_FAULT_S = 120.0  # no fault may last longer, whatever the caller asks for
STARTING_WAIT_S = 30.0  # how long a kill of a starting replica waits for one to start


def partition_script(sources: list[str]) -> str:
    """The nft script that drops everything from ``sources`` into a pod (its own table, replaced atomically)."""
    return (
        f"table inet {CHAOS_TABLE}\n"
        f"delete table inet {CHAOS_TABLE}\n"
        f"table inet {CHAOS_TABLE} {{\n"
        "  chain input {\n"
        # Before the NetworkPolicy table (priority 0): the partition wins whatever the policies allow.
        "    type filter hook input priority -10; policy accept;\n"
        f"    ip saddr {{ {', '.join(sources)} }} drop\n"
        "  }\n"
        "}\n"
    )


def heal_script() -> str:
    return f"table inet {CHAOS_TABLE}\ndelete table inet {CHAOS_TABLE}\n"


def signal_group(process: ManagedProcess, sig: signal.Signals) -> None:
    """Signals the process group a platform process leads (each runs in its own session)."""
    if not is_same_process(process.pid, process.start_time):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@dataclass
class _Active:
    fault: Fault
    undo: Callable[[], None]
    timer: threading.Timer | None


class ChaosControl:
    """The faults of one embedded platform, injected and rolled back in the process that owns it."""

    def __init__(
        self,
        manifests: ManifestSet,
        network: Network,
        supervisor: Supervisor,
        deployer: Deployer,
        gateway: EmbeddedGateway,
        observability: EmbeddedObservability,
        activator_pod: Callable[[], Pod | None],
        partition_all_tenants: bool = False,
    ) -> None:
        self.manifests = manifests
        self.network = network
        self.supervisor = supervisor
        self.deployer = deployer
        self.gateway = gateway
        self.observability = observability
        self.activator_pod = activator_pod
        self.partition_all_tenants = partition_all_tenants
        self._lock = threading.RLock()
        self._active: dict[str, _Active] = {}
        self._history: list[Fault] = []

    # -- the operations the control channel serves ----------------------------------------------
    def inject(self, kind: str, target: dict[str, Any], seconds: float) -> Fault:
        handlers: dict[str, Callable[[dict[str, Any], float], Fault]] = {
            FaultKind.REPLICA_KILL: self._kill_replica,
            FaultKind.REPLICA_PAUSE: self._pause_replica,
            FaultKind.GATEWAY_KILL: self._kill_gateway,
            FaultKind.COMPONENT_STOP: self._stop_component,
            FaultKind.PARTITION: self._partition,
        }
        if kind not in handlers:
            raise PlatformError(f"unknown fault kind {kind!r}", f"use one of {', '.join(handlers)}")
        if kind in (FaultKind.REPLICA_PAUSE, FaultKind.COMPONENT_STOP, FaultKind.PARTITION) and not (
            0 < seconds <= MAX_FAULT_S
        ):
            raise PlatformError(f"a fault of {seconds}s is outside (0, {MAX_FAULT_S:g}] s", "choose a shorter fault")
        return handlers[kind](target, seconds)

    def heal(self, fault_id: str) -> Fault:
        with self._lock:
            active = self._active.pop(fault_id, None)
            if active is None:
                done = [f for f in self._history if f.id == fault_id]
                if not done:
                    raise PlatformError(f"no fault {fault_id} on this platform", "list faults with Platform.faults()")
                return done[-1]
            if active.timer is not None:
                active.timer.cancel()
        try:
            active.undo()
        finally:
            healed = replace(active.fault, healed=time.time())
            with self._lock:
                self._history.append(healed)
        return healed

    def active(self) -> list[Fault]:
        with self._lock:
            return [a.fault for a in self._active.values()]

    def heal_all(self) -> None:
        for fault in self.active():
            with contextlib.suppress(Exception):  # stopping: everything goes anyway
                self.heal(fault.id)

    # -- bookkeeping -----------------------------------------------------------------------------
    def _record(self, kind: FaultKind, target: str, seconds: float, undo: Callable[[], None], detail: str) -> Fault:
        fault = Fault(f"{kind.value}-{secrets.token_hex(3)}", kind.value, target, time.time(), seconds, None, detail)
        timer = threading.Timer(seconds, self._expire, args=(fault.id,))
        timer.daemon = True
        with self._lock:
            self._active[fault.id] = _Active(fault, undo, timer)
        timer.start()
        return fault

    def _expire(self, fault_id: str) -> None:
        with contextlib.suppress(PlatformError):
            self.heal(fault_id)

    def _done(self, kind: FaultKind, target: str, detail: str) -> Fault:
        fault = Fault(f"{kind.value}-{secrets.token_hex(3)}", kind.value, target, time.time(), 0.0, None, detail)
        with self._lock:
            self._history.append(fault)
        return fault

    # -- replicas --------------------------------------------------------------------------------
    def _replica(self, target: dict[str, Any]) -> Replica:
        component = f"{target['tenant']}.{target['model']}"
        if target.get("starting"):
            return self._starting(component)
        ready = sorted((r for r in self.deployer.replicas(component) if r.serving), key=lambda r: r.index)
        index = int(target.get("replica", 0))
        if not 0 <= index < len(ready):
            raise PlatformError(
                f"{target['tenant']}/{target['model']} has {len(ready)} ready replica(s); there is no replica {index}",
                "scale the model first (Platform.set_scale_bounds) or pick an existing replica",
            )
        return ready[index]

    def _starting(self, component: str) -> Replica:
        """A replica of the model being started (not ready yet), waiting for the autoscaler's."""

        def found() -> Replica:
            starting = [r for r in self.deployer.replicas(component) if r.ready_at is None and not r.draining]
            assert starting, f"no replica of {component} is starting"
            return starting[0]

        try:
            return eventually(found, STARTING_WAIT_S, 0.02)
        except AssertionError as exc:
            raise PlatformError(str(exc), "send a request to the model at zero first (the activator wakes it)") from exc

    def _kill_replica(self, target: dict[str, Any], _seconds: float) -> Fault:
        replica = self._replica(target)
        self.deployer.kill(replica)
        return self._done(
            FaultKind.REPLICA_KILL,
            f"{target['tenant']}/{target['model']} replica {replica.name}",
            "SIGKILL to the model server and its sidecar (a pod deleted with grace 0)"
            + (" while it was starting" if target.get("starting") else ""),
        )

    def _pause_replica(self, target: dict[str, Any], seconds: float) -> Fault:
        replica = self._replica(target)
        process = replica.process
        signal_group(process, signal.SIGSTOP)
        return self._record(
            FaultKind.REPLICA_PAUSE,
            f"{target['tenant']}/{target['model']} replica {replica.name}",
            seconds,
            lambda: signal_group(process, signal.SIGCONT),
            f"SIGSTOP to the model server's process group {process.pid}",
        )

    # -- the gateway -----------------------------------------------------------------------------
    def _kill_gateway(self, _target: dict[str, Any], _seconds: float) -> Fault:
        process = self.gateway.process
        if process is None or not process.alive():
            raise PlatformError("the gateway is not running", "wait until the platform restarted it")
        signal_group(process, signal.SIGKILL)
        return self._done(FaultKind.GATEWAY_KILL, "gateway", f"SIGKILL to Envoy (pid {process.pid})")

    # -- components ------------------------------------------------------------------------------
    def _stop_component(self, target: dict[str, Any], seconds: float) -> Fault:
        name = str(target.get("component", ""))
        if name not in STOPPABLE_COMPONENTS:
            raise PlatformError(f"no stoppable component {name!r}", f"use one of {', '.join(STOPPABLE_COMPONENTS)}")
        if name == "token-issuer":
            namespace, workload = self._issuer()
            replicas = self.deployer.replicas(self.deployer.spec(namespace, workload).component)
            for replica in replicas:
                replica.draining = True  # held down: the liveness watch does not restart it
                signal_group(replica.process, signal.SIGKILL)

            def undo() -> None:
                for replica in replicas:
                    self.deployer.restart_in_place(replica)

            return self._record(
                FaultKind.COMPONENT_STOP,
                name,
                seconds,
                undo,
                f"the containers of Deployment {namespace}/{workload} killed and held down",
            )
        stopped = [(key, c.process) for key, c in self.observability.components().items()]
        if not stopped:
            raise PlatformError("this platform runs no telemetry stack", "its manifests define no monitors or tracing")
        for _, process in stopped:
            signal_group(process, signal.SIGKILL)
        return self._record(
            FaultKind.COMPONENT_STOP,
            name,
            seconds,
            lambda: self._respawn_telemetry(stopped),
            "SIGKILL to " + ", ".join(key for key, _ in stopped),
        )

    def _issuer(self) -> tuple[str, str]:
        """The Deployment behind the JWKS URI the gateway's SecurityPolicies name."""
        for policy in self.manifests.of_kind("SecurityPolicy"):
            for provider in (policy.spec.get("jwt") or {}).get("providers") or []:
                where = jwks_service(provider["remoteJWKS"]["uri"])
                service = self.manifests.get("Service", where[1], where[0]) if where else None
                if service is None:
                    continue
                for spec in self.deployer.workloads:
                    if spec.kind == "Deployment" and service_selects(service, spec):
                        return spec.namespace, spec.name
        raise PlatformError("no Deployment serves the JWKS of any SecurityPolicy", "check the manifests")

    def _respawn_telemetry(self, stopped: list[tuple[str, ManagedProcess]]) -> None:
        components = self.observability.components()
        for key, old in stopped:
            assert old.popen is not None, "telemetry processes are started by the supervisor"
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                old.popen.wait(timeout=5)
            with contextlib.suppress(ValueError):
                self.supervisor.processes.remove(old)
            argv = [str(a) for a in list(old.popen.args)[len(old.pod.exec_prefix()) :]]  # type: ignore[arg-type]
            components[key].process = self.supervisor.start(old.name, argv, old.pod)

    # -- partitions ------------------------------------------------------------------------------
    def _partition(self, target: dict[str, Any], seconds: float) -> Fault:
        tenant = str(target.get("tenant", ""))
        if not self.network.isolated:
            raise PlatformError(
                "a partition needs pods in network namespaces", "run the platform as root (--network netns)"
            )
        sources = [self.gateway.pod.ip]
        activator = self.activator_pod()
        if activator is not None:
            sources.append(activator.ip)
        cut = [
            r.pod
            for r in self.deployer.all_replicas()
            if r.pod.netns and (r.workload.namespace == tenant or self.partition_all_tenants)
        ]
        if not any(r.workload.namespace == tenant for r in self.deployer.all_replicas()):
            raise PlatformError(f"tenant {tenant!r} runs no pod to cut off", "hold its models warm first")
        script = partition_script(sources)
        applied: list[Pod] = []
        try:
            for pod in cut:
                assert pod.netns is not None
                netpol.apply(pod.netns, script, "the partition rules")
                applied.append(pod)
        except BaseException:
            self._unpartition(applied)
            raise

        return self._record(
            FaultKind.PARTITION,
            tenant,
            seconds,
            lambda: self._unpartition(applied),
            f"nftables drop of {', '.join(sources)} in {len(applied)} pod(s)",
        )

    def _unpartition(self, pods: list[Pod]) -> None:
        for pod in pods:
            if pod.netns and pod.name in self.network.pods:  # a pod that is gone took its rules with it
                with contextlib.suppress(PlatformError):
                    netpol.apply(pod.netns, heal_script(), "the partition rules")
