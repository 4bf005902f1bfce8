"""The install recipe for every upstream component, at the versions from the versions file.

Facts behind each choice (charts, values, what to wait on, which races exist) are in
``shared/reference/kind-install-facts.md``; the comments here say why a value is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferbox.cluster import catalog
from inferbox.cluster.actions import (
    ApplyObjects,
    ApplyUrl,
    BuildImage,
    Chart,
    CreateKindCluster,
    HelmChartCrds,
    HelmRelease,
    LoadImage,
    values_digest,
)
from inferbox.cluster.kindcluster import KindConfig
from inferbox.cluster.plan import Step
from inferbox.cluster.versions import Versions
from inferbox.cluster.waits import (
    ConditionsTrue,
    CrdsEstablished,
    DeploymentAvailable,
    NodesReady,
    ObjectsExist,
    WebhookAnswers,
    WorkloadReady,
)
from inferbox.envoy_gateway_settings import EXTENSION_APIS

ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
JETSTACK_CHARTS = "https://charts.jetstack.io"
PROMETHEUS_CHARTS = "https://prometheus-community.github.io/helm-charts"
JAEGER_CHARTS = "https://jaegertracing.github.io/helm-charts"
KIALI_CHARTS = "https://kiali.org/helm-charts"

MONITORING = "monitoring"
JAEGER_OTLP = "jaeger-collector.monitoring.svc.cluster.local"
PROBE_NAME = "inferbox-webhook-probe"
CRDS = (("apiextensions.k8s.io", "CustomResourceDefinition", None),)


@dataclass(frozen=True)
class LocalImage:
    """An image of ours: built from ``dockerfile`` in this repository and loaded into Kind."""

    image: str
    dockerfile: str


def _deployments(namespace: str, *names: str) -> tuple[DeploymentAvailable, ...]:
    return tuple(DeploymentAvailable(namespace, name) for name in names)


# -- Kind -------------------------------------------------------------------------------------
def kind_steps(versions: Versions, name: str, config: KindConfig, images: list[LocalImage]) -> list[Step]:
    steps = [
        Step(
            "cluster",
            f"Kind cluster {name}, kind {versions.get('kubernetes', 'kind')}, Kubernetes {versions.get('kubernetes')}",
            (),
            (
                CreateKindCluster(
                    name,
                    config.path,
                    versions.get("kubernetes", "nodeImage"),
                    versions.get("kubernetes", "kind"),
                    tuple((k, v) for k, v in versions.entries["kubernetes"].items() if k.startswith("kindSha256")),
                ),
                NodesReady(config.node_count),
                DeploymentAvailable("kube-system", "coredns"),
            ),
            ("kube-system",),
        )
    ]
    if images:
        steps.append(
            Step(
                "build-images",
                "our images, built from this repository (no registry involved)",
                (),
                tuple(BuildImage(i.image, i.dockerfile) for i in images),
            )
        )
        steps.append(
            Step(
                "load-images",
                "our images, loaded into every Kind node",
                ("cluster", "build-images"),
                tuple(LoadImage(i.image, name) for i in images),
            )
        )
    return steps


# -- Gateway API + Envoy Gateway CRDs -----------------------------------------------------------
def gateway_crds_step(versions: Versions) -> Step:
    gateway_api = versions.get("gateway-api")
    channel = versions.get("gateway-api", "channel")
    eg = versions.get("envoy-gateway")
    return Step(
        "gateway-crds",
        f"Gateway API {gateway_api} ({channel} channel) and Envoy Gateway {eg} CRDs",
        ("cluster",),
        (
            # Installed once, from Gateway API's own release, so Istio and Envoy Gateway share one
            # bundle and a gateway-api bump is a one-line change.
            ApplyUrl(
                f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{gateway_api}/{channel}-install.yaml",
                creates=CRDS,
            ),
            # Helm never upgrades CRDs; render Envoy Gateway's and apply them ourselves.
            HelmChartCrds(
                "eg-crds",
                Chart("oci://docker.io/envoyproxy/gateway-crds-helm", eg),
                "envoy-gateway-system",
                {"crds.gatewayAPI.enabled": "false", "crds.envoyGateway.enabled": "true"},
            ),
            CrdsEstablished(catalog.crd_names(catalog.GATEWAY_API + catalog.ENVOY_GATEWAY)),
        ),
    )


# -- cert-manager ------------------------------------------------------------------------------
def cert_manager_step(versions: Versions) -> Step:
    version = versions.get("cert-manager")
    probe = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": PROBE_NAME, "namespace": "cert-manager"},
        "spec": {"selfSigned": {}},
    }
    return Step(
        "cert-manager",
        f"cert-manager {version}",
        ("cluster",),
        (
            HelmRelease(
                "cert-manager",
                Chart("cert-manager", version, JETSTACK_CHARTS),
                "cert-manager",
                {"crds": {"enabled": True}},
            ),
            CrdsEstablished(catalog.crd_names(catalog.CERT_MANAGER)),
            *_deployments("cert-manager", "cert-manager", "cert-manager-cainjector", "cert-manager-webhook"),
            # KServe's chart creates an Issuer and a Certificate: the webhook must answer first.
            WebhookAnswers("webhook.cert-manager.io", probe, "cert-manager", (("cert-manager.io", "*", None),)),
        ),
        ("cert-manager",),
    )


# -- Istio ------------------------------------------------------------------------------------
def mesh_telemetry() -> dict[str, Any]:
    """A Telemetry object, as the probe of istiod's validating webhook (a server-side dry run only; the
    mesh's real tracing settings are in manifests/platform/monitoring/mesh-tracing.yaml)."""
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": "mesh-default", "namespace": "istio-system"},
        "spec": {"tracing": [{"providers": [{"name": "jaeger"}], "randomSamplingPercentage": 100}]},
    }


