"""Which upstream component brings which custom resource kinds, at the pinned versions.

The installer waits for exactly these CRDs to be Established before anything of their kinds is
applied, and the plan's ordering test uses the same table. Sources: the CRD files of each release
(Gateway API v1.3.0 ``config/crd/experimental``, Envoy Gateway v1.4.2
``charts/gateway-helm/crds/generated``, Istio 1.26.2 ``manifests/charts/base/files/crd-all.gen.yaml``,
Knative Serving 1.18 ``config/core/300-resources``, KServe v0.15.2 ``charts/kserve-crd``,
Envoy AI Gateway v0.2.1 ``manifests/charts/ai-gateway-crds-helm``, cert-manager v1.18.1
``deploy/crds``, kube-prometheus-stack 75.6.0 ``charts/crds``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrdKind:
    group: str
    kind: str
    plural: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


def _kinds(group: str, *pairs: str) -> tuple[CrdKind, ...]:
    """``_kinds(group, "Kind:plural", ...)``."""
    out = []
    for pair in pairs:
        kind, plural = pair.split(":")
        out.append(CrdKind(group, kind, plural))
    return tuple(out)


GATEWAY_API = _kinds(
    "gateway.networking.k8s.io",
    "BackendTLSPolicy:backendtlspolicies",
    "GatewayClass:gatewayclasses",
    "Gateway:gateways",
    "GRPCRoute:grpcroutes",
    "HTTPRoute:httproutes",
    "ReferenceGrant:referencegrants",
    "TCPRoute:tcproutes",
    "TLSRoute:tlsroutes",
    "UDPRoute:udproutes",
) + _kinds(
    "gateway.networking.x-k8s.io",
    "XBackendTrafficPolicy:xbackendtrafficpolicies",
    "XListenerSet:xlistenersets",
)

ENVOY_GATEWAY = _kinds(
    "gateway.envoyproxy.io",
    "Backend:backends",
    "BackendTrafficPolicy:backendtrafficpolicies",
    "ClientTrafficPolicy:clienttrafficpolicies",
    "EnvoyExtensionPolicy:envoyextensionpolicies",
    "EnvoyPatchPolicy:envoypatchpolicies",
    "EnvoyProxy:envoyproxies",
    "HTTPRouteFilter:httproutefilters",
    "SecurityPolicy:securitypolicies",
)

ENVOY_AI_GATEWAY = _kinds(
    "aigateway.envoyproxy.io",
    "AIGatewayRoute:aigatewayroutes",
    "AIServiceBackend:aiservicebackends",
    "BackendSecurityPolicy:backendsecuritypolicies",
)

CERT_MANAGER = _kinds(
    "cert-manager.io",
    "CertificateRequest:certificaterequests",
    "Certificate:certificates",
    "ClusterIssuer:clusterissuers",
    "Issuer:issuers",
) + _kinds("acme.cert-manager.io", "Challenge:challenges", "Order:orders")

ISTIO = (
    _kinds(
        "networking.istio.io",
        "DestinationRule:destinationrules",
        "EnvoyFilter:envoyfilters",
        "Gateway:gateways",
        "ProxyConfig:proxyconfigs",
        "ServiceEntry:serviceentries",
        "Sidecar:sidecars",
        "VirtualService:virtualservices",
        "WorkloadEntry:workloadentries",
        "WorkloadGroup:workloadgroups",
    )
    + _kinds(
        "security.istio.io",
        "AuthorizationPolicy:authorizationpolicies",
        "PeerAuthentication:peerauthentications",
        "RequestAuthentication:requestauthentications",
    )
    + _kinds("telemetry.istio.io", "Telemetry:telemetries")
    + _kinds("extensions.istio.io", "WasmPlugin:wasmplugins")
)

KNATIVE_SERVING = (
    _kinds(
        "serving.knative.dev",
        "Configuration:configurations",
        "DomainMapping:domainmappings",
        "Revision:revisions",
        "Route:routes",
        "Service:services",
    )
    + _kinds("autoscaling.internal.knative.dev", "Metric:metrics", "PodAutoscaler:podautoscalers")
    + _kinds(
        "networking.internal.knative.dev",
        "Certificate:certificates",
        "ClusterDomainClaim:clusterdomainclaims",
        "Ingress:ingresses",
        "ServerlessService:serverlessservices",
    )
    + _kinds("caching.internal.knative.dev", "Image:images")
)

KSERVE = _kinds(
    "serving.kserve.io",
    "ClusterServingRuntime:clusterservingruntimes",
    "ClusterStorageContainer:clusterstoragecontainers",
    "InferenceGraph:inferencegraphs",
    "InferenceService:inferenceservices",
    "LocalModelCache:localmodelcaches",
    "LocalModelNodeGroup:localmodelnodegroups",
    "LocalModelNode:localmodelnodes",
    "ServingRuntime:servingruntimes",
    "TrainedModel:trainedmodels",
)

PROMETHEUS_OPERATOR = _kinds(
    "monitoring.coreos.com",
    "AlertmanagerConfig:alertmanagerconfigs",
    "Alertmanager:alertmanagers",
    "PodMonitor:podmonitors",
    "Probe:probes",
    "PrometheusAgent:prometheusagents",
    "Prometheus:prometheuses",
    "PrometheusRule:prometheusrules",
    "ScrapeConfig:scrapeconfigs",
    "ServiceMonitor:servicemonitors",
    "ThanosRuler:thanosrulers",
)

ALL = (
    GATEWAY_API
    + ENVOY_GATEWAY
    + ENVOY_AI_GATEWAY
    + CERT_MANAGER
    + ISTIO
    + KNATIVE_SERVING
    + KSERVE
    + PROMETHEUS_OPERATOR
)


def crd_names(kinds: tuple[CrdKind, ...]) -> tuple[str, ...]:
    return tuple(k.crd_name for k in kinds)


def crd_for(group: str, kind: str) -> CrdKind | None:
    """The CRD serving ``group``/``kind``, or None for a built-in kind."""
    for entry in ALL:
        if entry.group == group and entry.kind == kind:
            return entry
    return None
