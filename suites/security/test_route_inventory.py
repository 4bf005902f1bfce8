"""Every route rule the gateway serves is attacked: each host x path match x method of every
HTTPRoute in the manifests (inference POSTs included), without a token and with another tenant's.

What exists comes from the manifests (so a route added later, or one that takes over a model's
predict path, is attacked too); what must happen comes from the profile: every model host, i.e.
every host but the token host, refuses a request without a token (401) and one with another
tenant's token (403), both at the gateway. A host's tenant is its second label
(<model>.<tenant>.<domain>, the scheme the profile promises). Beside each host, its own tenant's
token is not refused by the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Feature, Platform
from inferbox.manifests import load_manifests
from inferbox.verdicts import Source, describe, source_of

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.JWT_AUTHENTICATION, Feature.TENANT_AUTHORIZATION),
]

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
PARALLEL = 8


@dataclass(frozen=True)
class Target:
    route: str  # namespace/name
    host: str
    tenant: str  # the host's tenant by the profile's host scheme ("" when the host follows no scheme)
    paths: tuple[str, ...]


def _paths(match: dict[str, object], model: str) -> tuple[str, ...]:
    """Concrete paths for a match: an exact path itself; a prefix, itself and the KServe paths under it."""
    path = match.get("path") if isinstance(match.get("path"), dict) else {}
    assert isinstance(path, dict)
    value = str(path.get("value", "/"))
    if path.get("type", "PathPrefix") == "Exact":
        return (value,)
    base = value.rstrip("/")
    return (value, f"{base}/{model}", f"{base}/{model}:predict", f"{base}/{model}/infer")


def inventory(platform: Platform, manifests_dir: str) -> list[Target]:
    domain, token_host = platform.profile.domain, platform.profile.token_host
    targets = []
    for route in load_manifests(manifests_dir).of_kind("HTTPRoute"):
        for host in route.spec.get("hostnames") or []:
            if host == token_host or not host.endswith("." + domain):
                continue
            labels = host.removesuffix("." + domain).split(".")
            tenant = labels[1] if len(labels) == 2 else ""
            paths: list[str] = []
            for rule in route.spec.get("rules") or []:
                for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                    paths.extend(p for p in _paths(match, labels[0]) if p not in paths)
            targets.append(Target(f"{route.namespace}/{route.name}", host, tenant, tuple(paths)))
    return targets


def _verdict(response: httpx.Response, status: int, source: Source) -> str | None:
    if response.status_code == status and source_of(response) is source:
        return None
    return describe(response)


def test_every_route_rule_refuses_missing_and_foreign_tokens(
    platform: Platform, gateway: GatewayClient, token_for: Callable[[str], str], request: pytest.FixtureRequest
) -> None:
    targets = inventory(platform, request.config.getoption("inferbox_manifests"))
    assert targets, "the manifests publish no model route"
    tenants = [t.name for t in platform.topology.tenants]
    tokens = {t: token_for(t) for t in tenants}  # fetched once, before the parallel attacks
    jobs: list[tuple[str, Callable[[], str | None]]] = []
    for target in targets:
        others = [t for t in tenants if t != target.tenant]
        other = others[0] if others else ""
        for path in target.paths:
            for method in METHODS:
                where = f"{method} {target.host}{path} ({target.route})"

                def anonymous(method: str = method, path: str = path, host: str = target.host) -> str | None:
                    response = gateway.http.request(method, path, headers={"Host": host}, content=b"{}")
                    return _verdict(response, 401, Source.GATEWAY_AUTHENTICATION)

                def foreign(
                    method: str = method, path: str = path, host: str = target.host, other: str = other
                ) -> str | None:
                    headers = {"Host": host, "Authorization": f"Bearer {tokens[other]}"}
                    response = gateway.http.request(method, path, headers=headers, content=b"{}")
                    return _verdict(response, 403, Source.GATEWAY_AUTHORIZATION)

                jobs.append((f"{where} without a token", anonymous))
                if other:
                    jobs.append((f"{where} with {other}'s token", foreign))
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        verdicts = list(pool.map(lambda job: job[1](), jobs))
    failures = [f"{what}: {why}" for (what, _), why in zip(jobs, verdicts, strict=True) if why is not None]
    assert not failures, f"{len(failures)} of {len(jobs)} attacks were not refused by the gateway:\n" + "\n".join(
        failures
    )


def test_each_model_host_answers_its_own_tenant(
    platform: Platform, gateway: GatewayClient, token_for: Callable[[str], str], request: pytest.FixtureRequest
) -> None:
    """The allowed twin: on every host of a known tenant, its own token passes the gateway's checks."""
    known = {t.name for t in platform.topology.tenants}
    failures = []
    for target in inventory(platform, request.config.getoption("inferbox_manifests")):
        if target.tenant not in known:
            continue
        headers = {"Host": target.host, "Authorization": f"Bearer {token_for(target.tenant)}"}
        response = gateway.http.request("GET", target.paths[0], headers=headers)
        if source_of(response) in (Source.GATEWAY_AUTHENTICATION, Source.GATEWAY_AUTHORIZATION):
            failures.append(f"GET {target.host}{target.paths[0]}: {describe(response)}")
    assert not failures, "\n".join(failures)
