"""A tenant's token reaches that tenant's models and no other tenant's, whatever headers the client
adds; the refusal comes from the gateway's authorization (403). The isolation intent comes from the
conformance profile."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.TENANT_AUTHORIZATION),
]


def _other_tenants(platform: Platform, model: Model) -> list[str]:
    return [t.name for t in platform.topology.tenants if t.name != model.tenant]


def test_other_tenants_tokens_are_refused(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Callable[[str], str]
) -> None:
    others = _other_tenants(platform, model)
    assert others, "the platform defines a single tenant; isolation cannot be checked"
    failures = []
    for tenant in others:
        response = gateway.metadata_v1(model, token_for(tenant))
        if response.status_code != 403 or source_of(response) is not Source.GATEWAY_AUTHORIZATION:
            failures.append(f"{tenant} token on {model.tenant}/{model.name}: {describe(response)}")
    assert not failures, "\n".join(failures)


@pytest.mark.capability(Capability.TOKEN_SIGNING_KEY)
@pytest.mark.parametrize(
    "claims",
    [{"tenant": None}, {"tenant": "tenant-that-does-not-exist"}, {"tenant": ""}],
    ids=["missing-tenant-claim", "unknown-tenant", "empty-tenant"],
)
def test_tokens_without_the_right_tenant_claim_are_refused(
    platform: Platform, gateway: GatewayClient, model: Model, claims: dict[str, object]
) -> None:
    claim = platform.profile.auth.tenant_claim
    overrides = {claim: claims["tenant"]}
    token = platform.tokens().valid(model.tenant, **overrides)
    response = gateway.metadata_v1(model, token)
    assert response.status_code == 403, describe(response)
    assert source_of(response) is Source.GATEWAY_AUTHORIZATION, describe(response)


def test_identity_headers_cannot_grant_access(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Callable[[str], str]
) -> None:
    """Another tenant's token plus headers claiming this tenant is still refused."""
    failures = []
    for tenant in _other_tenants(platform, model):
        spoofed = {header: model.tenant for header in platform.profile.isolation.identity_headers}
        response = gateway.call(model, "GET", f"/v1/models/{model.name}", token_for(tenant), headers=spoofed)
        if response.status_code != 403 or source_of(response) is not Source.GATEWAY_AUTHORIZATION:
            failures.append(f"{tenant} token with {sorted(spoofed)}: {describe(response)}")
    assert not failures, "\n".join(failures)


def test_identity_headers_cannot_take_access_away(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Callable[[str], str]
) -> None:
    """The allowed twin: the right token with headers naming another tenant still reaches the model."""
    others = _other_tenants(platform, model)
    spoofed = {header: others[0] for header in platform.profile.isolation.identity_headers}
    response = gateway.call(model, "GET", f"/v1/models/{model.name}", token_for(model.tenant), headers=spoofed)
    assert response.status_code == 200, describe(response)
    assert source_of(response) is Source.MODEL, describe(response)
