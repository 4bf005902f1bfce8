"""What the gateway refuses about a request itself, before any model sees it (the profile's
``requestChecks``): a path whose dot-segments or encoded slashes would leave a route's match, and a
body larger than the promised limit. Each refusal sits beside its allowed twin.

Paths are sent as written: HTTP clients remove dot-segments themselves, so these requests are
written on a raw connection.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Feature, Platform
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, from_upstream, source_of

pytestmark = [pytest.mark.conformance, pytest.mark.security, pytest.mark.features(Feature.REQUEST_LIMITS)]

# Paths that leave every model route once normalised (/metrics, /docs and the model repository
# API are the model server's own, outside the routes the platform publishes).
ESCAPES = (
    "/v1/models/../../metrics",
    "/v2/models/./../../docs",
    "/v1/models/%2e%2e/%2E%2E/metrics",
    "/v1/models/..%2F..%2Fmetrics",
    "/v1/models/..%2f..%2fv2%2frepository%2findex",
    "/v1/models/..%5C..%5Cmetrics",
)
MARGIN_BYTES = 4096


def raw_request(
    gateway: GatewayClient, host: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> httpx.Response:
    """One request with its path exactly as given."""
    base = gateway.http.base_url
    conn = http.client.HTTPConnection(base.host, base.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **headers})
        reply = conn.getresponse()
        return httpx.Response(reply.status, headers=reply.getheaders(), content=reply.read())
    finally:
        conn.close()


def test_a_path_leaving_its_route_never_reaches_a_model(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Callable[[str], str]
) -> None:
    assert platform.profile.require_request_checks().paths_normalized, "the profile does not promise it"
    host, auth = gateway.host(model), {"Authorization": f"Bearer {token_for(model.tenant)}"}
    # The allowed twin: dot-segments that stay inside a route are resolved, not refused.
    twin = raw_request(gateway, host, "GET", f"/v1/models/elsewhere/../{model.name}", auth)
    assert twin.status_code == 200, f"a path normalised into the route: {describe(twin)}"
    assert source_of(twin) is Source.MODEL, f"a path normalised into the route: {describe(twin)}"
    failures = []
    for path in ESCAPES:
        response = raw_request(gateway, host, "GET", path, auth)
        if from_upstream(response) or response.status_code < 300:
            failures.append(f"{path}: {describe(response)} (server: {response.headers.get('server')})")
    assert not failures, "paths outside every route reached the model:\n" + "\n".join(failures)


def test_a_body_over_the_limit_is_refused_by_the_gateway(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Callable[[str], str]
) -> None:
    limit = platform.profile.require_request_checks().max_body_bytes
    token = token_for(model.tenant)
    path = f"/v1/models/{model.name}:predict"

    def body(size: int) -> bytes:
        head, tail = b'{"instances": [], "padding": "', b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    within = gateway.call(model, "POST", path, token, content=body(limit - MARGIN_BYTES))
    assert from_upstream(within), (
        f"a body {MARGIN_BYTES} bytes under the limit did not reach the model: {describe(within)}"
    )
    assert within.status_code != 413, f"a body under the limit was refused: {describe(within)}"
    over = gateway.call(model, "POST", path, token, content=body(limit + MARGIN_BYTES))
    assert over.status_code == 413, f"a body {MARGIN_BYTES} bytes over the {limit}-byte limit: {describe(over)}"
    assert not from_upstream(over), f"the 413 is not the gateway's own: {describe(over)}"
