"""The Kind (and existing-cluster) side of observability, for the lead to wire into the Kind target.

Interface:

- ``CATALOGUE``: the metric catalogue with the names of the pinned versions (manifests/versions.yaml:
  Envoy Gateway 1.4, Knative Serving 1.18, KServe 0.15, Istio 1.26, kube-prometheus-stack 75.6.0).
  Every metric and label it uses is in ``KIND_METRICS`` with the upstream source it was read from;
  ``unknown_names`` checks any PromQL against that list (the unit tests run it on the catalogue and
  on every dashboard panel).
- ``observability(endpoints)``: the contract's ``Observability`` from the URLs the Kind target's
  port-forwards give (Prometheus, Jaeger query with its base path, Grafana, Kiali).
- ``objects_to_apply(manifests)`` and ``dashboard_configmaps(manifests_dir)``: what to apply after
  the prometheus-operator CRDs and Grafana exist: the PodMonitors/ServiceMonitors and Istio
  Telemetry from the manifests, and one ConfigMap per Grafana dashboard JSON, labelled for the
  Grafana sidecar of kube-prometheus-stack.

The chart values the checks rely on (every monitor selected, 10 s scrapes, tracing to Jaeger) have
one home: the installer's recipe, ``inferbox.cluster.components``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferbox.contract import Observability, TraceNaming
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.observability.catalogue import REPLICAS_FROM_KNATIVE, catalogue
from inferbox.observability.dashboards import dashboard_files, load_dashboard
from inferbox.observability.promql import names

# -- metric names of the pinned versions, with where each was read ---------------------------------
ENVOY_STATS = (
    "envoyproxy/envoy: source/common/config/well_known_names.cc, docs cluster_stats.rst (Envoy 1.34 in EG 1.4)"
)
EG_PREFIXES = "envoyproxy/gateway@v1.4.2: internal/xds/translator/listener.go (http-<port>), local_ratelimit.go"
JWT_STATS = "envoyproxy/envoy: source/extensions/filters/http/jwt_authn/stats.h"
RBAC_STATS = "envoyproxy/envoy: docs http_filters/rbac_filter.rst"
RATELIMIT_STATS = "envoyproxy/envoy: docs http_filters/local_rate_limit_filter.rst"
KSERVE = "kserve/kserve@v0.15.2: python/kserve/kserve/metrics.py"
CLIENT_PYTHON = "prometheus/client_python: ProcessCollector (process_start_time_seconds), default registry in KServe"
KNATIVE = "knative/serving@knative-v1.18.1: pkg/autoscaler/metrics (OpenCensus, prefix autoscaler_)"
ISTIO = "istio/proxy@1.26.0: source/extensions/filters/http/istio_stats/istio_stats.cc"
PROMETHEUS = "prometheus/prometheus: the synthetic `up` series of every scrape"
JWT_SERVER = "inferbox: inferbox/jwtserver/app.py (the platform's JWT server image)"
AI_GATEWAY = (
    "envoyproxy/ai-gateway@v0.2.1: internal/metrics/genai.go, tests/e2e/token_ratelimit_test.go "
    "(OpenTelemetry's Prometheus exporter: unit {token} adds no suffix)"
)
GEN_AI = ("gen_ai_operation_name", "gen_ai_system_name", "gen_ai_request_model")

CLUSTER = ("envoy_cluster_name",)
HCM = ("envoy_http_conn_manager_prefix",)
KNATIVE_REVISION = ("namespace_name", "service_name", "configuration_name", "revision_name")

# metric -> (labels the exporter sets, source)
KIND_METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "envoy_cluster_upstream_rq": ((*CLUSTER, "envoy_response_code"), ENVOY_STATS),
    "envoy_cluster_upstream_rq_total": (CLUSTER, ENVOY_STATS),
    "envoy_cluster_upstream_rq_xx": ((*CLUSTER, "envoy_response_code_class"), ENVOY_STATS),
    "envoy_cluster_upstream_rq_time_bucket": ((*CLUSTER, "le"), ENVOY_STATS),
    "envoy_cluster_upstream_rq_time_count": (CLUSTER, ENVOY_STATS),
    "envoy_cluster_upstream_rq_time_sum": (CLUSTER, ENVOY_STATS),
    "envoy_http_downstream_rq_xx": ((*HCM, "envoy_response_code_class"), f"{ENVOY_STATS}; {EG_PREFIXES}"),
    "envoy_http_jwt_authn_allowed": (HCM, JWT_STATS),
    "envoy_http_jwt_authn_denied": (HCM, JWT_STATS),
    "envoy_http_rbac_allowed": (HCM, RBAC_STATS),
    "envoy_http_rbac_denied": (HCM, RBAC_STATS),
    "envoy_http_local_rate_limit_enforced": (("envoy_local_http_ratelimit_prefix",), RATELIMIT_STATS),
    "envoy_http_local_rate_limit_rate_limited": (("envoy_local_http_ratelimit_prefix",), RATELIMIT_STATS),
    "request_predict_seconds_bucket": (("model_name", "le"), KSERVE),
    "request_predict_seconds_count": (("model_name",), KSERVE),
    "request_predict_seconds_sum": (("model_name",), KSERVE),
    "process_start_time_seconds": ((), CLIENT_PYTHON),
    "autoscaler_actual_pods": (KNATIVE_REVISION, KNATIVE),
    "autoscaler_desired_pods": (KNATIVE_REVISION, KNATIVE),
    "istio_requests_total": (
        (
            "reporter",
            "source_workload",
            "source_workload_namespace",
            "destination_workload",
            "destination_workload_namespace",
            "destination_service",
            "response_code",
        ),
        ISTIO,
    ),
    "jwt_server_tokens_issued_total": (("tenant",), JWT_SERVER),
    "gen_ai_client_token_usage_bucket": ((*GEN_AI, "gen_ai_token_type", "le"), AI_GATEWAY),
    "gen_ai_client_token_usage_sum": ((*GEN_AI, "gen_ai_token_type"), AI_GATEWAY),
    "gen_ai_client_token_usage_count": ((*GEN_AI, "gen_ai_token_type"), AI_GATEWAY),
    "gen_ai_server_request_duration_seconds_bucket": ((*GEN_AI, "error_type", "le"), AI_GATEWAY),
    "gen_ai_server_time_to_first_token_seconds_bucket": ((*GEN_AI, "le"), AI_GATEWAY),
    "gen_ai_server_time_per_output_token_seconds_bucket": ((*GEN_AI, "le"), AI_GATEWAY),
    "up": ((), PROMETHEUS),
}
# Labels every series gets from the scrape (prometheus-operator's relabelings) and from our
# monitors' relabelings (tenant and model; see manifests/**/*monitoring.yaml, gateway-podmonitor.yaml).
SCRAPE_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "service", "tenant", "model", "le"}

CATALOGUE = catalogue("kind", REPLICAS_FROM_KNATIVE)

# Envoy Gateway names its spans' service <gateway>.<namespace>; Istio names a sidecar's
# <app label>.<namespace>, and Knative sets app=<revision> (<isvc>-predictor-NNNNN).
TRACES = TraceNaming(
    gateway_service="inference-gateway.envoy-gateway-system",
    model_service="{model}-predictor-[0-9]{5}\\.{tenant}",
)
# Kiali's workload graph: traffic reaches a predictor through Istio's ingress gateway, and through
# Knative's activator when the revision is at zero or short of burst capacity.
MESH_GRAPH = {
    "namespaces": "istio-system,knative-serving",
    "gateway_workload": "istio-ingressgateway|activator",
    "model_workload": "{model}-predictor-[0-9]+-deployment",
}
# The scrape interval the installer sets (components.monitoring_step; kube-prometheus-stack's default
# is 30 s); the Kind target passes the measured one: PrometheusClient(url).longest_scrape_interval().
SCRAPE_INTERVAL_S = 10.0
# Envoy's OpenTelemetry tracer flushes every 5 s by default; Istio's sidecars use the same tracer.
TRACE_EXPORT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Endpoints:
    """URLs the Kind target reaches (through its port-forwards)."""

    prometheus: str
    jaeger_query: str | None = None  # including Jaeger's base path, e.g. http://127.0.0.1:16686/jaeger
    grafana: str | None = None
    grafana_auth: tuple[str, str] | None = ("admin", "prom-operator")
    kiali: str | None = None  # including Kiali's web root when it has one


def observability(endpoints: Endpoints, scrape_interval_s: float = SCRAPE_INTERVAL_S) -> Observability:
    return Observability(
        prometheus_url=endpoints.prometheus,
        catalogue=CATALOGUE,
        scrape_interval_s=scrape_interval_s,
        trace_export_interval_s=TRACE_EXPORT_INTERVAL_S,
        jaeger_query_url=endpoints.jaeger_query,
        traces=TRACES if endpoints.jaeger_query else None,
        grafana_url=endpoints.grafana,
        grafana_auth=endpoints.grafana_auth if endpoints.grafana else None,
        kiali_url=endpoints.kiali,
        mesh_graph=MESH_GRAPH if endpoints.kiali else {},
    )


def unknown_names(expr: str) -> list[str]:
    """Metric and label names in ``expr`` that the pinned versions do not emit (empty when all known)."""
    found = names(expr)
    problems = [f"metric {m} is not emitted by any pinned component" for m in sorted(found.metrics - set(KIND_METRICS))]
    for metric, labels in sorted(found.matcher_labels.items()):
        known = set(KIND_METRICS.get(metric, ((), ""))[0]) | SCRAPE_LABELS
        problems += [f"{metric} has no label {label}" for label in sorted(labels - known) if metric]
    every_label = {label for labels, _ in KIND_METRICS.values() for label in labels} | SCRAPE_LABELS
    problems += [f"no metric has the grouping label {label}" for label in sorted(found.grouping_labels - every_label)]
    return problems


# -- what to apply on the cluster -------------------------------------------------------------------
OBSERVABILITY_KINDS = ("PodMonitor", "ServiceMonitor", "Telemetry")
DASHBOARD_LABEL = ("grafana_dashboard", "1")  # kube-prometheus-stack's grafana.sidecar.dashboards label


def objects_to_apply(manifests: ManifestSet) -> list[K8sObject]:
    """The monitors and Istio Telemetry, to apply once the prometheus-operator CRDs and istiod exist.
    (The EnvoyProxy's telemetry is part of the gateway's manifests and applied with them.)"""
    return [o for o in manifests if o.kind in OBSERVABILITY_KINDS]


def dashboard_configmaps(manifests_dir: Path, namespace: str = "monitoring") -> list[dict[str, Any]]:
    """One ConfigMap per Grafana dashboard under the manifests, for Grafana's dashboard sidecar."""
    maps = []
    for path in dashboard_files(manifests_dir):
        body = load_dashboard(path)
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"dashboard-{body['uid']}"[:63],
                    "namespace": namespace,
                    "labels": {
                        DASHBOARD_LABEL[0]: DASHBOARD_LABEL[1],
                        "app.kubernetes.io/part-of": "inference-in-a-box",
                    },
                },
                "data": {path.name: json.dumps(body, indent=2)},
            }
        )
    return maps


