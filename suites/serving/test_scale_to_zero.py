"""The serverless promise: an idle model goes to zero replicas, and the first request after that is
held (not failed) while a replica starts, then answered within the profile's cold-start budget.

How long to wait for zero follows the platform's own settings (stable window, grace period) but is
capped by the profile's deadline, so a platform configured to keep replicas fails instead of
stalling the run. Cold starts are measured over several cycles and broken down with the platform's
own replica timings: waiting for the platform to ask for a replica, the pod starting, the model
loading, and the first response.
"""

from __future__ import annotations

import statistics
import time

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.evidence import Evidence
from inferbox.serving import cold_start_breakdown, summary
from inferbox.topology import Model

from ._overlap import Stage, alone
from ._serving import Token, await_quiet_zero, await_zero, declared, predict

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.serving,
    pytest.mark.capability(Capability.AUTOSCALING),
]


@pytest.mark.features(Feature.SCALE_TO_ZERO)
@pytest.mark.overlap(Stage.IDLE)
def test_idle_model_scales_to_zero(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Token, evidence: Evidence
) -> None:
    promise = platform.profile.require_serving()
    if not promise.scale_to_zero:
        pytest.skip("the profile does not promise scale to zero")
    settings = declared(platform, model)
    # A request first, so that the idle period has a known start.
    answer = predict(gateway, model, token_for(model.tenant))
    assert answer.ok, f"the request before the idle period failed: {answer.detail}"
    waited = await_zero(platform, model, settings, promise)
    idle_to_zero = time.time() - answer.answered_at
    evidence.figure("idle_to_zero_s", round(idle_to_zero, 2))
    evidence.figure("expected_idle_to_zero_s", round(settings.idle_to_zero_s, 2))
    evidence.figure("waited_s", round(waited, 2))
    assert idle_to_zero <= promise.scale_to_zero_deadline_s, (
        f"zero replicas only {idle_to_zero:.1f}s after the last request; the profile promises "
        f"{promise.scale_to_zero_deadline_s:.0f}s"
    )


@pytest.mark.features(Feature.SCALE_TO_ZERO, Feature.COLD_START)
@pytest.mark.overlap(Stage.COLD_START)
def test_cold_start_is_answered_within_budget(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Token, evidence: Evidence
) -> None:
    promise = platform.profile.require_serving()
    settings = declared(platform, model)
    token = token_for(model.tenant)
    parts = ("activation", "pod_start", "model_load", "first_response")
    cycles: list[dict[str, float | str]] = []
    totals: list[float] = []
    breakdowns: dict[str, list[float]] = {p: [] for p in parts}
    for cycle in range(promise.cold_start_cycles):
        await_quiet_zero(platform, model, settings, promise)
        with alone():  # a cold start is timed while no other check loads the machine
            answer = predict(gateway, model, token)
        assert answer.ok, f"cycle {cycle + 1}: the first request after zero failed: {answer.detail}"
        started = [t for t in platform.replica_timings(model, since=answer.sent_at - 1.0) if t.ready_at is not None]
        assert started, f"cycle {cycle + 1}: answered in {answer.seconds:.2f}s, but the platform started no replica"
        replica = min(started, key=lambda t: t.ready_at or 0.0)
        breakdown = cold_start_breakdown(answer.sent_at, answer.answered_at, replica)
        totals.append(breakdown["total"])
        for part in parts:
            breakdowns[part].append(breakdown[part])
        cycles.append({"cycle": cycle + 1, "revision": replica.revision, "replica": replica.replica, **breakdown})
    evidence.figure("cold_start_s", summary(totals))
    evidence.figure("cold_start_samples_s", [round(t, 3) for t in totals])
    evidence.figure("cold_start_cycles", cycles)
    evidence.figure("cold_start_budget_s", promise.cold_start_budget_s)
    evidence.figure("cold_start_breakdown_median_s", {p: round(statistics.median(v), 3) for p, v in breakdowns.items()})
    evidence.artifact(f"cold-start-{model.tenant}-{model.name}.json", {"model": model.name, "cycles": cycles})
    slow = [c for c, total in zip(cycles, totals, strict=True) if total > promise.cold_start_budget_s]
    assert not slow, f"cold starts over the {promise.cold_start_budget_s:.0f}s budget: {slow}"
