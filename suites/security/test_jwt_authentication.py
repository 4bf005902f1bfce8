"""The gateway authenticates every model request: only a valid token from the platform's issuer,
for the gateway's audience, gets through; everything else is refused by the gateway itself (401).

Expected issuer, audience and clock skew come from the conformance profile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.tokens import TokenForge
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of

pytestmark = [pytest.mark.conformance, pytest.mark.security, pytest.mark.features(Feature.JWT_AUTHENTICATION)]


@dataclass(frozen=True)
class BadToken:
    """A request whose credentials the gateway must refuse: ``make`` builds the Authorization header."""

    name: str
    make: Callable[[TokenForge, str, Platform], str | None]
    # Envoy's jwt_authn answers 401, except 403 for a verified token of another audience.
    statuses: tuple[int, ...] = (401,)


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def _skew(platform: Platform) -> int:
    return platform.profile.auth.max_clock_skew_s


BAD_TOKENS = [
    BadToken("no-token", lambda f, t, p: None),
    BadToken("bearer-without-token", lambda f, t, p: "Bearer"),
    BadToken("not-a-jwt", lambda f, t, p: "Bearer not-a-jwt"),
    BadToken("two-segments", lambda f, t, p: "Bearer " + ".".join(f.valid(t).split(".")[:2])),
    BadToken("garbage-segments", lambda f, t, p: "Bearer e30.e30.AAAA"),
    BadToken("basic-scheme", lambda f, t, p: "Basic " + f.valid(t)),
    BadToken("foreign-signing-key", lambda f, t, p: _bearer(f.foreign_key(t))),
    BadToken("tampered-payload", lambda f, t, p: _bearer(f.tampered_payload(t, sub="someone-else"))),
    BadToken("unknown-kid", lambda f, t, p: _bearer(f.unknown_kid(t))),
    BadToken("alg-none", lambda f, t, p: _bearer(f.unsigned(t, "none"))),
    BadToken("alg-None", lambda f, t, p: _bearer(f.unsigned(t, "None"))),
    BadToken("alg-NONE", lambda f, t, p: _bearer(f.unsigned(t, "NONE"))),
    BadToken("alg-nOnE", lambda f, t, p: _bearer(f.unsigned(t, "nOnE"))),
    BadToken("hs256-with-public-key", lambda f, t, p: _bearer(f.hs256_with_public_key(t))),
    BadToken(
        "expired-beyond-skew",
        lambda f, t, p: _bearer(
            f.valid(
                t,
                iat=int(time.time()) - 3600,
                nbf=int(time.time()) - 3600,
                exp=int(time.time()) - _skew(p) - 60,
            )
        ),
    ),
    BadToken(
        "not-yet-valid-beyond-skew",
        lambda f, t, p: _bearer(
            f.valid(t, nbf=int(time.time()) + _skew(p) + 120, exp=int(time.time()) + _skew(p) + 600)
        ),
    ),
    BadToken("wrong-issuer", lambda f, t, p: _bearer(f.valid(t, iss=p.profile.auth.issuer + "-other"))),
    BadToken(
        "wrong-audience",
        lambda f, t, p: _bearer(f.valid(t, aud=p.profile.auth.audience + "-other")),
        (401, 403),
    ),
    BadToken("missing-audience", lambda f, t, p: _bearer(f.valid(t, aud=None)), (401, 403)),
]


def test_valid_token_is_accepted(gateway: GatewayClient, model: Model, token_for: Callable[[str], str]) -> None:
    """The allowed case beside the denied ones: a real token of the model's tenant reaches the model."""
    response = gateway.metadata_v1(model, token_for(model.tenant))
    assert response.status_code == 200, describe(response)
    assert source_of(response) is Source.MODEL, describe(response)


@pytest.mark.capability(Capability.TOKEN_SIGNING_KEY)
@pytest.mark.parametrize("case", BAD_TOKENS, ids=[c.name for c in BAD_TOKENS])
def test_bad_credentials_are_refused_by_the_gateway(
    platform: Platform, gateway: GatewayClient, model: Model, case: BadToken
) -> None:
    header = case.make(platform.tokens(), model.tenant, platform)
    headers = {} if header is None else {"Authorization": header}
    response = gateway.call(model, "GET", f"/v1/models/{model.name}", headers=headers)
    assert response.status_code in case.statuses, (
        f"{case.name}: expected {case.statuses} from the gateway, got {describe(response)}"
    )
    assert source_of(response) is Source.GATEWAY_AUTHENTICATION, f"{case.name}: {describe(response)}"


@pytest.mark.capability(Capability.TOKEN_SIGNING_KEY)
def test_clock_skew_within_the_promise_is_tolerated(platform: Platform, gateway: GatewayClient, model: Model) -> None:
    """A token that expired a moment ago (well inside the promised skew) is still accepted.

    The allowed twin of the expiry case: it shows the expiry check rejects by time, not by accident.
    """
    now = int(time.time())
    token = platform.tokens().valid(model.tenant, iat=now - 120, nbf=now - 120, exp=now - 5)
    response = gateway.metadata_v1(model, token)
    assert response.status_code == 200, describe(response)


def test_every_route_requires_a_token(platform: Platform, gateway: GatewayClient) -> None:
    """Every model host the manifests publish, including routes added later, refuses anonymous calls."""
    token_host = platform.profile.token_host
    hosts = sorted({h for r in platform.topology.routes for h in r.hostnames if h != token_host})
    assert hosts, "the manifests publish no model routes"
    failures = []
    for host in hosts:
        for path in ("/v1/models", "/v2/models", "/v2/health/ready"):
            response = gateway.http.get(path, headers={"Host": host})
            if response.status_code != 401 or source_of(response) is not Source.GATEWAY_AUTHENTICATION:
                failures.append(f"{host}{path}: {describe(response)}")
    assert not failures, "routes answering without a token:\n" + "\n".join(failures)
