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
        )
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: a profile value has the wrong type: {exc}", "compare with the default") from exc