# -- Knative's autoscaler ---------------------------------------------------------------------------
KNATIVE_NAMESPACE = "knative-serving"
AUTOSCALER_LABELS = {"app": "autoscaler"}  # knative/serving@knative-v1.18.1 config/core/deployments/autoscaler.yaml
AUTOSCALER_METRICS_PORT = ("metrics", 9090)  # the same file; config-observability: Prometheus exporter


def knative_autoscaler_scrape() -> list[dict[str, Any]]:
    """What makes the replica-count signal (``autoscaler_actual_pods``) reach Prometheus.

    Knative's autoscaler serves its metrics on container port ``metrics`` (9090). Its namespace is
    in the mesh (the installer enrols it, so the activator can reach STRICT tenants), and the mesh
    is STRICT, while Prometheus has no sidecar: a plain scrape of 9090 would be refused. Knative's
    own net-istio solves the same problem for its webhooks with a workload PeerAuthentication that
    is PERMISSIVE on one port; this does that for port 9090 of the autoscaler alone (mTLS clients
    are still accepted there, every other port stays STRICT), and a PodMonitor scrapes it.
    """
    name, port = AUTOSCALER_METRICS_PORT
    return [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "autoscaler-metrics", "namespace": KNATIVE_NAMESPACE},
            "spec": {
                "selector": {"matchLabels": dict(AUTOSCALER_LABELS)},
                "portLevelMtls": {str(port): {"mode": "PERMISSIVE"}},
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "knative-autoscaler", "namespace": KNATIVE_NAMESPACE},
            "spec": {
                "selector": {"matchLabels": dict(AUTOSCALER_LABELS)},
                "podMetricsEndpoints": [{"port": name, "path": "/metrics"}],
            },
        },
    ]
