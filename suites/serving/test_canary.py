"""Canary rollout: a model's traffic is split between its rolled-out revision and its latest one by
the declared percentage, and promoting the canary moves all traffic to it.

The split is judged by the platform's own per-revision request counters against an exact binomial
interval: with n requests and a declared share p, the canary's count must fall in the interval a
correct platform leaves with probability at most the profile's false-failure rate (0.001 by
default, split evenly between the tails). For n = 400 and p = 0.2 that is [55, 107] requests
(13.75-26.75 %); a platform off by 10 points is caught 91 % (p = 0.3) and 99 % (p = 0.1) of the
time, by 15 points more than 99.9 %.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from inferbox.client import DEFAULT_TIMEOUT, GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.evidence import Evidence
from inferbox.serving import RevisionStatus, binomial_interval, paced
from inferbox.topology import Model
from inferbox.waiting import eventually

from ._overlap import Stage, alone
from ._serving import SETTLE_S, Answer, Token, failures, predict

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.serving,
    pytest.mark.features(Feature.CANARY),
    pytest.mark.capability(Capability.AUTOSCALING),
]
RATE_SHARE = 0.8  # of the tenant's request budget, so the rate limiter never answers instead
PROMOTED_REQUESTS = 100


def _canary(platform: Platform, model: Model) -> tuple[RevisionStatus, RevisionStatus]:
    """(rolled-out, latest) revisions of a model with a canary rollout; skips a model without one."""
    platform.restore_model(model, SETTLE_S)
    routed = [r for r in platform.revisions(model) if r.traffic_percent > 0]
    if len(routed) < 2:
        pytest.skip(f"{model.tenant}/{model.name} declares no canary rollout (one revision receives all traffic)")
    latest = next((r for r in routed if r.latest), None)
    assert latest is not None, f"the latest revision of {model.name} receives no traffic: {routed}"
    stable = next(r for r in routed if not r.latest)
    return stable, latest


def _send(platform: Platform, gateway: GatewayClient, model: Model, token: str, count: int) -> dict[str, int]:
    """``count`` paced requests, every one answered by the model; how many of them the platform
    counted per revision."""
    answers: list[Answer] = []
    lock = threading.Lock()
    # Never above this share of the tenant's budget in any window (``paced`` does not catch up), so
    # the rate limiter never answers instead of a revision.
    rate = RATE_SHARE * platform.profile.rate_limit_per_tenant_rps
    before = platform.served_requests(model)
    with httpx.Client(base_url=platform.gateway_url, timeout=DEFAULT_TIMEOUT) as client:

        def send(_: int) -> None:
            answer = predict(gateway, model, token, client)
            with lock:
                answers.append(answer)

        paced(count, rate, send)
    # Only requests the model answered can be counted by revision: judge the answers first.
    assert not failures(answers), f"{len(failures(answers))} of {count} requests failed: {failures(answers)[:5]}"

    def counted() -> dict[str, int]:
        after = platform.served_requests(model)
        delta = {rev: after.get(rev, 0) - before.get(rev, 0) for rev in after}
        assert sum(delta.values()) >= count, (
            f"the platform counted {delta} of {count} requests, all of which the model answered"
        )
        return delta

    # Counters can lag the requests (a cluster's metrics are scraped); "no data" is a failure.
    return eventually(counted, SETTLE_S, 0.2)


def _warm(platform: Platform, model: Model) -> Callable[[], None]:
    """Every routed revision keeps a ready replica while the split is measured, so no cold start
    stalls the paced sender; the declared bounds come back afterwards."""
    platform.set_scale_bounds(model, 1, None, SETTLE_S)
    return lambda: platform.restore_model(model, SETTLE_S)


@pytest.mark.overlap(Stage.CANARY)
def test_canary_split_matches_the_declared_percentage(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Token, evidence: Evidence
) -> None:
    promise = platform.profile.require_serving()
    _, latest = _canary(platform, model)
    with alone():  # replicas starting and a steady stream of requests
        restore = _warm(platform, model)
        try:
            routed = _send(platform, gateway, model, token_for(model.tenant), promise.canary_requests)
        finally:
            restore()
    total = sum(routed.values())
    low, high = binomial_interval(total, latest.traffic_percent / 100, promise.canary_false_failure_rate)
    evidence.figure("canary_declared_percent", latest.traffic_percent)
    evidence.figure("canary_routed", routed)
    evidence.figure("canary_interval", [low, high])
    canary = routed.get(latest.name, 0)
    assert low <= canary <= high, (
        f"{latest.name} got {canary} of {total} requests ({100 * canary / total:.1f} %); declared "
        f"{latest.traffic_percent} %, so a correct platform lands in [{low}, {high}] with probability "
        f"{1 - promise.canary_false_failure_rate}"
    )


@pytest.mark.overlap(Stage.PROMOTE)
def test_promoting_the_canary_moves_all_traffic(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Token, evidence: Evidence
) -> None:
    _, latest = _canary(platform, model)
    token = token_for(model.tenant)
    with alone():  # replicas starting and a steady stream of requests
        restore = _warm(platform, model)
        try:
            platform.promote_canary(model, SETTLE_S)
            shares = {r.name: r.traffic_percent for r in platform.revisions(model)}
            assert shares.get(latest.name) == 100, f"after promotion the platform reports the split {shares}"
            routed = _send(platform, gateway, model, token, PROMOTED_REQUESTS)
        finally:
            restore()
    evidence.figure("promoted_routed", routed)
    others = {rev: n for rev, n in routed.items() if rev != latest.name and n}
    assert not others, f"after promoting {latest.name}, requests still went to {others}"
    assert routed.get(latest.name, 0) >= PROMOTED_REQUESTS, f"{latest.name} served only {routed}"
