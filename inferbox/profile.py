"""The conformance profile: the platform's promises, read from profiles/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbox.errors import ProfileError

DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "conformance.yaml"


@dataclass(frozen=True)
class AuthPromise:
    issuer: str
    audience: str
    tenant_claim: str
    algorithms: tuple[str, ...]
    max_token_lifetime_s: int
    max_clock_skew_s: int


@dataclass(frozen=True)
class IsolationPromise:
    tenants_isolated: bool
    models_only_through_gateway: bool
    identity_headers: tuple[str, ...]


@dataclass(frozen=True)
class CallerIntent:
    """Whether a kind of caller may connect to a tenant model's ports, and have its request answered."""

    connect: bool
    answered: bool


@dataclass(frozen=True)
class MeshPromise:
    trust_domain: str
    mtls: str  # the mode tenant workloads must enforce: STRICT
    callers: dict[str, CallerIntent]  # gateway, ownTenant, otherTenant, outsideMesh

    def spiffe_id(self, namespace: str, service_account: str) -> str:
        return f"spiffe://{self.trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class QuotaPromise:
    every_tenant: bool
    max_pods_per_tenant: int


@dataclass(frozen=True)
class ServingPromise:
    scale_to_zero: bool
    scale_to_zero_deadline_s: float
    cold_start_budget_s: float
    cold_start_cycles: int
    burst_requests: int
    scale_out: bool
    canary_false_failure_rate: float
    canary_requests: int


CALLER_KINDS = ("gateway", "ownTenant", "otherTenant", "outsideMesh")


@dataclass(frozen=True)
class ConformanceProfile:
    """What the platform must guarantee; checks take expected verdicts and budgets from here."""

    name: str
    domain: str
    token_host: str
    auth: AuthPromise
    isolation: IsolationPromise
    rate_limit_per_tenant_rps: int
    raw: dict[str, Any]
    source: Path
    mesh: MeshPromise | None = None
    quota: QuotaPromise | None = None
    serving: ServingPromise | None = None

    def require_serving(self) -> ServingPromise:
        if self.serving is None:
            raise ProfileError(
                f"{self.source}: the profile has no spec.serving", "add it; see profiles/conformance.yaml"
            )
        return self.serving

    def require_mesh(self) -> MeshPromise:
        if self.mesh is None:
            raise ProfileError(f"{self.source}: the profile has no spec.mesh", "add it; see profiles/conformance.yaml")
        return self.mesh

    def require_quota(self) -> QuotaPromise:
        if self.quota is None:
            raise ProfileError(f"{self.source}: the profile has no spec.quota", "add it; see profiles/conformance.yaml")
        return self.quota

    def model_host(self, model: str, tenant: str) -> str:
        """The host name the platform promises for a model: <model>.<tenant>.<domain>."""
        return f"{model}.{tenant}.{self.domain}"


def _need(data: dict[str, Any], dotted: str, source: Path) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ProfileError(
                f"{source}: the profile has no {dotted}",
                "add it; see profiles/conformance.yaml for every field",
            )
        node = node[part]
    return node


def load_profile(path: Path | str = DEFAULT_PROFILE) -> ConformanceProfile:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError(f"conformance profile {path} does not exist", "pass --profile FILE") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}", "fix the YAML syntax") from exc
    if not isinstance(data, dict) or data.get("kind") != "ConformanceProfile":
        raise ProfileError(f"{path}: not a ConformanceProfile", "the file needs kind: ConformanceProfile")
    spec = _need(data, "spec", path)
    try:
        return ConformanceProfile(
            name=str(_need(data, "metadata.name", path)),
            domain=str(_need(spec, "gateway.domain", path)),
            token_host=str(_need(spec, "gateway.tokenHost", path)),
            auth=AuthPromise(
                issuer=str(_need(spec, "authentication.issuer", path)),
                audience=str(_need(spec, "authentication.audience", path)),
                tenant_claim=str(_need(spec, "authentication.tenantClaim", path)),
                algorithms=tuple(_need(spec, "authentication.algorithms", path)),
                max_token_lifetime_s=int(_need(spec, "authentication.maxTokenLifetimeSeconds", path)),
                max_clock_skew_s=int(_need(spec, "authentication.maxClockSkewSeconds", path)),
            ),
            isolation=IsolationPromise(
                tenants_isolated=_need(spec, "isolation.tenants", path) == "isolated",
                models_only_through_gateway=bool(_need(spec, "isolation.modelsReachableOnlyThroughGateway", path)),
                identity_headers=tuple(_need(spec, "isolation.identityHeaders", path)),
            ),
            rate_limit_per_tenant_rps=int(_need(spec, "rateLimit.perTenantRequestsPerSecond", path)),
            raw=data,
            source=path,
            mesh=_mesh(spec, path) if "mesh" in spec else None,
            quota=(
                QuotaPromise(
                    every_tenant=bool(_need(spec, "quota.everyTenant", path)),
                    max_pods_per_tenant=int(_need(spec, "quota.maxPodsPerTenant", path)),
                )
                if "quota" in spec
                else None
            ),
            serving=_serving(spec, path) if "serving" in spec else None,
        )
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: a profile value has the wrong type: {exc}", "compare with the default") from exc


def _mesh(spec: dict[str, Any], path: Path) -> MeshPromise:
    callers_raw = _need(spec, "mesh.callers", path)
    missing = [k for k in CALLER_KINDS if k not in callers_raw]
    if missing:
        raise ProfileError(f"{path}: spec.mesh.callers lacks {', '.join(missing)}", f"state all of {CALLER_KINDS}")
    callers = {
        kind: CallerIntent(
            connect=bool(_need(callers_raw, f"{kind}.connect", path)),
            answered=bool(_need(callers_raw, f"{kind}.answered", path)),
        )
        for kind in CALLER_KINDS
    }
    return MeshPromise(
        trust_domain=str(_need(spec, "mesh.trustDomain", path)),
        mtls=str(_need(spec, "mesh.mtls", path)),
        callers=callers,
    )


def _serving(spec: dict[str, Any], path: Path) -> ServingPromise:
    promise = ServingPromise(
        scale_to_zero=bool(_need(spec, "serving.scaleToZero", path)),
        scale_to_zero_deadline_s=float(_need(spec, "serving.scaleToZeroDeadlineSeconds", path)),
        cold_start_budget_s=float(_need(spec, "serving.coldStart.budgetSeconds", path)),
        cold_start_cycles=int(_need(spec, "serving.coldStart.cycles", path)),
        burst_requests=int(_need(spec, "serving.coldStart.burstRequests", path)),
        scale_out=bool(_need(spec, "serving.scaleOut", path)),
        canary_false_failure_rate=float(_need(spec, "serving.canary.falseFailureRate", path)),
        canary_requests=int(_need(spec, "serving.canary.requests", path)),
    )
    if not 0 < promise.canary_false_failure_rate < 1 or promise.cold_start_cycles < 1 or promise.burst_requests < 1:
        raise ProfileError(
            f"{path}: spec.serving has an impossible value (falseFailureRate in (0, 1), cycles and burstRequests >= 1)",
            "compare with profiles/conformance.yaml",
        )
    return promise
