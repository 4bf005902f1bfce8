"""The run plan the locustfile follows: a profile resolved against what exists on the platform.

The mix is resolved against the topology (read from the manifests) into concrete targets: URL,
Host header, a known request body and its known answer (inferbox.samples). The per-tenant request
budget comes from the conformance profile, never from the manifests under test.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferbox.contract import LoadClientPlace
from inferbox.load.profiles import PROTOCOLS, LoadProfile, LoadProfileError, SloFile
from inferbox.profile import ConformanceProfile
from inferbox.samples import samples_for, v2_shape
from inferbox.topology import Model, Topology

PLAN_SCHEMA = "inferbox.io/load-plan/v1"
# Tokens live 5 minutes (JWT_TOKEN_TTL_SECONDS); users renew a minute before expiry.
TOKEN_RENEWAL_S = 60.0
# Constant spacing may use this share of a tenant's budget; the rest absorbs timing jitter and a
# generator catching up after a stall.
CONSTANT_HEADROOM = 0.9
# Poisson arrivals: the peak rate plus this many standard deviations of a one-second count must stay
# inside the budget (a tenant's bucket refills every second), so a 429 is rarer than 1 in 10^6 windows.
POISSON_SIGMAS = 5.0


@dataclass(frozen=True)
class Target:
    label: str
    tenant: str
    model: str
    protocol: str
    via: str
    weight: float


def _models(entry_tenant: str | None, entry_model: str | None, topology: Topology) -> list[Model]:
    # The load generator speaks KServe's V1/V2 protocols: generative models (OpenAI's API on the AI
    # Gateway) are not part of a mix.
    models = [
        m
        for m in topology.predictive_models
        if (entry_tenant is None or m.tenant == entry_tenant) and (entry_model is None or m.name == entry_model)
    ]
    if not models:
        raise LoadProfileError(
            f"the load mix names tenant {entry_tenant or 'any'} / model {entry_model or 'any'}, which the platform "
            "does not serve",
            f"models on this platform: {', '.join(f'{m.tenant}/{m.name}' for m in topology.predictive_models)}",
        )
    return models


def resolve_targets(profile: LoadProfile, topology: Topology) -> list[Target]:
    """The mix as weighted (tenant, model, protocol, path) targets."""
    weights: dict[tuple[str, str, str, str], float] = {}
    for entry in profile.mix:
        models = _models(entry.tenant, entry.model, topology)
        protocols = (entry.protocol,) if entry.protocol else PROTOCOLS
        share = entry.weight / (len(models) * len(protocols))
        for model in models:
            for protocol in protocols:
                key = (model.tenant, model.name, protocol, entry.via)
                weights[key] = weights.get(key, 0.0) + share
    return [
        Target(f"{tenant}/{model} {protocol} via {via}", tenant, model, protocol, via, weight)
        for (tenant, model, protocol, via), weight in weights.items()
        if weight > 0
    ]


def tenant_peak_rates(profile: LoadProfile, targets: list[Target]) -> dict[str, float]:
    """Peak requests per second each tenant receives at the gateway."""
    total = sum(t.weight for t in targets)
    rates: dict[str, float] = {}
    for target in targets:
        if target.via == "gateway":
            rates[target.tenant] = rates.get(target.tenant, 0.0) + profile.peak_rate * target.weight / total
    return rates


def check_budgets(profile: LoadProfile, slo: SloFile, targets: list[Target], conformance: ConformanceProfile) -> None:
    """Refuses a profile that would run a tenant into its budget while its SLOs allow no 429."""
    allowed = next((s.bound for s in slo.slos if s.name == "rate-limited-ratio"), 0.0)
    if allowed > 0:
        return
    budget = float(conformance.rate_limit_per_tenant_rps)
    for tenant, rate in sorted(tenant_peak_rates(profile, targets).items()):
        if profile.arrival == "poisson":
            ceiling = rate + POISSON_SIGMAS * math.sqrt(rate)
            why = f"Poisson arrivals at {rate:g}/s exceed {budget:g} in some one-second windows"
        else:
            ceiling = rate / CONSTANT_HEADROOM
            headroom = 100 - CONSTANT_HEADROOM * 100
            why = f"{rate:g}/s leaves less than {headroom:g}% headroom under {budget:g}/s"
        if ceiling > budget:
            raise LoadProfileError(
                f"load profile {profile.name} sends {tenant} up to {rate:g} requests/s through the gateway, "
                f"against its budget of {budget:g}/s ({why}); the platform would answer 429 and the run would "
                "measure the rate limiter",
                f"lower the rate, spread it over more tenants in the mix, or allow 429s with maxRateLimitedRatio in "
                f"{slo.source}",
            )


def _body(model: Model, protocol: str) -> tuple[str, list[int]]:
    sample = samples_for(model.kind)[0]
    if protocol == "v1":
        return json.dumps({"instances": sample.instances}), sample.expected
    tensor = {
        "name": "input-0",
        "shape": v2_shape(model.kind, len(sample.instances)),
        "datatype": "FP32",
        "data": [value for row in sample.instances for value in row],
    }
    return json.dumps({"inputs": [tensor]}), sample.expected


def build_plan(
    profile: LoadProfile,
    slo: SloFile,
    topology: Topology,
    conformance: ConformanceProfile,
    place: LoadClientPlace,
    output_dir: Path,
    workers: int | None = None,
) -> dict[str, Any]:
    targets = resolve_targets(profile, topology)
    check_budgets(profile, slo, targets, conformance)
    resolved = []
    for target in targets:
        model = topology.model(target.model)
        body, expected = _body(model, target.protocol)
        path = f"/v1/models/{model.name}:predict" if target.protocol == "v1" else f"/v2/models/{model.name}/infer"
        if target.via == "direct":
            urls = place.replica_urls.get(f"{model.tenant}/{model.name}")
            if not urls:
                raise LoadProfileError(
                    f"load profile {profile.name} sends requests directly to {model.tenant}/{model.name}, but this "
                    "place reaches no replica of it",
                    "run it on a target with the direct-model-access capability",
                )
            base = urls[0]
        else:
            base = place.gateway_url
        resolved.append(
            {
                "label": target.label,
                "tenant": target.tenant,
                "model": target.model,
                "protocol": target.protocol,
                "via": target.via,
                "weight": target.weight,
                "method": "POST",
                "url": base.rstrip("/") + path,
                "host": conformance.model_host(model.name, model.tenant),
                # Directly, a replica's mesh sidecar (when it has one) checks the token too.
                "auth": target.via == "gateway" or place.replica_tls is not None,
                "body": body,
                "expect": expected,
            }
        )
    return {
        "schema": PLAN_SCHEMA,
        "name": profile.name,
        "mode": profile.mode,
        "arrival": profile.arrival,
        "seed": profile.seed,
        "stages": [{"seconds": s.seconds, "rate": s.rate, "users": s.users} for s in profile.stages],
        "warmup_s": profile.warmup_s,
        "timeout_s": profile.timeout_s,
        "workers": profile.workers if workers is None else workers,
        "targets": resolved,
        "token": {
            "base_url": place.gateway_url,
            "host": conformance.token_host,
            "path": "/token",
            "refresh_before_expiry_s": TOKEN_RENEWAL_S,
        },
        "output_dir": str(output_dir),
        "tls": dict(zip(("cert", "key", "ca"), place.replica_tls, strict=True)) if place.replica_tls else None,
    }


def tenants_needing_tokens(plan: dict[str, Any]) -> list[str]:
    return sorted({t.get("token_tenant") or t["tenant"] for t in plan["targets"] if t["auth"]})