def istio_step(versions: Versions) -> Step:
    version = versions.get("istio")
    istiod_values = {
        "meshConfig": {
            "enableTracing": True,
            "accessLogFile": "/dev/stdout",
            "extensionProviders": [{"name": "jaeger", "opentelemetry": {"service": JAEGER_OTLP, "port": 4317}}],
        },
        # istiod asks for 500m CPU and 2Gi by default: too much for a laptop-sized Kind node.
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}},
    }
    # Reached only from inside the cluster (Envoy Gateway's routes send to it): a ClusterIP, so the
    # Kind host has no way around Envoy Gateway's token check and rate limit, and no LoadBalancer
    # Service waits for an address Kind never gives.
    ingress_values = {"service": {"type": "ClusterIP"}}
    return Step(
        "istio",
        f"Istio {version}: istiod (tracing to Jaeger) and the ingress gateway",
        ("gateway-crds",),
        (
            HelmRelease(
                "istio-base", Chart("base", version, ISTIO_CHARTS), "istio-system", {"defaultRevision": "default"}
            ),
            CrdsEstablished(catalog.crd_names(catalog.ISTIO)),
            HelmRelease("istiod", Chart("istiod", version, ISTIO_CHARTS), "istio-system", istiod_values),
            DeploymentAvailable("istio-system", "istiod"),
            WebhookAnswers(
                "istiod validation",
                mesh_telemetry(),
                "istio-system",
                tuple(
                    (group, "*", None) for group in ("networking.istio.io", "security.istio.io", "telemetry.istio.io")
                ),
            ),
            # The mesh's tracing (Telemetry mesh-default) is part of our manifests, applied with them.
            # Release name istio-ingressgateway: the chart derives the labels net-istio selects from it.
            HelmRelease(
                "istio-ingressgateway", Chart("gateway", version, ISTIO_CHARTS), "istio-system", ingress_values
            ),
            DeploymentAvailable("istio-system", "istio-ingressgateway"),
        ),
        ("istio-system",),
    )


# -- Knative Serving + net-istio ----------------------------------------------------------------
# Knative resolves image tags to digests at the registry, even for images loaded with `kind load`.
# Our images (inferbox/...) exist in no registry, and resolving a name on Docker Hub could make the
# node pull someone else's image, so tag resolution is skipped for Docker Hub names: the kubelet
# then uses the tag, which `kind load` put on every node.
SKIP_TAG_RESOLUTION = "kind.local,ko.local,dev.local,index.docker.io,docker.io"


