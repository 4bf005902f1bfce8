"""The platform's token endpoint issues short-lived tokens to authenticated clients only, with the
claims the profile promises, signed by a key its JWKS publishes."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Feature, Platform
from inferbox.tokens import decode_unverified

pytestmark = [pytest.mark.conformance, pytest.mark.security, pytest.mark.features(Feature.TOKEN_ENDPOINT)]


def _tenants(platform: Platform) -> list[str]:
    return [t.name for t in platform.topology.tenants]


def test_authenticated_client_gets_a_token_with_the_promised_claims(platform: Platform, gateway: GatewayClient) -> None:
    auth = platform.profile.auth
    token_ids = set()
    for tenant in _tenants(platform):
        before = int(time.time())
        response = gateway.request_token(platform.credentials(tenant))
        assert response.status_code == 200, f"{tenant}: {response.status_code} {response.text[:200]}"
        body = response.json()
        assert body["token_type"].lower() == "bearer"
        header, claims = decode_unverified(body["access_token"])
        assert header["alg"] in auth.algorithms, header
        assert header.get("kid"), "tokens must name their signing key"
        assert claims["iss"] == auth.issuer
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        assert auth.audience in audiences
        assert claims[auth.tenant_claim] == tenant
        assert claims["sub"], "tokens must name their subject"
        assert claims["jti"], "tokens must carry an id"
        assert claims["jti"] not in token_ids, "token ids must be unique"
        token_ids.add(claims["jti"])
        assert claims["nbf"] <= time.time() + 1
        assert claims["iat"] >= before - 5
        lifetime = claims["exp"] - claims["iat"]
        assert 0 < lifetime <= auth.max_token_lifetime_s, f"token lifetime {lifetime}s exceeds the promise"


def test_tokens_are_signed_by_a_published_key(
    gateway: GatewayClient, platform: Platform, token_for: Callable[[str], str]
) -> None:
    response = gateway.jwks()
    assert response.status_code == 200, response.text
    keys = response.json()["keys"]
    assert keys, "the JWKS publishes no key"
    for key in keys:
        assert (key["kty"], key["alg"], key.get("use", "sig")) == ("RSA", "RS256", "sig"), key
        assert key.get("kid"), "every published key needs a kid"
        modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
        assert len(modulus) * 8 >= 2048, f"key {key['kid']} is shorter than 2048 bits"
        assert not {"d", "p", "q"} & set(key), "the JWKS must not publish private key material"
    kid = decode_unverified(token_for(_tenants(platform)[0]))[0]["kid"]
    assert kid in {k["kid"] for k in keys}


@pytest.mark.parametrize(
    "case",
    ["no-credentials", "wrong-secret", "unknown-client", "other-tenants-secret", "empty-secret"],
)
def test_unauthenticated_token_requests_are_refused(platform: Platform, gateway: GatewayClient, case: str) -> None:
    tenants = _tenants(platform)
    mine, other = platform.credentials(tenants[0]), platform.credentials(tenants[-1])
    auth = {
        "no-credentials": None,
        "wrong-secret": (mine.client_id, mine.client_secret + "x"),
        "unknown-client": ("no-such-client", mine.client_secret),
        "other-tenants-secret": (mine.client_id, other.client_secret),
        "empty-secret": (mine.client_id, ""),
    }[case]
    response = gateway.request_token(None, auth=auth)
    assert response.status_code == 401, f"{case}: {response.status_code} {response.text[:200]}"
    assert "access_token" not in response.text
    assert response.json().get("error") == "invalid_client"


def test_only_the_client_credentials_grant_is_offered(platform: Platform, gateway: GatewayClient) -> None:
    creds = platform.credentials(_tenants(platform)[0])
    response = gateway.request_token(creds, grant_type="password")
    assert response.status_code == 400, response.text
    assert "access_token" not in response.text
