"""Our manifests as the last step of the plan: applied in dependency order, then waited on.

The order within the step: namespaces; the JWT server's generated Secrets; core objects; mesh
policy; the gateway (EnvoyProxy, GatewayClass, Gateway); routes and their policies; models last.
Everything is applied before anything is awaited: controllers converge in parallel, and the waits
then hold as soon as the slowest (the models) are ready.
"""

from __future__ import annotations

from typing import Any

from inferbox.cluster import catalog
from inferbox.cluster.actions import ApplyObjects, JwtSecrets
from inferbox.cluster.components import LocalImage
from inferbox.cluster.observability import dashboard_configmaps, knative_autoscaler_scrape
from inferbox.cluster.plan import Item, Step
from inferbox.cluster.serving import RolloutInferenceService
from inferbox.cluster.waits import (
    ConditionsTrue,
    CrdsEstablished,
    DeploymentAvailable,
    PolicyAccepted,
    RouteAccepted,
    Wait,
    WorkloadReady,
)
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.serving_plan import previous_predictor
from inferbox.topology import read_topology

LOCAL_IMAGE_PREFIX = "inferbox/"

# Lower applies first. Kinds not listed go last (after everything they could depend on).
APPLY_RANK: dict[str, int] = {
    "Namespace": 0,
    "ServiceAccount": 1,
    "ConfigMap": 1,
    "ResourceQuota": 1,
    "LimitRange": 1,
    "Role": 1,
    "ClusterRole": 1,
    "RoleBinding": 2,
    "ClusterRoleBinding": 2,
    "Service": 2,
    "Deployment": 3,
    "StatefulSet": 3,
    "DaemonSet": 3,
    "NetworkPolicy": 3,
    "PeerAuthentication": 4,
    "RequestAuthentication": 4,
    "AuthorizationPolicy": 4,
    "Telemetry": 4,
    "EnvoyProxy": 5,
    "GatewayClass": 6,
    "Gateway": 7,
    "ReferenceGrant": 8,
    "HTTPRoute": 9,
    "GRPCRoute": 9,
    "ClientTrafficPolicy": 10,
    "SecurityPolicy": 10,
    "BackendTrafficPolicy": 10,
    "EnvoyExtensionPolicy": 10,
    "InferenceService": 11,
    "PodMonitor": 12,
    "ServiceMonitor": 12,
}
LAST = 99


def _rank(obj: K8sObject) -> int:
    return APPLY_RANK.get(obj.kind, LAST)


def wait_for(obj: K8sObject) -> Wait | None:
    """What "ready" means for one of our objects, by kind (None: nothing to wait for)."""
    ns = obj.namespace or ""
    if obj.kind == "Deployment":
        return DeploymentAvailable(ns, obj.name)
    if obj.kind in ("StatefulSet", "DaemonSet"):
        return WorkloadReady(obj.kind, ns, obj.name)
    if obj.kind == "GatewayClass":
        return ConditionsTrue(obj.api_version, obj.kind, obj.name, None, ("Accepted",), "gateway-programmed")
    if obj.kind == "Gateway":
        return ConditionsTrue(obj.api_version, obj.kind, obj.name, ns, ("Accepted", "Programmed"), "gateway-programmed")
    if obj.kind in ("HTTPRoute", "GRPCRoute"):
        return RouteAccepted(obj.api_version, obj.kind, obj.name, ns)
    if obj.kind in ("SecurityPolicy", "ClientTrafficPolicy", "BackendTrafficPolicy", "EnvoyExtensionPolicy"):
        return PolicyAccepted(obj.api_version, obj.kind, obj.name, ns)
    if obj.kind == "InferenceService":
        return ConditionsTrue(obj.api_version, obj.kind, obj.name, ns, ("Ready",), "inference-service-ready")
    if obj.kind == "Certificate":
        return ConditionsTrue(obj.api_version, obj.kind, obj.name, ns, ("Ready",), "certificate-ready")
    return None


def _containers(obj: K8sObject) -> list[dict[str, Any]]:
    if obj.kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return list(((obj.spec.get("template") or {}).get("spec") or {}).get("containers") or [])
    if obj.kind == "InferenceService":
        predictor = obj.spec.get("predictor") or {}
        return list(predictor.get("containers") or [])
    return []


def local_images(manifests: ManifestSet) -> list[LocalImage]:
    """Images of ours the manifests use: built from images/<name>/Dockerfile, never pulled."""
    found: dict[str, LocalImage] = {}
    for obj in manifests:
        for container in _containers(obj):
            image = str(container.get("image", ""))
            if image.startswith(LOCAL_IMAGE_PREFIX):
                name = image.removeprefix(LOCAL_IMAGE_PREFIX).split(":")[0].split("@")[0]
                found[image] = LocalImage(image, f"images/{name}/Dockerfile")
    return [found[k] for k in sorted(found)]


def required_crds(manifests: ManifestSet) -> tuple[str, ...]:
    names = {crd.crd_name for obj in manifests if (crd := catalog.crd_for(obj.group, obj.kind)) is not None}
    return tuple(sorted(names))


def platform_step(manifests: ManifestSet, needs: tuple[str, ...]) -> Step:
    ordered = sorted(manifests, key=_rank)
    namespaces = [o for o in ordered if o.kind == "Namespace"]
    rest = [o for o in ordered if o.kind != "Namespace"]
    tenants = tuple(t.name for t in read_topology(manifests).tenants)
    items: list[Item] = [CrdsEstablished(required_crds(manifests))]
    items.append(ApplyObjects("namespaces", tuple(o.body for o in namespaces), sources=_sources(manifests, namespaces)))
    if manifests.get("Deployment", "jwt-server", "inference-system") is not None:
        items.append(JwtSecrets(tenants))
    # InferenceServices in a canary rollout are applied by their own step: a rolled-out revision first.
    canaries = [o for o in rest if o.kind == "InferenceService" and previous_predictor(o) is not None]
    plain = [o for o in rest if o not in canaries]
    items.append(
        ApplyObjects(
            "the platform's objects, in dependency order",
            tuple(o.body for o in plain),
            sources=_sources(manifests, plain),
        )
    )
    items.extend(RolloutInferenceService(o.body, str(manifests.root / o.source)) for o in canaries)
    dashboards = dashboard_configmaps(manifests.root)
    if dashboards:
        items.append(ApplyObjects("Grafana dashboards, as ConfigMaps for Grafana's sidecar", tuple(dashboards)))
    items.append(
        ApplyObjects(
            "Knative's autoscaler metrics (the replica counts), scraped through one PERMISSIVE port",
            tuple(knative_autoscaler_scrape()),
            show_yaml=True,
        )
    )
    items.extend(w for o in rest if (w := wait_for(o)) is not None)
    touched = sorted({o.namespace for o in manifests if o.namespace} | {o.name for o in namespaces})
    return Step("platform", f"our manifests from {manifests.root}", needs, tuple(items), tuple(touched))


def _sources(manifests: ManifestSet, objects: list[K8sObject]) -> tuple[str, ...]:
    return tuple(str(manifests.root / o.source) for o in objects)
