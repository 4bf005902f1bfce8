"""Every tenant has its own request budget at the gateway, keyed on its verified identity: past it,
that tenant gets 429 from the gateway while other tenants keep being served, and headers a client
sets cannot buy a fresh budget. The budget comes from the conformance profile."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from inferbox.burst import Burst, send_burst
from inferbox.client import GatewayClient
from inferbox.contract import Feature, Platform
from inferbox.evidence import Evidence
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of
from inferbox.waiting import eventually

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.RATE_LIMIT),
    # A model at zero would have the activator hold the burst (and refuse what exceeds its capacity),
    # and a burst would scale it out: one ready replica each, so the gateway's limiter is what answers.
    pytest.mark.usefixtures("models_held_warm"),
]


def _burst_size(platform: Platform) -> int:
    return platform.profile.rate_limit_per_tenant_rps * 3


def _conclusive_within_s(platform: Platform, count: int) -> float:
    """A budget of R requests per second serves at most R + R x w of requests arriving within w
    seconds (a full bucket and its refill), so ``count`` requests sent within (count - R) / R
    seconds must meet some refusals. Half of that is left for the gateway to read them."""
    rate = platform.profile.rate_limit_per_tenant_rps
    return (count - rate) / rate / 2


def _burst(
    platform: Platform,
    gateway: GatewayClient,
    model: Model,
    token: str,
    headers: Callable[[], dict[str, str]] = dict,
) -> tuple[Counter[Source], Burst]:
    """Three budgets' worth of requests sent at once; returns who answered them, and the burst's
    timing. Fails if the requests could not be sent within a window that makes the verdict about
    the platform rather than about the client's speed."""
    count = _burst_size(platform)
    base = {"Host": gateway.host(model), "Authorization": f"Bearer {token}"}
    burst = send_burst(platform.gateway_url, count, "GET", f"/v1/models/{model.name}", lambda _: {**base, **headers()})
    window = _conclusive_within_s(platform, count)
    assert burst.send_window_s <= window, (
        f"the client needed {burst.send_window_s:.2f}s to send {count} requests; a budget of "
        f"{platform.profile.rate_limit_per_tenant_rps}/s could serve them all unless they are sent within "
        f"{window:.2f}s, so this burst proves nothing about the platform (the machine is too busy)"
    )
    counts: Counter[Source] = Counter()
    unexpected = []
    for response in burst.answers:
        source = source_of(response)
        if (response.status_code, source) in ((200, Source.MODEL), (429, Source.GATEWAY_RATE_LIMIT)):
            counts[source] += 1
        else:
            unexpected.append(describe(response))
    assert not unexpected, f"{len(unexpected)} unexpected answers during the burst: {unexpected[:5]}"
    return counts, burst


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
    counts, burst = _burst(platform, gateway, model, token_for(model.tenant))
    count = len(burst.answers)
    evidence.figure(
        "burst",
        {
            "sent": count,
            "served": counts[Source.MODEL],
            "limited": counts[Source.GATEWAY_RATE_LIMIT],
            "send_window_s": round(burst.send_window_s, 4),
            "seconds": round(burst.elapsed_s, 3),
        },
    )
    assert counts[Source.GATEWAY_RATE_LIMIT] > 0, (
        f"no 429 for {count} requests sent within {burst.send_window_s:.3f}s (answered within {burst.elapsed_s:.2f}s)"
    )
    assert counts[Source.MODEL] <= _allowed(platform, burst.elapsed_s), (
        f"{counts[Source.MODEL]} requests served in {burst.elapsed_s:.2f}s, more than the promised "
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

    counts, burst = _burst(platform, gateway, model, token_for(model.tenant), rotating)
    assert counts[Source.GATEWAY_RATE_LIMIT] > 0, (
        f"rotating identity headers escaped the rate limit: {len(burst.answers)} requests sent within "
        f"{burst.send_window_s:.3f}s were all served"
    )
    assert counts[Source.MODEL] <= _allowed(platform, burst.elapsed_s), (
        f"{counts[Source.MODEL]} served in {burst.elapsed_s:.2f}s with rotating identity headers"
    )
