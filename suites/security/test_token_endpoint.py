"""The platform's token endpoint issues short-lived tokens to authenticated clients only, with the
claims the profile promises, signed by a key its JWKS publishes; it holds up against abuse: each
client has a token budget, and failed authentications earn a backoff (limits from the profile).

The abuse checks send a bounded number of requests, through the gateway's token route, with the
credentials of the tenant that serves the fewest models, and wait until that client is served again
before they finish, so later checks are not limited by them."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Credentials, Feature, Platform
from inferbox.tokens import decode_unverified
from inferbox.waiting import eventually

pytestmark = [pytest.mark.conformance, pytest.mark.security, pytest.mark.features(Feature.TOKEN_ENDPOINT)]


# The token budget is promised per minute: a client refused now must be served again within it.
BUDGET_WINDOW_S = 60.0


def _tenants(platform: Platform) -> list[str]:
    return [t.name for t in platform.topology.tenants]


def _least_used_tenant(platform: Platform) -> str:
    """The tenant whose client the abuse checks exhaust: the one serving the fewest models."""
    return min(platform.topology.tenants, key=lambda t: (len(t.models), t.name)).name


def _describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:160]!r}"


def _in_good_standing(gateway: GatewayClient, credentials: Credentials) -> None:
    """Waits until the client gets a token: a success clears failures counted before (a backoff
    earned by an earlier run), and shows its secret is right. Bounded by the promised minute."""

    def served() -> None:
        response = gateway.request_token(credentials)
        assert response.status_code == 200, f"{credentials.client_id} is not served: {_describe(response)}"

    eventually(served, timeout_s=BUDGET_WINDOW_S + 10, interval_s=0.5)


def _slowed_down(response: httpx.Response) -> bool:
    """A 429 with a Retry-After and no token: the endpoint telling a client to come back later."""
    return (
        response.status_code == 429
        and response.headers.get("retry-after", "").isdigit()
        and "access_token" not in response.text
    )


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
    _in_good_standing(gateway, mine)  # so the verdict is about these credentials, not an earlier backoff
    auth = {
        "no-credentials": None,
        "wrong-secret": (mine.client_id, mine.client_secret + "x"),
        "unknown-client": (f"no-such-client-{secrets.token_hex(4)}", mine.client_secret),
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


def test_failed_authentications_earn_a_backoff(platform: Platform, gateway: GatewayClient) -> None:
    """Wrong secrets for one client id are checked at most the promised number of times in a row;
    then the endpoint answers 429 without checking, the right secret included, until the backoff
    is over, and the client is served again."""
    promised = platform.profile.require_token_endpoint().max_failed_authentications_before_backoff
    credentials = platform.credentials(_least_used_tenant(platform))
    _in_good_standing(gateway, credentials)
    wrong = (credentials.client_id, credentials.client_secret + "x")
    answers = []
    for _ in range(promised + 3):
        answers.append(gateway.request_token(None, auth=wrong))
        if answers[-1].status_code != 401:
            break
    checked = sum(1 for r in answers if r.status_code == 401)
    assert checked <= promised, (
        f"{checked} wrong secrets in a row were checked and refused with 401; the profile promises a backoff "
        f"after at most {promised}: {[r.status_code for r in answers]}"
    )
    assert _slowed_down(answers[-1]), f"the backoff is not a 429 with a Retry-After: {_describe(answers[-1])}"
    during = gateway.request_token(credentials)
    assert _slowed_down(during), (
        f"during the backoff the right secret was checked ({_describe(during)}), so guesses would be too"
    )
    _in_good_standing(gateway, credentials)


def test_each_client_has_a_token_budget(platform: Platform, gateway: GatewayClient) -> None:
    """A client asking for tokens as fast as it can is issued at most the promised number in a
    minute and then told to come back later (429, Retry-After), while another client is still
    served; once its budget refills it is served again."""
    promised = platform.profile.require_token_endpoint().max_tokens_per_client_per_minute
    tenant = _least_used_tenant(platform)
    credentials = platform.credentials(tenant)
    _in_good_standing(gateway, credentials)
    start = time.monotonic()
    issued, refused = 1, []  # the token that showed the client in good standing counts too
    for _ in range(promised + 5):
        response = gateway.request_token(credentials)
        if response.status_code == 200:
            issued += 1
        else:
            assert _slowed_down(response), f"unexpected answer during the burst: {_describe(response)}"
            refused.append(response)
    elapsed = time.monotonic() - start
    assert elapsed < BUDGET_WINDOW_S, f"the burst took {elapsed:.0f}s, longer than the promised minute"
    assert issued <= promised, (
        f"{issued} tokens issued to {credentials.client_id} in {elapsed:.1f}s; the profile promises at most "
        f"{promised} a minute"
    )
    assert refused, "no request was refused"
    other = next(t for t in _tenants(platform) if t != tenant)
    response = gateway.request_token(platform.credentials(other))
    assert response.status_code == 200, f"{other}'s client is limited by {tenant}'s burst: {_describe(response)}"
    _in_good_standing(gateway, credentials)