def knative_step(versions: Versions) -> Step:
    version = versions.get("knative-serving")
    base = f"https://github.com/knative/serving/releases/download/{version}"
    probe = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-domain", "namespace": "knative-serving"},
    }
    # Under mesh-wide STRICT mTLS the activator (which forwards to model pods while they scale from
    # zero) needs a sidecar, so its namespace is enrolled in the mesh before Knative's pods exist;
    # that is why this step waits for Istio's injector.
    enrolled = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "knative-serving", "labels": {"istio-injection": "enabled"}},
    }
    return Step(
        "knative-serving",
        f"Knative Serving {version}",
        ("cluster", "istio"),
        (
            ApplyObjects("the knative-serving namespace, enrolled in the mesh", (enrolled,), show_yaml=True),
            ApplyUrl(f"{base}/serving-crds.yaml", creates=CRDS),
            CrdsEstablished(catalog.crd_names(catalog.KNATIVE_SERVING)),
            ApplyUrl(
                f"{base}/serving-core.yaml",
                {("knative-serving", "config-deployment"): {"registries-skipping-tag-resolving": SKIP_TAG_RESOLUTION}},
                creates=(("", "ConfigMap", "knative-serving"), ("apps", "Deployment", "knative-serving")),
            ),
            *_deployments("knative-serving", "activator", "autoscaler", "controller", "webhook"),
            # The config webhook validates config-* ConfigMaps; our config-domain is applied later.
            WebhookAnswers(
                "config.webhook.serving.knative.dev", probe, "knative-serving", (("", "ConfigMap", "knative-serving"),)
            ),
        ),
        ("knative-serving",),
    )


def net_istio_step(versions: Versions) -> Step:
    version = versions.get("net-istio")
    return Step(
        "net-istio",
        f"Knative's Istio networking layer, net-istio {version}",
        # Its Istio Gateways need Istio's CRDs and a validating istiod.
        ("knative-serving", "istio"),
        (
            ApplyUrl(
                f"https://github.com/knative-extensions/net-istio/releases/download/{version}/net-istio.yaml",
                creates=(
                    ("networking.istio.io", "Gateway", "knative-serving"),
                    ("security.istio.io", "PeerAuthentication", "knative-serving"),
                ),
            ),
            *_deployments("knative-serving", "net-istio-controller", "net-istio-webhook"),
        ),
        ("knative-serving", "istio-system"),
    )


# -- KServe -----------------------------------------------------------------------------------
def kserve_step(versions: Versions) -> Step:
    version = versions.get("kserve")
    probe = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": PROBE_NAME, "namespace": "kserve"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model",
                }
            }
        },
    }
    # KServe's own Prometheus switch (metricsaggregator.enablePrometheusScraping) stays at its
    # default, off: it would point the pods' prometheus.io annotations at the queue-proxy. The model
    # servers' metrics reach Prometheus one way only: each InferenceService's prometheus.io
    # annotations name the model server's /metrics, Istio's sidecar merges them into its own on
    # port 15020, and the model's PodMonitor scrapes that (manifests/tenants/*/*-monitoring.yaml).
    values = {"kserve": {"controller": {"deploymentMode": "Serverless"}}}
    return Step(
        "kserve",
        f"KServe {version} in Serverless mode",
        # The controller registers Knative and Istio kinds only if their CRDs exist when it starts.
        ("cert-manager", "knative-serving", "net-istio", "istio"),
        (
            HelmRelease("kserve-crd", Chart("oci://ghcr.io/kserve/charts/kserve-crd", version), "kserve"),
            CrdsEstablished(catalog.crd_names(catalog.KSERVE)),
            HelmRelease(
                "kserve",
                Chart("oci://ghcr.io/kserve/charts/kserve", version),
                "kserve",
                values,
                retry_webhook_race=True,
                creates=(
                    ("cert-manager.io", "Issuer", "kserve"),
                    ("cert-manager.io", "Certificate", "kserve"),
                    ("serving.kserve.io", "ClusterServingRuntime", None),
                ),
            ),
            ConditionsTrue(
                "cert-manager.io/v1", "Certificate", "serving-cert", "kserve", ("Ready",), "certificate-ready"
            ),
            DeploymentAvailable("kserve", "kserve-controller-manager"),
            WebhookAnswers("inferenceservice.serving.kserve.io", probe, "kserve", (("serving.kserve.io", "*", None),)),
            ObjectsExist("serving.kserve.io/v1alpha1", "ClusterServingRuntime", ("kserve-sklearnserver",)),
        ),
        ("kserve", "cert-manager"),
    )


