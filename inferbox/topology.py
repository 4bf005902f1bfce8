"""What exists on the platform, read from the manifests: tenants, models and gateway routes.

Suites use this to learn *what* to test. What the platform must *do* comes from the conformance
profile, never from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferbox.manifests import ManifestSet
from inferbox.model_kinds import GENERATIVE_ARTIFACTS
from inferbox.replica_bounds import replica_bounds

TENANT_LABEL = "inferbox.io/tenant"
# Kinds of model whose server speaks KServe's OpenAI-compatible protocol (text generation) rather
# than its V1/V2 inference protocols.
GENERATIVE_KINDS = frozenset(GENERATIVE_ARTIFACTS)


@dataclass(frozen=True)
class Model:
    """An InferenceService: ``name`` is also the name used in KServe's URL paths."""

    name: str
    tenant: str
    kind: str  # "sklearn" for a runtime model, or the custom container's --model value
    min_replicas: int
    max_replicas: int  # 0: no upper bound (KServe)

    @property
    def generative(self) -> bool:
        """Served with KServe's OpenAI-compatible protocol (through the AI Gateway), not V1/V2."""
        return self.kind in GENERATIVE_KINDS


@dataclass(frozen=True)
class Tenant:
    name: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """A gateway route: its namespace, name and the host names it serves."""

    namespace: str
    name: str
    hostnames: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    tenants: tuple[Tenant, ...]
    models: tuple[Model, ...]
    routes: tuple[Route, ...]

    def model(self, name: str) -> Model:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"no model named {name!r}; models: {[m.name for m in self.models]}")

    def tenant(self, name: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.name == name:
                return tenant
        raise KeyError(f"no tenant named {name!r}")

    def models_of(self, tenant: str) -> tuple[Model, ...]:
        return tuple(m for m in self.models if m.tenant == tenant)

    @property
    def predictive_models(self) -> tuple[Model, ...]:
        """Models served with KServe's V1/V2 protocols at <model>.<tenant>.<domain> on the gateway."""
        return tuple(m for m in self.models if not m.generative)

    @property
    def generative_models(self) -> tuple[Model, ...]:
        """Models served with KServe's OpenAI-compatible protocol, through the AI Gateway."""
        return tuple(m for m in self.models if m.generative)


def _model_kind(spec: dict[str, object]) -> str:
    predictor = spec.get("predictor")
    if not isinstance(predictor, dict):
        return "unknown"
    model = predictor.get("model")
    if isinstance(model, dict):
        fmt = model.get("modelFormat")
        if isinstance(fmt, dict):
            return str(fmt.get("name", "unknown"))
    for container in predictor.get("containers") or []:
        for arg in container.get("args") or []:
            if isinstance(arg, str) and arg.startswith("--model="):
                return arg.split("=", 1)[1]
    return "custom"


def ai_gateway_refs(manifests: ManifestSet) -> set[tuple[str, str]]:
    """(namespace, name) of every Gateway an AIGatewayRoute (Envoy AI Gateway) attaches to: AI
    Gateways, which serve OpenAI's API rather than the models' host names."""
    return {
        (route.namespace or "default", ref["name"])
        for route in manifests.of_kind("AIGatewayRoute")
        for ref in route.spec.get("targetRefs") or []
        if ref.get("kind") == "Gateway"
    }


def read_topology(manifests: ManifestSet) -> Topology:
    tenant_names = sorted(ns.labels[TENANT_LABEL] for ns in manifests.of_kind("Namespace") if TENANT_LABEL in ns.labels)
    models = []
    for isvc in manifests.of_kind("InferenceService"):
        low, high = replica_bounds(isvc.spec.get("predictor") or {})
        models.append(
            Model(
                name=isvc.name,
                tenant=isvc.namespace or "default",
                kind=_model_kind(isvc.spec),
                min_replicas=low,
                max_replicas=high,
            )
        )
    routes = [
        Route(r.namespace or "default", r.name, tuple(r.spec.get("hostnames") or ()))
        for r in manifests.of_kind("HTTPRoute")
    ]
    tenants = tuple(Tenant(name, tuple(sorted(m.name for m in models if m.tenant == name))) for name in tenant_names)
    return Topology(tenants=tenants, models=tuple(sorted(models, key=lambda m: m.name)), routes=tuple(routes))
