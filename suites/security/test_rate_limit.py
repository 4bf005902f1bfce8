"""Every tenant has its own request budget at the gateway, keyed on its verified identity: past it,
that tenant gets 429 from the gateway while other tenants keep being served, and headers a client
sets cannot buy a fresh budget. The budget comes from the conformance profile."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Feature, Platform
from inferbox.evidence import Evidence
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of
from inferbox.waiting import eventually

pytestmark = [pytest.mark.conformance, pytest.mark.security, pytest.mark.features(Feature.RATE_LIMIT)]


def _burst(
    gateway: GatewayClient, model: Model, token: str, count: int, headers: Callable[[], dict[str, str]] = dict
) -> tuple[Counter[Source], float]:
    """Sends ``count`` requests as fast as 16 workers can; returns who answered, and the elapsed time."""

    def one(_: int) -> Source:
        response = gateway.call(model, "GET", f"/v1/models/{model.name}", token, headers=headers())
        source = source_of(response)
        if response.status_code == 200 and source is Source.MODEL:
            return Source.MODEL
        if response.status_code == 429 and source is Source.GATEWAY_RATE_LIMIT:
            return Source.GATEWAY_RATE_LIMIT
        raise AssertionError(f"unexpected answer during the burst: {describe(response)}")

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        counts = Counter(pool.map(one, range(count)))
    return counts, time.monotonic() - start


def _allowed(platform: Platform, elapsed_s: float) -> int:
    """Most successes a budget of R/s can allow in ``elapsed_s``: a full bucket plus its refill."""
    rate = platform.profile.rate_limit_per_tenant_rps
    return int(rate + rate * elapsed_s) + 1


@pytest.fixture
def refilled(gateway: GatewayClient, token_for: Callable[[str], str], model: Model) -> Iterator[None]:
    """After a burst, waits until the tenant is served again, so later checks are not limited by this
    one. Envoy Gateway's local limiter refills the whole bucket at each interval (tokens per fill =
    the limit) and reports nothing in headers, so a served request after the burst means a refill."""
    yield

    def budget_back() -> None:
        response = gateway.metadata_v1(model, token_for(model.tenant))
        assert response.status_code == 200, describe(response)

    eventually(budget_back, timeout_s=10, interval_s=0.2)


@pytest.mark.usefixtures("refilled")
def test_budget_is_enforced_per_tenant(
    platform: Platform,
    gateway: GatewayClient,
    model: Model,
    token_for: Callable[[str], str],
    evidence: Evidence,
) -> None:
    count = platform.profile.rate_limit_per_tenant_rps * 3
    counts, elapsed = _burst(gateway, model, token_for(model.tenant), count)
    evidence.figure(
        "burst",
        {
            "sent": count,
            "served": counts[Source.MODEL],
            "limited": counts[Source.GATEWAY_RATE_LIMIT],
            "seconds": round(elapsed, 3),
        },
    )
    assert counts[Source.GATEWAY_RATE_LIMIT] > 0, f"no 429 after {count} requests in {elapsed:.2f}s"
    assert counts[Source.MODEL] <= _allowed(platform, elapsed), (
        f"{counts[Source.MODEL]} requests served in {elapsed:.2f}s, more than the promised "
        f"{platform.profile.rate_limit_per_tenant_rps}/s allows"
    )
    # While this tenant is limited, every other tenant with a model is still served.
    for other in platform.topology.predictive_models:
        if other.tenant != model.tenant:
            response = gateway.metadata_v1(other, token_for(other.tenant))
            assert response.status_code == 200, (
                f"{other.tenant} was limited by {model.tenant}'s burst: {describe(response)}"
            )


@pytest.mark.usefixtures("refilled")
def test_client_headers_do_not_buy_a_fresh_budget(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Callable[[str], str]
) -> None:
    def rotating() -> dict[str, str]:
        value = f"tenant-{secrets.token_hex(4)}"
        return {header: value for header in platform.profile.isolation.identity_headers}

    count = platform.profile.rate_limit_per_tenant_rps * 3
    counts, elapsed = _burst(gateway, model, token_for(model.tenant), count, rotating)
    assert counts[Source.GATEWAY_RATE_LIMIT] > 0, "rotating identity headers escaped the rate limit"
    assert counts[Source.MODEL] <= _allowed(platform, elapsed), (
        f"{counts[Source.MODEL]} served in {elapsed:.2f}s with rotating identity headers"
    )