# -- Envoy AI Gateway, Envoy Gateway ----------------------------------------------------------
def ai_gateway_step(versions: Versions) -> Step:
    version = versions.get("envoy-ai-gateway")
    return Step(
        "envoy-ai-gateway",
        f"Envoy AI Gateway {version} controller",
        ("gateway-crds",),
        (
            HelmRelease(
                "aieg-crd", Chart("oci://docker.io/envoyproxy/ai-gateway-crds-helm", version), "envoy-ai-gateway-system"
            ),
            CrdsEstablished(catalog.crd_names(catalog.ENVOY_AI_GATEWAY)),
            HelmRelease(
                "aieg", Chart("oci://docker.io/envoyproxy/ai-gateway-helm", version), "envoy-ai-gateway-system"
            ),
            DeploymentAvailable("envoy-ai-gateway-system", "ai-gateway-controller"),
        ),
        ("envoy-ai-gateway-system",),
    )


def ai_gateway_rbac() -> tuple[dict[str, Any], ...]:
    """Envoy Gateway's service account may read the AI Gateway kinds (as the AI Gateway docs set up)."""
    return (
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "list-ai-gateway-controller"},
            "rules": [
                {
                    "apiGroups": ["aigateway.envoyproxy.io"],
                    "resources": ["aigatewayroutes", "aiservicebackends", "backendsecuritypolicies"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "list-ai-gateway-controller"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "list-ai-gateway-controller",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "envoy-gateway", "namespace": "envoy-gateway-system"}],
        },
    )


REDIS_NAMESPACE = "redis-system"
REDIS_URL = f"redis.{REDIS_NAMESPACE}.svc.cluster.local:6379"


def redis_objects(version: str) -> tuple[dict[str, Any], ...]:
    """Redis for Envoy Gateway's global rate limits (the AI Gateway's token budgets), as the AI Gateway
    docs deploy it (manifests/envoy-gateway-config/redis.yaml at v0.2.1), with a pinned image."""
    labels = {"app": "redis"}
    return (
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": REDIS_NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "redis", "namespace": REDIS_NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "redis",
                                "image": f"redis:{version}-alpine",
                                "ports": [{"name": "redis", "containerPort": 6379}],
                                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "redis", "namespace": REDIS_NAMESPACE},
            "spec": {"selector": labels, "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}]},
        },
    )


def redis_step(versions: Versions) -> Step:
    version = versions.get("redis")
    return Step(
        "redis",
        f"Redis {version} for Envoy Gateway's global rate limits (the AI Gateway's token budgets)",
        ("cluster",),
        (
            ApplyObjects("Redis", redis_objects(version), show_yaml=True),
            DeploymentAvailable(REDIS_NAMESPACE, "redis"),
        ),
        (REDIS_NAMESPACE,),
    )


def envoy_gateway_step(versions: Versions) -> Step:
    version = versions.get("envoy-gateway")
    # The AI Gateway integration lives in the Helm release's own config, not a ConfigMap applied
    # over it, so a later `helm upgrade` keeps it. Global rate limits (the AI Gateway's token
    # budgets: a cost per answer read from the AI Gateway's metadata) need Envoy Gateway's
    # rate-limit service, which Envoy Gateway deploys (envoy-ratelimit) once a backend is configured.
    config = {
        "envoyGateway": {
            "rateLimit": {"backend": {"type": "Redis", "redis": {"url": REDIS_URL}}},
            "extensionApis": dict(EXTENSION_APIS),
            "extensionManager": {
                "hooks": {"xdsTranslator": {"post": ["VirtualHost", "Translation"]}},
                "service": {
                    "fqdn": {
                        "hostname": "ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local",
                        "port": 1063,
                    }
                },
            },
        }
    }
    values = {
        "config": config,
        # The chart does not restart the controller when its config changes; a digest of the config
        # in the pod template does.
        "deployment": {"pod": {"annotations": {"inferbox.io/config-digest": values_digest(config)}}},
    }
    return Step(
        "envoy-gateway",
        f"Envoy Gateway {version}, with the AI Gateway extension",
        # The extension manager is not fail-open: the AI Gateway controller must answer first. The
        # rate-limit service needs Redis.
        ("gateway-crds", "envoy-ai-gateway", "redis"),
        (
            ApplyObjects("Envoy Gateway may read AI Gateway kinds", ai_gateway_rbac(), show_yaml=True),
            HelmRelease(
                "eg",
                Chart("oci://docker.io/envoyproxy/gateway-helm", version),
                "envoy-gateway-system",
                values,
                skip_crds=True,
            ),
            DeploymentAvailable("envoy-gateway-system", "envoy-gateway"),
            DeploymentAvailable("envoy-gateway-system", "envoy-ratelimit"),
        ),
        ("envoy-gateway-system", "envoy-ai-gateway-system"),
    )


