"""The versions actually running on a cluster, read back from workloads (image tags, or the
version label where an image is pinned by digest only), for the report and for bump validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferbox.cluster.kube import KubeApi, KubeError

NOT_FOUND = "not found"


@dataclass(frozen=True)
class Source:
    """Where one component's version shows: a workload, and its image tag or a label."""

    component: str
    namespace: str
    kind: str  # Deployment, StatefulSet, DaemonSet
    name: str
    container: str | None = None  # image tag of this container (first one if None)
    label: str | None = None  # or this label's value (Knative's images are digests only)


SOURCES: tuple[Source, ...] = (
    Source("cert-manager", "cert-manager", "Deployment", "cert-manager"),
    Source("istio", "istio-system", "Deployment", "istiod", container="discovery"),
    Source("knative-serving", "knative-serving", "Deployment", "controller", label="app.kubernetes.io/version"),
    Source("net-istio", "knative-serving", "Deployment", "net-istio-controller", label="app.kubernetes.io/version"),
    Source("kserve", "kserve", "Deployment", "kserve-controller-manager", container="manager"),
    Source("envoy-gateway", "envoy-gateway-system", "Deployment", "envoy-gateway", container="envoy-gateway"),
    Source("envoy-ai-gateway", "envoy-ai-gateway-system", "Deployment", "ai-gateway-controller"),
    # The chart labels its objects with its own version (the operator image has the operator's).
    Source(
        "kube-prometheus-stack",
        "monitoring",
        "Deployment",
        "prometheus-kube-prometheus-operator",
        label="app.kubernetes.io/version",
    ),
    Source(
        "prometheus",
        "monitoring",
        "StatefulSet",
        "prometheus-prometheus-kube-prometheus-prometheus",
        container="prometheus",
    ),
    Source("grafana", "monitoring", "Deployment", "prometheus-grafana", container="grafana"),
    Source("jaeger", "monitoring", "Deployment", "jaeger", container="jaeger"),
    Source("kiali", "monitoring", "Deployment", "kiali"),
    Source("jwt-server", "inference-system", "Deployment", "jwt-server", container="jwt-server"),
)


def image_tag(image: str) -> str:
    """``quay.io/x/y:v1@sha256:..`` -> ``v1``; a digest-only reference -> the digest."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return digest or "latest"


def _version_of(obj: Mapping[str, Any], source: Source) -> str:
    if source.label:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        value = labels.get(source.label)
        return str(value) if value else NOT_FOUND
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == source.container), None) if source.container else None
    chosen = chosen or (containers[0] if containers else None)
    return image_tag(str(chosen["image"])) if chosen else NOT_FOUND


def running_versions(api: KubeApi, sources: tuple[Source, ...] = SOURCES) -> dict[str, str]:
    versions: dict[str, str] = {}
    try:
        versions["kubernetes"] = api.server_version()
    except KubeError as exc:
        versions["kubernetes"] = f"unreadable: {exc.message[:80]}"
    for source in sources:
        try:
            obj = api.get("apps/v1", source.kind, source.name, source.namespace)
        except KubeError as exc:
            versions[source.component] = f"unreadable: {exc.message[:80]}"
            continue
        versions[source.component] = _version_of(obj, source) if obj else NOT_FOUND
    return versions


def normalise(version: str) -> str:
    """Spellings differ by component (``knative-v1.18.1``, ``v1.18.1``, ``1.18.1``): compare bare."""
    return version.removeprefix("knative-").removeprefix("v")


def compare(requested: Mapping[str, str], running: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Components whose running version differs from the requested one: name -> (requested, running)."""
    return {
        name: (want, running.get(name, NOT_FOUND))
        for name, want in requested.items()
        if name in running and normalise(want) != normalise(running[name])
    }
