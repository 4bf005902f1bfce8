"""Property: any token that differs from a valid one in its header, claims or signature, without
being re-signed by the platform's key, is refused by the gateway."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.verdicts import Source, describe, source_of

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.JWT_AUTHENTICATION),
    pytest.mark.capability(Capability.TOKEN_SIGNING_KEY),
]

B64URL = string.ascii_letters + string.digits + "-_"


def _edit(segment: str, position: int, replacement: str) -> str | None:
    # The last character of a base64url segment may carry padding bits a decoder ignores, so an edit
    # there might not change the bytes; edits land before it.
    if len(segment) < 2:
        return None
    index = position % (len(segment) - 1)
    if segment[index] == replacement:
        return None
    return segment[:index] + replacement + segment[index + 1 :]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    part=st.sampled_from([0, 1, 2]),
    position=st.integers(min_value=0, max_value=10_000),
    replacement=st.sampled_from(B64URL),
)
def test_edited_tokens_are_refused(
    platform: Platform, gateway: GatewayClient, part: int, position: int, replacement: str
) -> None:
    model = platform.topology.predictive_models[0]
    segments = platform.tokens().valid(model.tenant).split(".")
    edited = _edit(segments[part], position, replacement)
    if edited is None:
        return
    segments[part] = edited
    response = gateway.metadata_v1(model, ".".join(segments))
    # jwt_authn answers 401, or 403 when the edit happens to land in the audience (checked first).
    where = ("header", "payload", "signature")[part]
    assert response.status_code in (401, 403), f"edited {where}: {describe(response)}"
    assert source_of(response) is Source.GATEWAY_AUTHENTICATION, f"edited {where}: {describe(response)}"
