"""The embedded platform's deployer: what the kubelet and the ReplicaSet controller do on a cluster.

It owns the replicas of every workload: admits a pod against its namespace's quota, creates its
network place, starts its process (and, in an injected namespace, its sidecar), waits until it is
ready and stops it. Whoever cares about replicas subscribes instead of reaching in: the serving
control plane republishes a model's endpoints before a replica goes, observability rewrites the
scrape configuration when one is ready or gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inferbox.embedded.events import EventLog
from inferbox.embedded.health import pod_http_status, wait_until
from inferbox.embedded.mesh_plan import PodMeta
from inferbox.embedded.mesh_runtime import MeshControlPlane
from inferbox.embedded.network import Network, Pod
from inferbox.embedded.processes import ManagedProcess, Supervisor, is_same_process
from inferbox.embedded.quota import QuotaExceeded
from inferbox.embedded.replica_template import ReplicaTemplate, model_server_args
from inferbox.embedded.state import ComponentStatus, WorkloadRow
from inferbox.embedded.workloads import WorkloadSpec, secret_dir, service_selects, service_target_port
from inferbox.errors import PlatformError
from inferbox.manifests import ManifestSet
from inferbox.mesh import ScaleOutcome

Endpoint = tuple[str, int]
# How often the deployer notices a replica whose process died: the kubelet's pod lifecycle event
# generator relists containers every second, and only then do endpoints and controllers learn of it.
RELIST_S = 1.0


@dataclass
class Replica:
    workload: WorkloadSpec
    index: int
    pod: Pod
    process: ManagedProcess
    requested_at: float
    meta: PodMeta
    ready_at: float | None = None
    # With a sidecar (injected namespace), the application listens on loopback inside the pod at
    # app_port and the sidecar owns the pod's service port.
    sidecar: ManagedProcess | None = None
    app_port: int | None = None
    draining: bool = False  # being removed: out of the gateway's endpoints, finishing its requests

    @property
    def app_endpoint(self) -> Endpoint:
        """Where the application itself listens, as seen from inside its own pod."""
        if self.app_port is None:
            return self.endpoint
        return "127.0.0.1", self.app_port

    @property
    def endpoint(self) -> Endpoint:
        return self.pod.endpoint(self.workload.port)

    @property
    def name(self) -> str:
        return f"{self.workload.component}-{self.index}"

    @property
    def serving(self) -> bool:
        """Ready and not on its way out: the gateway may send it requests."""
        return self.ready_at is not None and not self.draining


class PodDecorations(Protocol):
    """What observability adds to a pod: telemetry settings of its process and of its sidecar."""

    def workload_env(self, spec: WorkloadSpec, pod: Pod) -> dict[str, str]: ...

    def sidecar_decorator(
        self, spec: WorkloadSpec, pod: Pod, app: Endpoint
    ) -> Callable[[dict[str, Any]], None] | None: ...


ReplicaHook = Callable[[Replica], None]


class Deployer:
    def __init__(
        self,
        manifests: ManifestSet,
        workloads: list[WorkloadSpec],
        network: Network,
        supervisor: Supervisor,
        mesh: MeshControlPlane,
        decorations: PodDecorations,
        events: EventLog,
        state_dir: Path,
        ready_timeout_s: float,
        template: ReplicaTemplate | None = None,
    ) -> None:
        self.manifests = manifests
        self.workloads = workloads
        self.network = network
        self.supervisor = supervisor
        self.mesh = mesh
        self.decorations = decorations
        self.events = events
        self.state_dir = state_dir
        self.ready_timeout_s = ready_timeout_s
        self.template = template  # model-server replicas are forked from it (skipping their imports)
        # Held while the replica lists change; the serving control plane holds it too while it
        # counts replicas, so a replica being created is never counted twice.
        self.lock = threading.RLock()
        self._replicas: dict[str, list[Replica]] = {}
        self._next_index: dict[str, int] = {}
        self._on_ready: list[ReplicaHook] = []
        self._on_removing: list[ReplicaHook] = []
        self._on_gone: list[ReplicaHook] = []
        self._desired: dict[str, int] = {}  # Deployments' replicas, as their ReplicaSets want them
        self._watching = threading.Event()

    # -- subscriptions -------------------------------------------------------------------------
    def when_ready(self, hook: ReplicaHook) -> None:
        """``hook`` runs after a replica became ready (and before whoever waited on it goes on)."""
        self._on_ready.append(hook)

    def when_removing(self, hook: ReplicaHook) -> None:
        """``hook`` runs after a replica left the list and before its processes are stopped."""
        self._on_removing.append(hook)

    def when_gone(self, hook: ReplicaHook) -> None:
        """``hook`` runs after a replica's processes and pod are gone."""
        self._on_gone.append(hook)

    # -- what runs -----------------------------------------------------------------------------
    def spec(self, namespace: str, name: str) -> WorkloadSpec:
        for spec in self.workloads:
            if (spec.namespace, spec.name) == (namespace, name):
                return spec
        raise PlatformError(f"no workload {namespace}/{name}", "name a Deployment or InferenceService of the manifests")

    def replicas(self, component: str) -> list[Replica]:
        with self.lock:
            return list(self._replicas.get(component, []))

    def all_replicas(self) -> list[Replica]:
        with self.lock:
            return [r for replicas in self._replicas.values() for r in replicas]

    def service_endpoints(self, namespace: str, name: str, port: int, ready_only: bool = True) -> list[Endpoint]:
        """The endpoints behind a Service port, as its EndpointSlice would list them."""
        service = self.manifests.get("Service", name, namespace)
        if service is None:
            return []
        endpoints = []
        for spec in self.workloads:
            if service_selects(service, spec):
                target = service_target_port(service, port, spec)
                endpoints += [
                    r.pod.endpoint(target)
                    for r in self.replicas(spec.component)
                    if r.ready_at is not None or not ready_only
                ]
        return endpoints

    # -- starting ------------------------------------------------------------------------------
    def start_replica(self, spec: WorkloadSpec) -> Replica:
        """Creates a replica's pod (quota admission first: QuotaExceeded names the limit), its process
        and, in an injected namespace, its sidecar. The caller waits for it with ``wait_ready``."""
        with self.lock:
            existing = self._replicas.setdefault(spec.component, [])
            # Never reuse an index: a replica still draining keeps its pod (and name) until it stops.
            index = max(self._next_index.get(spec.component, 0), max((r.index for r in existing), default=-1) + 1)
            self._next_index[spec.component] = index + 1
            name = f"{spec.component}-{index}"
            meta = PodMeta(spec.namespace, f"{spec.name}-{index}", spec.service_account, dict(spec.labels))
            self.mesh.admit(meta, list(spec.resources) or [{}])
            pod = self.network.add_pod(name)
            process = self._start_process(name, spec, pod)
            replica = Replica(spec, index, pod, process, time.monotonic(), meta)
            if self._has_sidecar(spec):
                replica.app_port = self._app_port(spec, pod)
                app = ("127.0.0.1", replica.app_port)
                replica.sidecar = self.mesh.start_sidecar(
                    name, pod, meta, pod.port(spec.port), app, self.decorations.sidecar_decorator(spec, pod, app)
                )
            existing.append(replica)
            self.mesh.register(pod, meta)
            return replica

    def wait_ready(self, replica: Replica) -> None:
        """Until the replica answers its readiness path (and its sidecar is ready); then subscribers
        hear of it. Raises PlatformError with the replica's log when it exits or times out."""
        spec = replica.workload
        app_host, app_port = replica.app_endpoint if replica.sidecar else (None, replica.pod.port(spec.port))

        def ready() -> bool:
            return pod_http_status(replica.pod, app_port, spec.ready_path, host=app_host) == 200

        def dead() -> str | None:
            if replica.process.alive():
                return None
            return (
                f"its process exited (code {replica.process.exit_code()}); log {replica.process.log_path}:\n"
                f"{replica.process.log_tail()}"
            )

        wait_until(
            replica.name,
            ready,
            self.ready_timeout_s,
            dead,
            fix=f"see {replica.process.log_path}; raise INFERBOX_READY_TIMEOUT on a slow machine",
        )
        if replica.sidecar is not None:
            self.mesh.wait_sidecar_ready(replica.name, replica.pod, replica.sidecar, self.ready_timeout_s)
        replica.ready_at = time.monotonic()
        for hook in self._on_ready:
            hook(replica)

    def wait_all_ready(self, replicas: list[Replica]) -> None:
        """Waits for replicas side by side; raises the first failure once all have finished."""
        errors: list[BaseException] = []

        def wait(replica: Replica) -> None:
            try:
                self.wait_ready(replica)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=wait, args=(r,), name=f"ready-{r.name}") for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # -- stopping ------------------------------------------------------------------------------
    def stop_replica(self, replica: Replica) -> None:
        """Removes a replica: subscribers take it out of endpoints first, then its processes, pod and
        quota go."""
        spec = replica.workload
        with self.lock:
            replicas = self._replicas.get(spec.component, [])
            if replica in replicas:
                replicas.remove(replica)
        for hook in self._on_removing:
            hook(replica)
        for process in (replica.sidecar, replica.process):
            if process is not None:
                self.supervisor.stop(process)
        with self.lock:
            self.mesh.unregister(replica.pod, replica.meta)
            self.network.remove_pod(replica.pod.name)
        for hook in self._on_gone:
            hook(replica)

    def forget_all(self) -> None:
        """The platform stopped every process itself: nothing is left to track."""
        self._watching.clear()
        with self.lock:
            self._replicas.clear()

    def stop_watching(self) -> None:
        """The platform is stopping its processes: their exits are not crashes to repair."""
        self._watching.clear()

    # -- dead replicas (the kubelet and the ReplicaSet controller) -------------------------------
    def kill(self, replica: Replica) -> None:
        """SIGKILL to every process of the replica at once, as a pod deleted with grace 0; the
        liveness watch removes it and a replacement comes from its controller."""
        for process in (replica.sidecar, replica.process):
            if process is not None and is_same_process(process.pid, process.start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    def watch_liveness(self) -> None:
        """Starts noticing replicas whose processes died (every RELIST_S): they leave the endpoints
        and their pods go; a Deployment gets a replacement (an InferenceService's comes from the
        autoscaler, which sees one replica fewer)."""
        self._watching.set()
        threading.Thread(target=self._liveness_loop, name="liveness", daemon=True).start()

    def _liveness_loop(self) -> None:
        while self._watching.is_set():
            time.sleep(RELIST_S)  # the relist period: this is the kubelet's own cadence
            try:
                self._reap_dead()
            except Exception as exc:  # the watch must survive one bad pass; the event log says why
                self.events.record("kube-system", "LivenessWatchFailed", f"{type(exc).__name__}: {exc}")

    def _reap_dead(self) -> None:
        with self.lock:
            dead = [
                r
                for r in self.all_replicas()
                if r.ready_at is not None
                and not r.draining
                and any(p is not None and not p.alive() for p in (r.process, r.sidecar))
            ]
            for replica in dead:
                replica.draining = True
        for replica in dead:
            if not self._watching.is_set():
                return  # the platform is stopping: nothing is restarted or replaced any more
            if replica.workload.kind == "Deployment":
                # A crashed container is restarted in its pod (restartPolicy: Always): same address.
                self.events.record(replica.workload.namespace, "ContainerRestarted", f"{replica.name} exited")
                self.restart_in_place(replica)
                continue
            # A model replica's pod was deleted (chaos kills it that way): it goes, its revision's
            # autoscaler sees one replica fewer and starts a replacement.
            self.events.record(replica.workload.namespace, "ReplicaDied", f"{replica.name} exited; removing it")
            self.stop_replica(replica)

    def restart_in_place(self, replica: Replica) -> None:
        """Starts the replica's process again in its own pod and waits until it is ready (the kubelet
        restarting a container); it then serves again."""
        spec, pod = replica.workload, replica.pod
        with contextlib.suppress(ValueError):
            self.supervisor.processes.remove(replica.process)
        replica.ready_at = None
        replica.process = self.supervisor.start(replica.name, self._argv_for(spec, pod), pod, self._env_for(spec, pod))
        self.wait_ready(replica)
        replica.draining = False

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> ScaleOutcome:
        """Runs a Deployment at ``replicas`` replicas, as far as its namespace's quota allows (the
        first refusal stops it and is recorded as an event). Returns once new replicas are ready."""
        spec = self.spec(namespace, name)
        self._desired[spec.component] = replicas
        mark = self.events.mark()
        started: list[Replica] = []
        while len(self.replicas(spec.component)) < replicas:
            try:
                started.append(self.start_replica(spec))
            except QuotaExceeded:
                break
        self.wait_all_ready(started)
        current = self.replicas(spec.component)
        for replica in sorted(current, key=lambda r: r.index, reverse=True)[: max(0, len(current) - replicas)]:
            self.stop_replica(replica)
        refusals = tuple(e.message for e in self.events.since(mark, namespace))
        return ScaleOutcome(replicas, len(self.replicas(spec.component)), refusals)

    # -- facts ---------------------------------------------------------------------------------
    def workload_rows(self) -> list[WorkloadRow]:
        """Every model replica as mesh clients address it."""
        rows = []
        for r in self.all_replicas():
            if r.workload.kind != "InferenceService":
                continue
            host, port = r.endpoint
            rows.append(
                WorkloadRow(
                    namespace=r.workload.namespace,
                    name=r.meta.name,
                    model=r.workload.name,
                    service_account=r.workload.service_account,
                    address=host,
                    ports=(("http", port),),
                    labels=dict(r.meta.labels),
                    sidecar=r.sidecar is not None,
                    ready=r.serving,
                )
            )
        return rows

    def component_rows(self) -> dict[str, ComponentStatus]:
        rows: dict[str, ComponentStatus] = {}
        for r in self.all_replicas():
            rows[r.name] = ComponentStatus(
                alive=r.process.alive(),
                pid=r.process.pid,
                start_time=r.process.start_time,
                log=str(r.process.log_path),
                ready=r.ready_at is not None,
                pod_ip=r.pod.ip,
                port=r.endpoint[1],
                workload=r.workload.component,
            )
            if r.sidecar is not None:
                rows[f"{r.name}-sidecar"] = process_status(r.sidecar)
        return rows

    # -- how a replica is started ----------------------------------------------------------------
    def _start_process(self, name: str, spec: WorkloadSpec, pod: Pod) -> ManagedProcess:
        argv, env = self._argv_for(spec, pod), self._env_for(spec, pod)
        args = model_server_args(argv)
        if self.template is not None and args is not None and self.template.available():
            return self.template.spawn(name, args, pod, {**os.environ, **env})
        return self.supervisor.start(name, argv, pod, env)

    def _has_sidecar(self, spec: WorkloadSpec) -> bool:
        return self.mesh.injected(spec.namespace)

    def _env_for(self, spec: WorkloadSpec, pod: Pod) -> dict[str, str]:
        env = dict(spec.env)
        for name, value in env.items():
            for mount, secret in spec.secret_mounts.items():
                if value == mount or value.startswith(mount.rstrip("/") + "/"):
                    env[name] = str(secret_dir(self.state_dir, secret)) + value[len(mount.rstrip("/")) :]
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # the template's too (platform.REPLICA_WARNINGS)
        if not pod.netns or self._has_sidecar(spec):
            env["INFERBOX_BIND_HOST"] = "127.0.0.1"
        env.update(self.decorations.workload_env(spec, pod))
        return env

    def _app_port(self, spec: WorkloadSpec, pod: Pod) -> int:
        """The application's port: its container port, on the pod's loopback when a sidecar owns the
        pod's address (in a namespace); a separate loopback port when pods share the host's loopback."""
        if self._has_sidecar(spec) and not pod.netns:
            return pod.port(spec.port + 10000)
        return pod.port(spec.port)

    def _argv_for(self, spec: WorkloadSpec, pod: Pod) -> list[str]:
        port = self._app_port(spec, pod)
        if spec.kind == "Deployment":
            open_host = pod.netns and not self._has_sidecar(spec)
            host = "0.0.0.0" if open_host else "127.0.0.1"  # noqa: S104 - inside the pod's own namespace
            return [*spec.argv, "--port", str(port), "--host", host]
        return [*spec.argv, f"--http_port={port}"]


def process_status(process: ManagedProcess) -> ComponentStatus:
    return ComponentStatus(
        alive=process.alive(), pid=process.pid, start_time=process.start_time, log=str(process.log_path)
    )