# -- observability ----------------------------------------------------------------------------
def monitoring_step(versions: Versions) -> Step:
    chart = Chart("kube-prometheus-stack", versions.get("kube-prometheus-stack"), PROMETHEUS_CHARTS)
    values = {
        "prometheus": {
            "prometheusSpec": {
                "image": {"tag": versions.get("prometheus")},
                # Select every PodMonitor/ServiceMonitor, not only those labelled with this release.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                # The observability checks wait a few scrape intervals for what they count.
                "scrapeInterval": "10s",
            }
        },
        "grafana": {"image": {"tag": versions.get("grafana")}},
        # The webhook-patch hook Jobs must never get a sidecar: a Job with a sidecar never completes.
        "prometheusOperator": {
            "admissionWebhooks": {"patch": {"podAnnotations": {"sidecar.istio.io/inject": "false"}}}
        },
        # kubeadm binds these to 127.0.0.1 on Kind: their targets would only ever be down.
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeProxy": {"enabled": False},
    }
    return Step(
        "monitoring",
        f"Prometheus {versions.get('prometheus')} and Grafana {versions.get('grafana')} "
        f"(kube-prometheus-stack {chart.version})",
        ("cluster",),
        (
            HelmChartCrds("prometheus", chart, MONITORING),
            CrdsEstablished(catalog.crd_names(catalog.PROMETHEUS_OPERATOR)),
            HelmRelease("prometheus", chart, MONITORING, values, skip_crds=True),
            *_deployments(
                MONITORING, "prometheus-kube-prometheus-operator", "prometheus-grafana", "prometheus-kube-state-metrics"
            ),
            WorkloadReady("StatefulSet", MONITORING, "prometheus-prometheus-kube-prometheus-prometheus"),
            WorkloadReady("DaemonSet", MONITORING, "prometheus-prometheus-node-exporter"),
        ),
        (MONITORING,),
    )


def jaeger_step(versions: Versions) -> Step:
    chart = Chart("jaeger", versions.get("jaeger", "chart"), JAEGER_CHARTS)
    values = {
        # All-in-one with in-memory storage; the chart's default is Cassandra with separate services.
        "provisionDataStore": {"cassandra": False},
        "storage": {"type": "memory"},
        "allInOne": {"enabled": True, "image": {"tag": versions.get("jaeger")}},
        "agent": {"enabled": False},
        "collector": {"enabled": False},
        "query": {"enabled": False},
    }
    return Step(
        "jaeger",
        f"Jaeger {versions.get('jaeger')} all-in-one (chart {chart.version})",
        ("cluster",),
        (HelmRelease("jaeger", chart, MONITORING, values), DeploymentAvailable(MONITORING, "jaeger")),
        (MONITORING,),
    )


def kiali_step(versions: Versions) -> Step:
    version = versions.get("kiali")
    values = {
        # Kiali looks for the control plane in its own namespace unless told otherwise.
        "istio_namespace": "istio-system",
        # Anonymous access: the cluster is local (Kiali is reached by port-forward only).
        "auth": {"strategy": "anonymous"},
        "external_services": {
            "prometheus": {"url": "http://prometheus-kube-prometheus-prometheus.monitoring:9090"},
            "tracing": {"enabled": True, "use_grpc": False, "internal_url": "http://jaeger-query.monitoring:16686"},
            "grafana": {"enabled": True, "internal_url": "http://prometheus-grafana.monitoring"},
        },
    }
    return Step(
        "kiali",
        f"Kiali {version}",
        ("monitoring", "istio", "jaeger"),
        (
            HelmRelease("kiali", Chart("kiali-server", version, KIALI_CHARTS), MONITORING, values),
            DeploymentAvailable(MONITORING, "kiali"),
        ),
        (MONITORING,),
    )


def component_steps(versions: Versions) -> list[Step]:
    """Every upstream component, for a cluster that has a ``cluster`` step."""
    return [
        gateway_crds_step(versions),
        cert_manager_step(versions),
        istio_step(versions),
        knative_step(versions),
        net_istio_step(versions),
        kserve_step(versions),
        ai_gateway_step(versions),
        redis_step(versions),
        envoy_gateway_step(versions),
        monitoring_step(versions),
        jaeger_step(versions),
        kiali_step(versions),
    ]
