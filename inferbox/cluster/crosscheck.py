"""Checks across objects that a cluster would otherwise be needed to find wrong.

- Every metric of the Kind catalogue has a scrape: a PodMonitor or ServiceMonitor that Prometheus
  selects, whose selector matches the pods that export the metric, whose port is one of theirs,
  and which Prometheus (no sidecar, so plaintext) can reach there: the pods have no sidecar, or
  the port is one Istio's sidecar does not capture, or mTLS is PERMISSIVE on it, and no
  NetworkPolicy shuts Prometheus out.
- Every Service of ours selects pods of ours, and every NetworkPolicy peer names labels the
  upstream pods it means really carry.

Pods inferbox does not define (the upstream components', and those controllers create) are
described in ``UPSTREAM_PODS``, each with the source its labels and ports were read from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inferbox.cluster.observability import KIND_METRICS

PROMETHEUS_NAMESPACE = "monitoring"
MESH_ROOT = "istio-system"
# Ports of Istio's sidecar that its iptables rules leave uncaptured: the agent (merged metrics,
# 15020), health (15021) and Envoy's Prometheus listener (15090). Plaintext reaches them.
ISTIO_UNCAPTURED = frozenset({15020, 15021, 15090})
SIDECAR_PORTS = {"http-envoy-prom": 15090}


@dataclass(frozen=True)
class Pods:
    """The pods of one workload as they run: labels, named container ports, sidecar or not."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int]
    source: str
    injectable: bool = True  # False: the pod opts out of sidecar injection itself


@dataclass(frozen=True)
class Exporter:
    """Who serves a set of the catalogue's metrics, on which port and path."""

    metrics: tuple[str, ...]
    pods: Pods
    port: int
    path: str


KNATIVE = "knative/serving@knative-v1.18.1"
KSERVE_LABELS = "kserve/kserve@v0.15.2: pkg/constants (serving.kserve.io/inferenceservice on the pods)"
UPSTREAM_PODS: dict[str, Pods] = {
    "knative-autoscaler": Pods(
        "autoscaler",
        "knative-serving",
        {"app": "autoscaler", "app.kubernetes.io/component": "autoscaler", "app.kubernetes.io/name": "knative-serving"},
        {"metrics": 9090, "profiling": 8008, "websocket": 8080},
        f"{KNATIVE}: config/core/deployments/autoscaler.yaml",
    ),
    "knative-activator": Pods(
        "activator",
        "knative-serving",
        {"app": "activator", "role": "activator", "app.kubernetes.io/name": "knative-serving"},
        {},
        f"{KNATIVE}: config/core/deployments/activator.yaml",
    ),
    "istio-ingressgateway": Pods(
        "istio-ingressgateway",
        "istio-system",
        # The gateway chart labels its pods app=<release>, istio=<release without "istio-">.
        {"app": "istio-ingressgateway", "istio": "ingressgateway"},
        {"http2": 80, "https": 443, "status-port": 15021},
        "istio/istio@1.26.2: manifests/charts/gateway/templates/_helpers.tpl (gateway.selectorLabels)",
    ),
    "envoy-gateway-proxy": Pods(
        "envoy (inference-gateway)",
        "envoy-gateway-system",
        {
            "app.kubernetes.io/name": "envoy",
            "app.kubernetes.io/component": "proxy",
            "app.kubernetes.io/managed-by": "envoy-gateway",
            "gateway.envoyproxy.io/owning-gateway-name": "inference-gateway",
            "gateway.envoyproxy.io/owning-gateway-namespace": "envoy-gateway-system",
        },
        {"metrics": 19001, "readiness": 19003},
        "envoyproxy/gateway@v1.4.2: internal/infrastructure/kubernetes/proxy/resource.go",
    ),
    # The AI Gateway's proxy: Envoy Gateway's labels, plus the processor sidecar AI Gateway's webhook
    # injects with its metrics port.
    "ai-gateway-proxy": Pods(
        "envoy (ai-gateway)",
        "envoy-gateway-system",
        {
            "app.kubernetes.io/name": "envoy",
            "app.kubernetes.io/component": "proxy",
            "app.kubernetes.io/managed-by": "envoy-gateway",
            "gateway.envoyproxy.io/owning-gateway-name": "ai-gateway",
            "gateway.envoyproxy.io/owning-gateway-namespace": "envoy-gateway-system",
        },
        {"metrics": 19001, "readiness": 19003, "aigw-metrics": 1064},
        "envoyproxy/gateway@v1.4.2: internal/infrastructure/kubernetes/proxy/resource.go; "
        "envoyproxy/ai-gateway@v0.2.1: internal/controller/gateway_mutator.go",
    ),
    "prometheus": Pods(
        "prometheus-kube-prometheus-prometheus",
        PROMETHEUS_NAMESPACE,
        {"app.kubernetes.io/name": "prometheus", "prometheus": "prometheus-kube-prometheus-prometheus"},
        {"http-web": 9090},
        "prometheus-operator v0.83.0 (kube-prometheus-stack 75.6.0): the Prometheus StatefulSet's pod labels",
        injectable=False,
    ),
}


