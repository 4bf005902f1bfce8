"""Who answered: the model's JSON even when Envoy could not time the upstream (an early answer)."""

from __future__ import annotations

import httpx

from inferbox.verdicts import Source, source_of

JSON = {"content-type": "application/json"}


def test_the_model_answers_through_the_gateway() -> None:
    timed = httpx.Response(404, headers={**JSON, "server": "uvicorn"}, text='{"error": "x"}')
    assert source_of(timed) is Source.MODEL
    # The model refused before the gateway had sent the whole body: no upstream time, connection closed.
    early = httpx.Response(404, headers={**JSON, "connection": "close"}, text='{"error": "x"}')
    assert source_of(early) is Source.MODEL


def test_the_gateways_own_replies_are_not_the_model() -> None:
    assert source_of(httpx.Response(403, text="RBAC: access denied")) is Source.GATEWAY_AUTHORIZATION
    assert source_of(httpx.Response(503, headers={"connection": "close"}, text="no healthy upstream")) is Source.UNKNOWN


def test_a_reply_without_a_server_header_is_the_gateways_own() -> None:
    """Envoy Gateway passes the upstream's server header through and adds none to its own replies."""
    challenge = {"www-authenticate": 'Bearer realm="http://x/", error="invalid_token"'}
    assert source_of(httpx.Response(401, headers=challenge, text="Jwt is expired")) is Source.GATEWAY_AUTHENTICATION
    mesh = {**challenge, "server": "istio-envoy"}
    assert source_of(httpx.Response(401, headers=mesh, text="Jwt is expired")) is Source.MESH_AUTHENTICATION
    assert source_of(httpx.Response(403, headers={"server": "istio-envoy"}, text="RBAC: access denied")) is (
        Source.MESH_AUTHORIZATION
    )
    assert source_of(httpx.Response(404)) is Source.GATEWAY_ROUTING
    assert source_of(httpx.Response(404, headers={"server": "istio-envoy"})) is not Source.GATEWAY_ROUTING
