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
from urllib.parse import urlsplit

from inferbox.contract import LoadClientPlace
from inferbox.load.profiles import CHAT_STREAM, PROTOCOLS, LoadProfile, LoadProfileError, SloFile
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
# The AI Gateway's token budget is per minute, in windows aligned to the minute.
TOKEN_WINDOW_S = 60.0
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Target:
    label: str
    tenant: str
    model: str
    protocol: str
    via: str
    weight: float
    prompt: str = ""  # chat-stream only
    max_tokens: int = 0  # chat-stream only

    @property
    def streamed(self) -> bool:
        return self.protocol == CHAT_STREAM


def _models(entry_tenant: str | None, entry_model: str | None, topology: Topology, chat: bool) -> list[Model]:
    # KServe's V1/V2 protocols serve the predictive models; streamed chat (OpenAI's API on the AI
    # Gateway) the generative ones.
    candidates = topology.generative_models if chat else topology.predictive_models
    models = [
        m
        for m in candidates
        if (entry_tenant is None or m.tenant == entry_tenant) and (entry_model is None or m.name == entry_model)
    ]
    if not models:
        kind = f"generative model ({CHAT_STREAM})" if chat else "predictive model (v1/v2)"
        raise LoadProfileError(
            f"the load mix names tenant {entry_tenant or 'any'} / model {entry_model or 'any'}, which the platform "
            f"does not serve as a {kind}",
            f"such models on this platform: {', '.join(f'{m.tenant}/{m.name}' for m in candidates) or 'none'}",
        )
    return models


def resolve_targets(profile: LoadProfile, topology: Topology) -> list[Target]:
    """The mix as weighted (tenant, model, protocol, path) targets."""
    weights: dict[tuple[str, str, str, str, str, int], float] = {}
    for entry in profile.mix:
        chat = entry.protocol == CHAT_STREAM
        models = _models(entry.tenant, entry.model, topology, chat)
        protocols = (entry.protocol,) if entry.protocol else PROTOCOLS
        share = entry.weight / (len(models) * len(protocols))
        prompt, max_tokens = (entry.prompt, entry.max_tokens) if chat else ("", 0)
        for model in models:
            for protocol in protocols:
                key = (model.tenant, model.name, protocol, entry.via, prompt, max_tokens)
                weights[key] = weights.get(key, 0.0) + share
    return [
        Target(_label(tenant, model, protocol, via, tokens), tenant, model, protocol, via, weight, prompt, tokens)
        for (tenant, model, protocol, via, prompt, tokens), weight in weights.items()
        if weight > 0
    ]


def _label(tenant: str, model: str, protocol: str, via: str, max_tokens: int) -> str:
    if protocol == CHAT_STREAM:
        return f"{tenant}/{model} {protocol} max_tokens {max_tokens} via ai-gateway"
    return f"{tenant}/{model} {protocol} via {via}"


def tenant_peak_rates(profile: LoadProfile, targets: list[Target]) -> dict[str, float]:
    """Peak requests per second each tenant receives at the gateway."""
    total = sum(t.weight for t in targets)
    rates: dict[str, float] = {}
    for target in targets:
        # The AI Gateway has no request budget; its token budget is checked apart (check_token_budgets).
        if target.via == "gateway" and not target.streamed:
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


def tokens_per_request(target: Target) -> int:
    """At most what one streamed chat completion of the target costs the tenant's token budget: its
    completion tokens and its prompt's. A token spans at least one character of the prompt (true of
    the n-gram models' words and punctuation, and of subword tokenizers)."""
    return len(target.prompt) + target.max_tokens


def check_token_budgets(
    profile: LoadProfile, slo: SloFile, targets: list[Target], conformance: ConformanceProfile
) -> None:
    """Refuses a profile whose streams could spend a tenant's token budget within one budget window
    while its SLOs allow no 429: refusals would then measure the budget, not the streams."""
    allowed = next((s.bound for s in slo.slos if s.name == "rate-limited-ratio"), 0.0)
    streamed = [t for t in targets if t.streamed]
    if allowed > 0 or not streamed:
        return
    budget = float(conformance.require_ai_gateway().tokens_per_tenant_per_minute)
    total = sum(t.weight for t in targets)
    seconds = min(TOKEN_WINDOW_S, profile.total_s)  # the most of the run one window can hold
    per_tenant: dict[str, float] = {}
    for target in streamed:
        requests = profile.peak_rate * target.weight / total * seconds
        if profile.arrival == "poisson":
            requests += POISSON_SIGMAS * math.sqrt(requests)
        per_tenant[target.tenant] = per_tenant.get(target.tenant, 0.0) + requests * tokens_per_request(target)
    for tenant, tokens in sorted(per_tenant.items()):
        if tokens > CONSTANT_HEADROOM * budget:
            raise LoadProfileError(
                f"load profile {profile.name} may spend up to {tokens:.0f} tokens of {tenant} in one "
                f"{TOKEN_WINDOW_S:g}s window (prompt characters + maxTokens per stream), against its budget of "
                f"{budget:g} tokens per minute less {100 - CONSTANT_HEADROOM * 100:g}% headroom; the AI Gateway "
                "would answer 429",
                f"lower the rate, maxTokens or the run's length, or allow 429s (maxRateLimitedRatio) in {slo.source}",
            )


def _chat_body(target: Target) -> str:
    return json.dumps(
        {
            "model": target.model,
            "messages": [{"role": "user", "content": target.prompt}],
            "max_tokens": target.max_tokens,
            "stream": True,
            # Usage in the last chunk: what the budget charges, and the stream's token count.
            "stream_options": {"include_usage": True},
        }
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
    ai_gateway_url: str | None = None,
) -> dict[str, Any]:
    targets = resolve_targets(profile, topology)
    check_budgets(profile, slo, targets, conformance)
    check_token_budgets(profile, slo, targets, conformance)
    resolved = []
    for target in targets:
        if target.streamed:
            resolved.append(_chat_target(profile, target, ai_gateway_url))
            continue
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


def _chat_target(profile: LoadProfile, target: Target, ai_gateway_url: str | None) -> dict[str, Any]:
    if not ai_gateway_url:
        raise LoadProfileError(
            f"load profile {profile.name} streams chat completions, and no AI Gateway address was given",
            "run it on a target with the ai-gateway capability",
        )
    return {
        "label": target.label,
        "tenant": target.tenant,
        "model": target.model,
        "protocol": target.protocol,
        "via": target.via,
        "weight": target.weight,
        "method": "POST",
        "url": ai_gateway_url.rstrip("/") + CHAT_PATH,
        "host": urlsplit(ai_gateway_url).netloc,
        "auth": True,
        "body": _chat_body(target),
        "expect": None,
        "chat_stream": True,  # read as server-sent events (the chaos prober's "stream" is its own)
    }


def tenants_needing_tokens(plan: dict[str, Any]) -> list[str]:
    return sorted({t.get("token_tenant") or t["tenant"] for t in plan["targets"] if t["auth"]})
