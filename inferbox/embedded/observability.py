"""Metrics and traces on the embedded target: Prometheus and the trace store as pods, fed by the
manifests' monitors and telemetry settings.

- The trace store (``python -m inferbox.tracestore``) runs in pod ``monitoring.jaeger``: OTLP/HTTP
  intake on 4318 for the gateway's Envoy and the model servers, Jaeger's query API on 16686.
- Prometheus (Debian's ``prometheus``) runs in pod ``monitoring.prometheus`` with the config
  generated from the PodMonitors/ServiceMonitors (monitors.py) for the pods the platform runs
  (``pod_views``); it is rewritten and reloaded (SIGHUP) whenever pods change.
- The host reaches both through port-forwards (portforward.py); on the loopback network they
  listen on 127.0.0.1 directly.

Scrape and export intervals are short on purpose (1 s), so checks that wait for a request to show
up in Prometheus or in the trace store finish in seconds; the contract reports them, and checks
derive their deadlines from them.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferbox.embedded import monitors
from inferbox.embedded.deployer import Deployer, Replica
from inferbox.embedded.events import EventLog
from inferbox.embedded.health import pod_http_status, wait_until
from inferbox.embedded.mesh_plan import PodMeta
from inferbox.embedded.network import Network, Pod
from inferbox.embedded.portforward import PortForward
from inferbox.embedded.processes import ManagedProcess, Supervisor
from inferbox.embedded.state import TelemetryState
from inferbox.embedded.tracing import (
    GATEWAY_METRICS_PORT,
    GatewayTracing,
    add_gateway_metrics,
    add_gateway_tracing,
    add_merged_metrics,
    gateway_metrics_enabled,
    gateway_tracing,
    mesh_tracing,
)
from inferbox.embedded.workloads import WorkloadSpec
from inferbox.errors import PlatformError
from inferbox.manifests import ManifestSet

PROMETHEUS_PORT = 9090
OTLP_PORT = 4318
QUERY_PORT = 16686
# Istio's agent serves a pod's merged metrics on its status port; the sidecar's own stats port.
MERGED_METRICS_PORT = 15020
SIDECAR_STATS_PORT = 15090
SCRAPE = monitors.ScrapeSettings(interval="1s", timeout="1s", evaluation_interval="1s")
SCRAPE_INTERVAL_S = 1.0
TRACE_EXPORT_INTERVAL_MS = 1000
# What NetworkPolicies see of the two pods: the labels the Jaeger chart and prometheus-operator give
# theirs (a tenant's policy admits Prometheus to the merged-metrics ports by these).
TRACE_STORE_META = PodMeta(
    "monitoring",
    "jaeger-0",
    "jaeger",
    {"app.kubernetes.io/name": "jaeger", "app.kubernetes.io/component": "all-in-one"},
)
PROMETHEUS_META = PodMeta(
    "monitoring",
    "prometheus-prometheus-kube-prometheus-prometheus-0",
    "prometheus-kube-prometheus-prometheus",
    {"app.kubernetes.io/name": "prometheus", "prometheus": "prometheus-kube-prometheus-prometheus"},
)
Register = Callable[[Pod, PodMeta], None]
INSTALL_HINT = "sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus"


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        raise PlatformError(
            "the embedded platform's manifests define PodMonitors/ServiceMonitors, but the `prometheus` binary "
            "is not installed",
            f"install it with: {INSTALL_HINT} (or run `make setup` as root, which installs it)",
        )
    return found


def prometheus_version() -> str:
    import subprocess

    done = subprocess.run([prometheus_binary(), "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()[:1]
    return first[0].split("version", 1)[-1].split("(")[0].strip() if first else "unknown"


def _injected(manifests: ManifestSet, namespace: str) -> bool:
    ns = manifests.get("Namespace", namespace)
    return bool(ns and ns.labels.get("istio-injection") == "enabled")


@dataclass
class _Component:
    pod: Pod
    process: ManagedProcess
    forward: PortForward | None
    url: str


class EmbeddedObservability:
    """Owns Prometheus, the trace store and their port-forwards for one embedded platform."""

    def __init__(self, manifests: ManifestSet, gateway: str) -> None:
        self.manifests = manifests
        self.gateway = gateway
        self.metrics = monitors.has_monitors(manifests)
        self.gateway_metrics = self.metrics and gateway_metrics_enabled(manifests)
        self.gateway_tracing: GatewayTracing | None = gateway_tracing(manifests, gateway)
        model_namespaces = {i.namespace or "default" for i in manifests.of_kind("InferenceService")}
        self.mesh = {ns: mesh_tracing(manifests, ns) for ns in model_namespaces if _injected(manifests, ns)}
        self.tracing = self.gateway_tracing is not None or any(self.mesh.values())
        self.prometheus_bin = prometheus_binary() if self.metrics else ""
        self.store: _Component | None = None
        self.prometheus: _Component | None = None
        self._config_path: Path | None = None
        self._lock = threading.Lock()  # replicas start and stop from several threads
        self._deployer: Deployer | None = None
        self._gateway_pod: Pod | None = None
        self._events: EventLog | None = None
        # Pods of other parts that Kubernetes discovery would list too (the AI Gateway's proxy).
        self.extra_views: list[monitors.PodView] = []

    @property
    def enabled(self) -> bool:
        return self.metrics or self.tracing

    # -- the trace store -------------------------------------------------------------------
    def start_trace_store(
        self, network: Network, supervisor: Supervisor, timeout_s: float, register: Register | None = None
    ) -> None:
        if not self.tracing:
            return
        pod = network.add_pod("monitoring.jaeger")
        if register:
            register(pod, TRACE_STORE_META)
        host = "0.0.0.0" if pod.netns else "127.0.0.1"  # noqa: S104 - inside the store's own namespace
        process = supervisor.start(
            "trace-store",
            [
                sys.executable,
                "-m",
                "inferbox.tracestore",
                "--host",
                host,
                "--otlp-port",
                str(pod.port(OTLP_PORT)),
                "--query-port",
                str(pod.port(QUERY_PORT)),
            ],
            pod,
        )
        _wait_http(pod, pod.port(QUERY_PORT), "/api/services", "the trace store", process, timeout_s)
        forward = PortForward("jaeger-query", pod.endpoint(QUERY_PORT), pod.netns_path).start() if pod.netns else None
        url = forward.url if forward else f"http://127.0.0.1:{pod.port(QUERY_PORT)}"
        self.store = _Component(pod, process, forward, url)

    def collector(self) -> tuple[str, int]:
        """The trace store's OTLP/HTTP address as every pod reaches it (the bridge, or loopback)."""
        assert self.store is not None
        return self.store.pod.endpoint(OTLP_PORT)

    # -- what workloads and the gateway get ------------------------------------------------
    def workload_env(self, spec: WorkloadSpec, pod: Pod) -> dict[str, str]:  # noqa: ARG002 - PodDecorations
        """Environment for a model server replica: OpenTelemetry export (the mesh's tracing)."""
        if spec.kind != "InferenceService" or not _injected(self.manifests, spec.namespace):
            return {}
        env: dict[str, str] = {}
        mesh = self.mesh.get(spec.namespace)
        if mesh is not None and mesh.reporting and self.store is not None:
            host, port = self.collector()
            env.update(
                {
                    "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{port}",
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                    "OTEL_SERVICE_NAME": model_trace_service(spec.name, spec.namespace),
                    "OTEL_RESOURCE_ATTRIBUTES": f"k8s.namespace.name={spec.namespace},inferbox.model={spec.name}",
                    # Istio's sidecars follow the caller's sampling decision; this applies to new traces.
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": str(mesh.sampling_percent / 100.0),
                    "OTEL_METRICS_EXPORTER": "none",
                    "OTEL_LOGS_EXPORTER": "none",
                    "OTEL_BSP_SCHEDULE_DELAY": str(TRACE_EXPORT_INTERVAL_MS // 2),
                }
            )
        return env

    def sidecar_decorator(
        self, spec: WorkloadSpec, pod: Pod, app: tuple[str, int]
    ) -> Callable[[dict[str, Any]], None] | None:
        """What a model's sidecar adds for monitoring: Istio's merged-metrics port 15020."""
        if not self.metrics or spec.kind != "InferenceService":
            return None
        annotations = self._isvc_annotations(spec)
        # Istio merges the app's metrics from the port its prometheus.io annotations name; KServe's
        # enable-prometheus-scraping would point them at the queue-proxy, which the embedded target
        # does not run, so nothing of the app would be merged.
        merged = (
            annotations.get("prometheus.io/scrape", "true") != "false"
            and annotations.get("prometheus.io/port", "") == str(spec.port)
            and annotations.get("serving.kserve.io/enable-prometheus-scraping", "false") != "true"
        )
        path = annotations.get("prometheus.io/path", "/metrics")
        listen = pod.endpoint(MERGED_METRICS_PORT)

        def decorate(bootstrap: dict[str, Any]) -> None:
            add_merged_metrics(bootstrap, listen, app if merged else None, path)

        return decorate

    def _isvc_annotations(self, spec: WorkloadSpec) -> dict[str, str]:
        isvc = self.manifests.get("InferenceService", spec.name, spec.namespace)
        return isvc.annotations if isvc else {}

    def decorate_gateway(self, bootstrap: dict[str, Any], pod: Pod) -> None:
        if self.gateway_metrics:
            add_gateway_metrics(bootstrap, pod.endpoint(GATEWAY_METRICS_PORT))
        if self.gateway_tracing is not None:
            if self.store is None:
                raise PlatformError("the gateway traces but the trace store is not running", "start it first")
            add_gateway_tracing(bootstrap, self.gateway_tracing, self.collector(), TRACE_EXPORT_INTERVAL_MS)

    # -- Prometheus ------------------------------------------------------------------------
    def start_prometheus(
        self,
        network: Network,
        supervisor: Supervisor,
        register: Register,
        state_dir: Path,
        deployer: Deployer,
        gateway_pod: Pod,
        events: EventLog,
        timeout_s: float,
    ) -> None:
        """Prometheus as a pod, scraping the pods the deployer runs (rewritten as they come and go)."""
        if not self.metrics:
            return
        self._deployer, self._gateway_pod, self._events = deployer, gateway_pod, events
        pod = network.add_pod("monitoring.prometheus")
        register(pod, PROMETHEUS_META)  # NetworkPolicies name Prometheus by its labels
        folder = state_dir / "prometheus"
        # A fresh TSDB: series of an earlier platform in the same state folder would linger in queries.
        shutil.rmtree(folder / "data", ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        self._config_path = folder / "prometheus.yml"
        self.write_config()
        host = "0.0.0.0" if pod.netns else "127.0.0.1"  # noqa: S104 - inside Prometheus's own namespace
        process = supervisor.start(
            "prometheus",
            [
                self.prometheus_bin,
                f"--config.file={self._config_path}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={host}:{pod.port(PROMETHEUS_PORT)}",
                "--storage.tsdb.retention.time=1d",
                # POST /-/reload applies a new scrape config synchronously (see pods_changed).
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            pod,
        )
        _wait_http(pod, pod.port(PROMETHEUS_PORT), "/-/ready", "Prometheus", process, timeout_s)
        forward = (
            PortForward("prometheus", pod.endpoint(PROMETHEUS_PORT), pod.netns_path).start() if pod.netns else None
        )
        url = forward.url if forward else f"http://127.0.0.1:{pod.port(PROMETHEUS_PORT)}"
        self.prometheus = _Component(pod, process, forward, url)
        deployer.when_ready(self._replica_changed)
        deployer.when_gone(self._replica_changed)

    def _replica_changed(self, _replica: Replica) -> None:
        self.pods_changed()

    def write_config(self) -> None:
        assert self._config_path is not None
        assert self._deployer is not None
        replicas = self._deployer.all_replicas()
        config = monitors.prometheus_config(self.manifests, pod_views(replicas, self._gateway_pod, self), SCRAPE)
        tmp = self._config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, self._config_path)

    def pods_changed(self) -> None:
        """Rewrites the scrape config for the pods running now and has Prometheus apply it.

        The reload goes through Prometheus's HTTP endpoint, which answers once the new configuration
        is in force (or says why not): SIGHUPs sent in quick succession can merge into one and their
        outcome is invisible, which left removed replicas scraped as down targets.
        """
        if self.prometheus is None:
            return
        with self._lock:
            self.write_config()
            if not self.prometheus.process.alive():
                return
            assert self._events is not None
            try:
                response = httpx.post(f"{self.prometheus.url}/-/reload", timeout=30.0)
            except httpx.HTTPError as exc:
                self._events.record("monitoring", "ReloadFailed", f"Prometheus reload failed: {exc}")
                return
            if response.status_code != 200:
                self._events.record(
                    "monitoring",
                    "ReloadFailed",
                    f"Prometheus refused the scrape config: {response.status_code} {response.text[:300]}",
                )

    # -- facts -----------------------------------------------------------------------------
    def components(self) -> dict[str, _Component]:
        found = {"prometheus": self.prometheus, "trace-store": self.store}
        return {name: c for name, c in found.items() if c is not None}

    def state(self) -> TelemetryState:
        return TelemetryState(
            prometheus_url=self.prometheus.url if self.prometheus else None,
            jaeger_query_url=self.store.url if self.store else None,
            scrape_interval_s=SCRAPE_INTERVAL_S,
            trace_export_interval_s=TRACE_EXPORT_INTERVAL_MS / 1000,
            gateway_trace_service=self.gateway_tracing.service_name if self.gateway_tracing else None,
            gateway_sampling_percent=self.gateway_tracing.sampling_percent if self.gateway_tracing else None,
        )

    def stop(self) -> None:
        for component in (self.prometheus, self.store):
            if component and component.forward:
                component.forward.stop()
        self.prometheus = None
        self.store = None


def model_trace_service(model: str, namespace: str) -> str:
    """Service name of a model's spans: Istio's ``<app>.<namespace>``, the app being the predictor."""
    return f"{model}-predictor.{namespace}"


def _wait_http(pod: Pod, port: int, path: str, what: str, process: ManagedProcess, timeout_s: float) -> None:
    def ready() -> bool:
        return pod_http_status(pod, port, path) == 200

    def dead() -> str | None:
        return None if process.alive() else f"it exited; log {process.log_path}:\n{process.log_tail()}"

    wait_until(what, ready, timeout_s, dead, fix=f"see {process.log_path}")


# -- the pods as Kubernetes discovery would list them ---------------------------------------------
def pod_views(
    replicas: list[Replica], gateway_pod: Pod | None, observability: EmbeddedObservability
) -> list[monitors.PodView]:
    """Every running pod of the platform with the labels, annotations and container ports it would
    have on a cluster. This is the one place that decides what Prometheus can scrape where: a pod
    declares the ports its containers really serve (the gateway's ``metrics`` port, the JWT server's
    ``http`` port, a model server's ``user-port``, and in mesh namespaces the sidecar's stats port
    with the merged metrics on 15020)."""
    views: list[monitors.PodView] = []
    manifests = observability.manifests
    if gateway_pod is not None and observability.gateway_metrics:
        namespace, name = observability.gateway.split("/")
        views.append(
            monitors.PodView(
                namespace=namespace,
                name=f"envoy-{namespace}-{name}-0",
                ip=gateway_pod.ip,
                labels={
                    "app.kubernetes.io/name": "envoy",
                    "app.kubernetes.io/component": "proxy",
                    "app.kubernetes.io/managed-by": "envoy-gateway",
                    "gateway.envoyproxy.io/owning-gateway-name": name,
                    "gateway.envoyproxy.io/owning-gateway-namespace": namespace,
                },
                annotations={},
                containers=(monitors.Container("envoy", (monitors.ContainerPort("metrics", GATEWAY_METRICS_PORT),)),),
                port_map=_port_map(gateway_pod, [GATEWAY_METRICS_PORT]),
            )
        )
    for replica in replicas:
        if replica.ready_at is None or not replica.process.alive():
            continue
        views.append(_workload_view(manifests, replica.workload, replica.pod, replica.index))
    return views + observability.extra_views


def _port_map(pod: Pod, ports: list[int]) -> dict[int, int]:
    return {} if pod.netns else {p: pod.port(p) for p in ports}


def _workload_view(manifests: ManifestSet, spec: WorkloadSpec, pod: Pod, index: int) -> monitors.PodView:
    if spec.kind == "Deployment":
        deployment = manifests.get("Deployment", spec.name, spec.namespace)
        template = (deployment.spec.get("template") or {}) if deployment else {}
        containers = []
        for container in (template.get("spec") or {}).get("containers") or []:
            ports = tuple(
                monitors.ContainerPort(str(p.get("name", "")), int(p["containerPort"]))
                for p in container.get("ports") or []
            )
            containers.append(monitors.Container(container["name"], ports))
        declared = [p.number for c in containers for p in c.ports]
        return monitors.PodView(
            namespace=spec.namespace,
            name=f"{spec.name}-{index}",
            ip=pod.ip,
            labels=dict(spec.labels),
            annotations=dict((template.get("metadata") or {}).get("annotations") or {}),
            containers=tuple(containers),
            port_map=_port_map(pod, declared),
        )
    isvc = manifests.get("InferenceService", spec.name, spec.namespace)
    # Knative names the user container's port "user-port"; KServe labels the pod with its
    # InferenceService and component; Istio's injector adds the istio-proxy container.
    containers = [monitors.Container("kserve-container", (monitors.ContainerPort("user-port", spec.port),))]
    mapped = [spec.port]
    if _injected(manifests, spec.namespace):
        containers.append(
            monitors.Container("istio-proxy", (monitors.ContainerPort("http-envoy-prom", SIDECAR_STATS_PORT),))
        )
        mapped += [SIDECAR_STATS_PORT, MERGED_METRICS_PORT]
    return monitors.PodView(
        namespace=spec.namespace,
        name=f"{spec.name}-predictor-00001-deployment-{index}",
        ip=pod.ip,
        labels={**spec.labels, "component": "predictor", "app": f"{spec.name}-predictor-00001"},
        annotations=isvc.annotations if isvc else {},
        containers=tuple(containers),
        port_map=_port_map(pod, mapped),
    )
