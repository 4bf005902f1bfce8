"""Which upstream component brings which custom resource kinds, at the pinned versions.

The installer waits for exactly these CRDs to be Established before anything of their kinds is
applied, and the plan's ordering test uses the same table. Each kind is listed with the versions its
CRD serves and its scope: without a copy of the real CRDs on the machine, the pre-flight and the fake
API server still refuse an apiVersion the pinned release does not serve (the tests compare this table
with the real CRDs wherever ``scripts/upstream-schemas`` has fetched them). Sources: the CRD files of
each release (Gateway API v1.3.0 ``config/crd/experimental``, Envoy Gateway v1.4.2
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
    served: tuple[str, ...]  # the versions the CRD serves
    namespaced: bool = True

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


def _kinds(group: str, *entries: str) -> tuple[CrdKind, ...]:
    """``_kinds(group, "Kind:plural:v1,v1beta1", "Kind:plural:v1:Cluster", ...)``."""
    out = []
    for entry in entries:
        kind, plural, served, *scope = entry.split(":")
        out.append(CrdKind(group, kind, plural, tuple(served.split(",")), namespaced=scope != ["Cluster"]))
    return tuple(out)


GATEWAY_API = _kinds(
    "gateway.networking.k8s.io",
    "BackendTLSPolicy:backendtlspolicies:v1alpha3",
    "GatewayClass:gatewayclasses:v1,v1beta1:Cluster",
    "Gateway:gateways:v1,v1beta1",
    "GRPCRoute:grpcroutes:v1",
    "HTTPRoute:httproutes:v1,v1beta1",
    "ReferenceGrant:referencegrants:v1beta1",
    "TCPRoute:tcproutes:v1alpha2",
    "TLSRoute:tlsroutes:v1alpha2",
    "UDPRoute:udproutes:v1alpha2",
) + _kinds(
    "gateway.networking.x-k8s.io",
    "XBackendTrafficPolicy:xbackendtrafficpolicies:v1alpha1",
    "XListenerSet:xlistenersets:v1alpha1",
)

ENVOY_GATEWAY = _kinds(
    "gateway.envoyproxy.io",
    "Backend:backends:v1alpha1",
    "BackendTrafficPolicy:backendtrafficpolicies:v1alpha1",
    "ClientTrafficPolicy:clienttrafficpolicies:v1alpha1",
    "EnvoyExtensionPolicy:envoyextensionpolicies:v1alpha1",
    "EnvoyPatchPolicy:envoypatchpolicies:v1alpha1",
    "EnvoyProxy:envoyproxies:v1alpha1",
    "HTTPRouteFilter:httproutefilters:v1alpha1",
    "SecurityPolicy:securitypolicies:v1alpha1",
)

ENVOY_AI_GATEWAY = _kinds(
    "aigateway.envoyproxy.io",
    "AIGatewayRoute:aigatewayroutes:v1alpha1",
    "AIServiceBackend:aiservicebackends:v1alpha1",
    "BackendSecurityPolicy:backendsecuritypolicies:v1alpha1",
)

CERT_MANAGER = _kinds(
    "cert-manager.io",
    "CertificateRequest:certificaterequests:v1",
    "Certificate:certificates:v1",
    "ClusterIssuer:clusterissuers:v1:Cluster",
    "Issuer:issuers:v1",
) + _kinds("acme.cert-manager.io", "Challenge:challenges:v1", "Order:orders:v1")

ISTIO = (
    _kinds(
        "networking.istio.io",
        "DestinationRule:destinationrules:v1,v1alpha3,v1beta1",
        "EnvoyFilter:envoyfilters:v1alpha3",
        "Gateway:gateways:v1,v1alpha3,v1beta1",
        "ProxyConfig:proxyconfigs:v1beta1",
        "ServiceEntry:serviceentries:v1,v1alpha3,v1beta1",
        "Sidecar:sidecars:v1,v1alpha3,v1beta1",
        "VirtualService:virtualservices:v1,v1alpha3,v1beta1",
        "WorkloadEntry:workloadentries:v1,v1alpha3,v1beta1",
        "WorkloadGroup:workloadgroups:v1,v1alpha3,v1beta1",
    )
    + _kinds(
        "security.istio.io",
        "AuthorizationPolicy:authorizationpolicies:v1,v1beta1",
        "PeerAuthentication:peerauthentications:v1,v1beta1",
        "RequestAuthentication:requestauthentications:v1,v1beta1",
    )
    + _kinds("telemetry.istio.io", "Telemetry:telemetries:v1,v1alpha1")
    + _kinds("extensions.istio.io", "WasmPlugin:wasmplugins:v1alpha1")
)

KNATIVE_SERVING = (
    _kinds(
        "serving.knative.dev",
        "Configuration:configurations:v1",
        "DomainMapping:domainmappings:v1beta1",
        "Revision:revisions:v1",
        "Route:routes:v1",
        "Service:services:v1",
    )
    + _kinds("autoscaling.internal.knative.dev", "Metric:metrics:v1alpha1", "PodAutoscaler:podautoscalers:v1alpha1")
    + _kinds(
        "networking.internal.knative.dev",
        "Certificate:certificates:v1alpha1",
        "ClusterDomainClaim:clusterdomainclaims:v1alpha1:Cluster",
        "Ingress:ingresses:v1alpha1",
        "ServerlessService:serverlessservices:v1alpha1",
    )
    + _kinds("caching.internal.knative.dev", "Image:images:v1alpha1")
)

KSERVE = _kinds(
    "serving.kserve.io",
    "ClusterServingRuntime:clusterservingruntimes:v1alpha1:Cluster",
    "ClusterStorageContainer:clusterstoragecontainers:v1alpha1:Cluster",
    "InferenceGraph:inferencegraphs:v1alpha1",
    "InferenceService:inferenceservices:v1beta1",
    "LocalModelCache:localmodelcaches:v1alpha1:Cluster",
    "LocalModelNodeGroup:localmodelnodegroups:v1alpha1:Cluster",
    "LocalModelNode:localmodelnodes:v1alpha1:Cluster",
    "ServingRuntime:servingruntimes:v1alpha1",
    "TrainedModel:trainedmodels:v1alpha1",
)

PROMETHEUS_OPERATOR = _kinds(
    "monitoring.coreos.com",
    "AlertmanagerConfig:alertmanagerconfigs:v1alpha1",
    "Alertmanager:alertmanagers:v1",
    "PodMonitor:podmonitors:v1",
    "Probe:probes:v1",
    "PrometheusAgent:prometheusagents:v1alpha1",
    "Prometheus:prometheuses:v1",
    "PrometheusRule:prometheusrules:v1",
    "ScrapeConfig:scrapeconfigs:v1alpha1",
    "ServiceMonitor:servicemonitors:v1",
    "ThanosRuler:thanosrulers:v1",
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
