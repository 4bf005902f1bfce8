"""Every route the manifests publish reaches a backend.

A route whose backend reference does not resolve (a Service that does not exist, a cross-namespace
reference without a ReferenceGrant) is still accepted by Gateway API, with ``ResolvedRefs=False`` in
its status, and Envoy Gateway answers its requests with a 500 of its own. A route that does not
attach to the Gateway is not served at all (the gateway's router answers 404). Neither must exist:
each host, path match and method of every HTTPRoute is requested, with the best token a client of
that route could hold (its tenant's), and must be answered by the backend, not by the gateway.

What exists comes from the manifests (so a route added later is tested too); the verdict is fixed:
no published route may lead nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Platform
from inferbox.manifests import load_manifests
from inferbox.verdicts import Source, describe, from_upstream, source_of
from inferbox.waiting import eventually

pytestmark = [pytest.mark.conformance]

# How long one route may take to answer through rate limiting and a cold start (a model at zero).
ANSWER_DEADLINE_S = 60.0


@dataclass(frozen=True)
class RouteRequest:
    """One request a route's match promises to serve."""

    route: str  # namespace/name
    namespace: str
    host: str
    method: str
    path: str
    backends: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why no request can be derived from the match

    def __str__(self) -> str:
        return f"HTTPRoute {self.route}: {self.method} {self.host}{self.path}"


def _backend_names(rule: dict[str, Any], namespace: str) -> tuple[str, ...]:
    return tuple(
        f"{ref.get('kind', 'Service')} {ref.get('namespace', namespace)}/{ref.get('name')}"
        for ref in rule.get("backendRefs") or []
    )


def _request_for(
    route: str, namespace: str, host: str, match: dict[str, Any], backends: tuple[str, ...]
) -> RouteRequest:
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    base = RouteRequest(route, namespace, host, str(match.get("method", "GET")), str(path.get("value", "/")), backends)
    exact = [h for h in match.get("headers") or [] if h.get("type", "Exact") == "Exact"]
    params = [q for q in match.get("queryParams") or [] if q.get("type", "Exact") == "Exact"]
    if path.get("type", "PathPrefix") not in ("PathPrefix", "Exact"):
        return replace(base, problem=f"a {path.get('type')} path match gives no request path")
    if len(exact) != len(match.get("headers") or []) or len(params) != len(match.get("queryParams") or []):
        return replace(base, problem="a non-Exact header or query match gives no request")
    return replace(base, headers={h["name"]: h["value"] for h in exact}, params={q["name"]: q["value"] for q in params})


def route_requests(manifests_dir: str) -> list[RouteRequest]:
    """Each host, path match and method of every HTTPRoute in the manifests."""
    requests = []
    for route in load_manifests(manifests_dir).of_kind("HTTPRoute"):
        namespace = route.namespace or "default"
        name = f"{namespace}/{route.name}"
        for rule in route.spec.get("rules") or []:
            backends = _backend_names(rule, namespace)
            for match in rule.get("matches") or [{}]:
                for host in route.spec.get("hostnames") or []:
                    requests.append(_request_for(name, namespace, host, match, backends))
    return requests


def _verdict(request: RouteRequest, response: httpx.Response) -> str:
    """Why the answer shows the route leads nowhere ("" when a backend answered)."""
    source = source_of(response)
    upstream = from_upstream(response)
    if source is Source.GATEWAY_RATE_LIMIT:
        raise AssertionError(f"{request}: rate limited, trying again")  # not an answer yet
    if response.status_code == 500 and not upstream and source is not Source.MODEL:
        return (
            f"{request}: the gateway answers 500 itself, so a backend reference does not resolve "
            f"(ResolvedRefs=False on a cluster); the rule's backends: {', '.join(request.backends) or 'none'}"
        )
    if source is Source.GATEWAY_ROUTING:
        return f"{request}: the gateway has no route for it (404 from its router): the route is not attached"
    if source in (Source.GATEWAY_AUTHENTICATION, Source.GATEWAY_AUTHORIZATION):
        return (
            f"{request}: refused before routing even with the {request.namespace} token "
            f"({describe(response)}), so whether it reaches a backend cannot be seen"
        )
    return ""


def test_every_route_reaches_a_backend(
    platform: Platform, gateway: GatewayClient, token_for: Callable[[str], str], request: pytest.FixtureRequest
) -> None:
    requests = route_requests(request.config.getoption("inferbox_manifests"))
    assert requests, "the manifests publish no route"
    tenants = {t.name for t in platform.topology.tenants}
    failures = []
    for wanted in requests:
        if wanted.problem:
            failures.append(f"{wanted}: {wanted.problem}")
            continue
        headers = {"Host": wanted.host, **wanted.headers}
        if wanted.namespace in tenants:
            headers["Authorization"] = f"Bearer {token_for(wanted.namespace)}"

        def answer(wanted: RouteRequest = wanted, headers: dict[str, str] = headers) -> str:
            response = gateway.http.request(wanted.method, wanted.path, headers=headers, params=wanted.params)
            return _verdict(wanted, response)

        problem = eventually(answer, timeout_s=ANSWER_DEADLINE_S, interval_s=0.5)
        if problem:
            failures.append(problem)
    assert not failures, "routes that lead nowhere:\n" + "\n".join(failures)