def model_pods(namespace: str, model: str) -> Pods:
    """A model revision's pods: KServe's label, the model server's port, the sidecar's stats port."""
    return Pods(
        f"{model} predictor",
        namespace,
        {"serving.kserve.io/inferenceservice": model, "component": "predictor"},
        {"user-port": 8080, **SIDECAR_PORTS},
        KSERVE_LABELS,
    )


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


@dataclass
class Platform:
    """The objects the checks read: the manifests plus what the installer renders."""

    objects: list[Mapping[str, Any]]
    prometheus_values: Mapping[str, Any] = field(default_factory=dict)  # prometheus.prometheusSpec

    def of_kind(self, kind: str) -> list[Mapping[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def namespace_labels(self, name: str) -> dict[str, str]:
        merged: dict[str, str] = {"kubernetes.io/metadata.name": name}
        for ns in self.of_kind("Namespace"):
            if ns["metadata"]["name"] == name:
                merged.update(ns["metadata"].get("labels") or {})
        return merged

    def has_sidecar(self, pods: Pods) -> bool:
        return pods.injectable and self.namespace_labels(pods.namespace).get("istio-injection") == "enabled"

    def mtls_mode(self, pods: Pods, port: int) -> str:
        """The mTLS mode Istio applies to ``port`` of ``pods``: the most specific PeerAuthentication
        wins (workload port level, workload, namespace, mesh); none at all is PERMISSIVE."""
        workload, namespace, mesh = None, None, None
        for pa in self.of_kind("PeerAuthentication"):
            meta, spec = pa["metadata"], pa.get("spec") or {}
            if meta.get("namespace") == pods.namespace and spec.get("selector"):
                if _selects(spec["selector"], pods.labels):
                    workload = spec
            elif meta.get("namespace") == pods.namespace:
                namespace = spec
            elif meta.get("namespace") == MESH_ROOT and not spec.get("selector"):
                mesh = spec
        if workload is not None:
            level = (workload.get("portLevelMtls") or {}).get(str(port)) or (workload.get("portLevelMtls") or {}).get(
                port
            )
            if level and level.get("mode") not in (None, "UNSET"):
                return str(level["mode"])
        for spec in (workload, namespace, mesh):
            mode = ((spec or {}).get("mtls") or {}).get("mode")
            if mode and mode != "UNSET":
                return str(mode)
        return "PERMISSIVE"

    def plaintext_reaches(self, pods: Pods, port: int) -> str | None:
        """Why Prometheus' plaintext scrape of ``port`` fails, or None when it gets through."""
        if self.has_sidecar(pods) and port not in ISTIO_UNCAPTURED:
            mode = self.mtls_mode(pods, port)
            if mode == "STRICT":
                return f"mTLS is STRICT on port {port} of {pods.namespace}/{pods.name} (Prometheus has no sidecar)"
        denied = self._network_policy_denies(pods, port)
        return denied

    def _network_policy_denies(self, pods: Pods, port: int) -> str | None:
        prometheus = UPSTREAM_PODS["prometheus"]
        source_ns = self.namespace_labels(prometheus.namespace)
        selecting = [
            p
            for p in self.of_kind("NetworkPolicy")
            if p["metadata"].get("namespace") == pods.namespace
            and "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])
            and _selects((p.get("spec") or {}).get("podSelector"), pods.labels)
        ]
        if not selecting:
            return None
        for policy in selecting:
            for rule in (policy.get("spec") or {}).get("ingress") or []:
                ports = [int(p["port"]) for p in rule.get("ports") or [] if isinstance(p.get("port"), int)]
                if rule.get("ports") and port not in ports:
                    continue
                for peer in rule.get("from") or [{}]:
                    same_ns = prometheus.namespace == pods.namespace
                    ns_ok = _selects(peer["namespaceSelector"], source_ns) if "namespaceSelector" in peer else same_ns
                    pod_ok = _selects(peer.get("podSelector"), prometheus.labels) if "podSelector" in peer else True
                    if "ipBlock" not in peer and ns_ok and pod_ok:
                        return None
        names = ", ".join(p["metadata"]["name"] for p in selecting)
        return f"NetworkPolicy {names} in {pods.namespace} lets Prometheus not reach port {port}"

    def prometheus_selects(self, monitor: Mapping[str, Any]) -> bool:
        """kube-prometheus-stack's Prometheus selects only monitors labelled release=<release> unless
        the *SelectorNilUsesHelmValues values are false."""
        key = (
            "podMonitorSelectorNilUsesHelmValues"
            if monitor["kind"] == "PodMonitor"
            else ("serviceMonitorSelectorNilUsesHelmValues")
        )
        if self.prometheus_values.get(key, True) is False:
            return True
        return (monitor["metadata"].get("labels") or {}).get("release") == "prometheus"

    def _scrape_port(self, endpoint: Mapping[str, Any], port: int) -> int:
        """An endpoint's relabelling may move the address to another port (``${1}:15020``)."""
        for relabel in endpoint.get("relabelings") or []:
            if relabel.get("targetLabel") == "__address__":
                replacement = str(relabel.get("replacement", ""))
                tail = replacement.rsplit(":", 1)[-1]
                if tail.isdigit():
                    return int(tail)
        return port

    def scrapes(self, exporter: Exporter) -> list[str]:
        """Problems with every monitor that could scrape ``exporter`` (empty list: one works)."""
        pods, tried = exporter.pods, []
        for monitor in self.of_kind("PodMonitor") + self.of_kind("ServiceMonitor"):
            namespaces = (monitor.get("spec") or {}).get("namespaceSelector") or {}
            own_ns = monitor["metadata"].get("namespace")
            if not (namespaces.get("any") or pods.namespace in (namespaces.get("matchNames") or [own_ns])):
                continue
            for port in self._monitor_ports(monitor, pods):
                if port is None:
                    continue
                name = f"{monitor['kind']} {own_ns}/{monitor['metadata']['name']}"
                if port != exporter.port:
                    tried.append(f"{name} scrapes port {port}, the metrics are on {exporter.port}")
                elif not self.prometheus_selects(monitor):
                    tried.append(f"{name} is not selected by Prometheus (no release=prometheus label)")
                elif (problem := self.plaintext_reaches(pods, port)) is not None:
                    tried.append(f"{name}: {problem}")
                else:
                    return []
        return tried or [f"no PodMonitor or ServiceMonitor selects {pods.namespace}/{pods.name}"]

    def _monitor_ports(self, monitor: Mapping[str, Any], pods: Pods) -> Iterable[int | None]:
        spec = monitor.get("spec") or {}
        if monitor["kind"] == "PodMonitor":
            if not _selects(spec.get("selector"), pods.labels):
                return
            for endpoint in spec.get("podMetricsEndpoints") or []:
                port = pods.ports.get(str(endpoint.get("port")))
                yield None if port is None else self._scrape_port(endpoint, port)
            return
        for service in self.of_kind("Service"):
            if service["metadata"].get("namespace") != pods.namespace:
                continue
            if not _selects(spec.get("selector"), service["metadata"].get("labels") or {}):
                continue
            if not _selects({"matchLabels": (service.get("spec") or {}).get("selector")}, pods.labels):
                continue
            by_name = {p.get("name"): p for p in (service.get("spec") or {}).get("ports") or []}
            for endpoint in spec.get("endpoints") or []:
                entry = by_name.get(endpoint.get("port"))
                if entry is None:
                    yield None
                    continue
                target = entry.get("targetPort", entry.get("port"))
                port = pods.ports.get(target) if isinstance(target, str) else int(target)
                yield None if port is None else self._scrape_port(endpoint, port)


def exporters(platform: Platform, models: Iterable[tuple[str, str]]) -> list[Exporter]:
    """Who exports each metric of the Kind catalogue on this platform."""
    jwt = _own_pods(platform, "inference-system", "jwt-server")
    out = [
        Exporter(
            tuple(m for m in KIND_METRICS if m.startswith("envoy_")),
            UPSTREAM_PODS["envoy-gateway-proxy"],
            19001,
            "/stats/prometheus",
        ),
        Exporter(
            ("autoscaler_actual_pods", "autoscaler_desired_pods"), UPSTREAM_PODS["knative-autoscaler"], 9090, "/metrics"
        ),
        Exporter(("jwt_server_tokens_issued_total",), jwt, jwt.ports.get("http", 0), "/metrics"),
        Exporter(
            tuple(m for m in KIND_METRICS if m.startswith("gen_ai_")),
            UPSTREAM_PODS["ai-gateway-proxy"],
            1064,
            "/metrics",
        ),
    ]
    model_metrics = tuple(
        m for m in KIND_METRICS if m.startswith("request_predict") or m == "process_start_time_seconds"
    )
    for namespace, model in models:
        # The model server's metrics and the sidecar's istio_requests_total, merged by Istio's agent.
        out.append(
            Exporter((*model_metrics, "istio_requests_total"), model_pods(namespace, model), 15020, "/stats/prometheus")
        )
    return out


def _own_pods(platform: Platform, namespace: str, deployment: str) -> Pods:
    for dep in platform.of_kind("Deployment"):
        if dep["metadata"]["name"] == deployment and dep["metadata"].get("namespace") == namespace:
            template = dep["spec"]["template"]
            ports = {
                str(p["name"]): int(p["containerPort"])
                for c in template["spec"]["containers"]
                for p in c.get("ports") or []
                if p.get("name")
            }
            annotations = template["metadata"].get("annotations") or {}
            injectable = annotations.get("sidecar.istio.io/inject") != "false"
            return Pods(deployment, namespace, template["metadata"].get("labels") or {}, ports, "manifests", injectable)
    raise KeyError(f"no Deployment {namespace}/{deployment} in the manifests")


def metric_problems(platform: Platform, models: Iterable[tuple[str, str]]) -> list[str]:
    """Every catalogue metric whose exporter nothing scrapes, with why each monitor fails."""
    found = exporters(platform, models)
    covered = {m for e in found for m in e.metrics}
    problems = [f"{m}: no exporter known" for m in sorted(set(KIND_METRICS) - covered - {"up"})]
    for exporter in found:
        for problem in platform.scrapes(exporter):
            problems.append(
                f"{', '.join(exporter.metrics[:2])}...: {problem}"
                if len(exporter.metrics) > 2
                else f"{', '.join(exporter.metrics)}: {problem}"
            )
    return problems


def selector_problems(platform: Platform) -> list[str]:
    """Services of ours that select no pod of ours; NetworkPolicy peers that match no upstream pod
    they name (a label that does not exist lets nothing in, or the wrong thing)."""
    problems = []
    templates = [
        (d["metadata"].get("namespace"), d["spec"]["template"]["metadata"].get("labels") or {})
        for d in platform.of_kind("Deployment") + platform.of_kind("StatefulSet") + platform.of_kind("DaemonSet")
    ]
    for service in platform.of_kind("Service"):
        selector = (service.get("spec") or {}).get("selector")
        ns = service["metadata"].get("namespace")
        if selector and not any(n == ns and _selects({"matchLabels": selector}, labels) for n, labels in templates):
            problems.append(f"Service {ns}/{service['metadata']['name']} selects {selector}: no pod of ours has them")
    known = [(p.namespace, p.labels) for p in UPSTREAM_PODS.values()] + [(n, lbl) for n, lbl in templates]
    for policy in platform.of_kind("NetworkPolicy"):
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            for peer in rule.get("from") or []:
                if "podSelector" not in peer or "namespaceSelector" not in peer:
                    continue
                names = (peer["namespaceSelector"].get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                if names is None or not (peer["podSelector"].get("matchLabels") or {}):
                    continue
                if not any(ns == names and _selects(peer["podSelector"], labels) for ns, labels in known):
                    problems.append(
                        f"NetworkPolicy {policy['metadata'].get('namespace')}/{policy['metadata']['name']}: "
                        f"no pod in {names} has labels {peer['podSelector']['matchLabels']}"
                    )
    return problems
