"""What the gateway checks about a token beyond its signature, issuer and audience (the profile's
``tokenChecks``): where it is read from, that it expires, how far ahead it may expire and that it
was not issued in the future. Every refusal is the gateway's own (401 with a Bearer challenge) and
sits beside its allowed twin: the same token, changed only in what the check is about, is answered.
"""

from __future__ import annotations

import time

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.JWT_AUTHENTICATION),
    pytest.mark.capability(Capability.TOKEN_SIGNING_KEY),
]

# Cookie names a careless extraction setting might read a token from.
COOKIE_NAMES = ("access_token", "token", "jwt", "id_token", "Authorization")
# Leeway beyond the promised limits, so a refusal is about the limit and not about timing.
MARGIN_S = 120


def _assert_refused(case: str, response: httpx.Response) -> None:
    assert response.status_code == 401, f"{case}: expected 401 from the gateway, got {describe(response)}"
    assert source_of(response) is Source.GATEWAY_AUTHENTICATION, f"{case}: {describe(response)}"


def _assert_answered(case: str, response: httpx.Response) -> None:
    assert response.status_code == 200, f"{case} (the allowed twin): {describe(response)}"
    assert source_of(response) is Source.MODEL, f"{case} (the allowed twin): {describe(response)}"


def _metadata_path(model: Model) -> str:
    return f"/v1/models/{model.name}"


def test_a_token_in_the_query_string_is_not_read(platform: Platform, gateway: GatewayClient, model: Model) -> None:
    assert platform.profile.require_token_checks().authorization_header_only, "the profile allows other locations"
    token = platform.tokens().valid(model.tenant)
    _assert_answered("the token in the Authorization header", gateway.call(model, "GET", _metadata_path(model), token))
    response = gateway.call(model, "GET", f"{_metadata_path(model)}?access_token={token}")
    _assert_refused("a token in ?access_token= without an Authorization header", response)


def test_a_token_in_a_cookie_is_not_read(platform: Platform, gateway: GatewayClient, model: Model) -> None:
    assert platform.profile.require_token_checks().authorization_header_only, "the profile allows other locations"
    token = platform.tokens().valid(model.tenant)
    failures = []
    for name in COOKIE_NAMES:
        response = gateway.call(model, "GET", _metadata_path(model), headers={"Cookie": f"{name}={token}"})
        if response.status_code != 401 or source_of(response) is not Source.GATEWAY_AUTHENTICATION:
            failures.append(f"cookie {name}: {describe(response)}")
    assert not failures, "a token in a cookie was read:\n" + "\n".join(failures)


def test_a_token_without_an_expiry_is_refused(platform: Platform, gateway: GatewayClient, model: Model) -> None:
    assert platform.profile.require_token_checks().expiry_required, "the profile does not require an expiry"
    forge = platform.tokens()
    _assert_answered("the same token with exp", gateway.metadata_v1(model, forge.valid(model.tenant)))
    _assert_refused("a token without exp", gateway.metadata_v1(model, forge.valid(model.tenant, exp=None)))


def test_a_token_living_longer_than_promised_is_refused(
    platform: Platform, gateway: GatewayClient, model: Model
) -> None:
    assert platform.profile.require_token_checks().expiry_required, "the profile does not bound token lifetimes"
    longest = platform.profile.auth.max_token_lifetime_s
    forge, now = platform.tokens(), int(time.time())
    within = forge.valid(model.tenant, iat=now, nbf=now, exp=now + longest - MARGIN_S)
    _assert_answered(f"a token expiring {longest - MARGIN_S}s ahead", gateway.metadata_v1(model, within))
    beyond = forge.valid(model.tenant, iat=now, nbf=now, exp=now + longest + MARGIN_S)
    _assert_refused(
        f"a token expiring {longest + MARGIN_S}s ahead (the profile's maximum lifetime is {longest}s)",
        gateway.metadata_v1(model, beyond),
    )


def test_a_token_issued_in_the_future_is_refused(platform: Platform, gateway: GatewayClient, model: Model) -> None:
    assert platform.profile.require_token_checks().future_issued_at_refused, "the profile accepts any iat"
    skew = platform.profile.auth.max_clock_skew_s
    forge, now = platform.tokens(), int(time.time())
    slightly = forge.valid(model.tenant, iat=now + skew // 2, nbf=now, exp=now + 300)
    _assert_answered(f"a token issued {skew // 2}s ahead (within the skew)", gateway.metadata_v1(model, slightly))
    future = forge.valid(model.tenant, iat=now + skew + MARGIN_S, nbf=now, exp=now + 300)
    _assert_refused(
        f"a token issued {skew + MARGIN_S}s ahead (the profile allows {skew}s of skew)",
        gateway.metadata_v1(model, future),
    )
