"""No tenant can starve the others: every tenant has a bounded quota, scaling past it does not
happen (and the platform says why), and the other tenants keep serving meanwhile.

The bound comes from the conformance profile (``quota.maxPodsPerTenant``); the quota itself is read
from the platform as enforced, so a tenant without one, or with one larger than promised, fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.evidence import Evidence
from inferbox.topology import Model
from inferbox.verdicts import describe

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.RESOURCE_QUOTA),
    pytest.mark.capability(Capability.RESOURCE_QUOTA),
]
# How long a scale request may take to settle: replicas start, or are refused at admission.
SETTLE_S = 60.0
PROBE_INTERVAL_S = 0.05  # pacing of the other tenants' prober, bounded by the scaling's duration


def test_every_tenant_has_a_bounded_quota(platform: Platform) -> None:
    promise = platform.profile.require_quota()
    failures = []
    for tenant in platform.topology.tenants:
        quota = platform.resource_quota(tenant.name)
        if quota is None:
            if promise.every_tenant:
                failures.append(f"{tenant.name} has no ResourceQuota")
            continue
        if quota.pods is None or quota.pods > promise.max_pods_per_tenant:
            failures.append(
                f"{tenant.name}'s quota allows {quota.pods if quota.pods is not None else 'unlimited'} pods, "
                f"the profile promises at most {promise.max_pods_per_tenant}"
            )
    assert not failures, "\n".join(failures)


def test_scaling_past_the_quota_is_refused_and_others_keep_serving(
    platform: Platform,
    gateway: GatewayClient,
    model: Model,
    token_for: Callable[[str], str],
    evidence: Evidence,
) -> None:
    quota = platform.resource_quota(model.tenant)
    assert quota is not None, f"{model.tenant} has no ResourceQuota to exceed"
    assert quota.pods is not None, f"{model.tenant}'s quota does not limit pods"
    # A model may be at zero (scale to zero): then all of its replicas are "one more".
    current = sum(1 for w in platform.workloads() if w.namespace == model.tenant and w.model == model.name)
    room = quota.pods - quota.pods_used
    requested = current + room + 1  # one more than the quota leaves room for
    others = [m for m in platform.topology.predictive_models if m.tenant != model.tenant]
    outcomes: dict[str, list[int]] = {f"{m.tenant}/{m.name}": [] for m in others}
    stop = threading.Event()

    def prober() -> None:
        # Stops when the scaling returns; bounded in time and count whatever happens.
        deadline = time.monotonic() + 2 * SETTLE_S
        for _ in range(int(2 * SETTLE_S / PROBE_INTERVAL_S)):
            if stop.is_set() or time.monotonic() > deadline:
                return
            for other in others:
                response = gateway.metadata_v1(other, token_for(other.tenant))
                outcomes[f"{other.tenant}/{other.name}"].append(response.status_code)
                if response.status_code != 200:
                    evidence.figure(f"other_tenant_failure:{other.name}", describe(response))
            stop.wait(PROBE_INTERVAL_S)

    thread = threading.Thread(target=prober, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        outcome = platform.scale_model(model, requested, settle_s=SETTLE_S)
    finally:
        stop.set()
        thread.join(timeout=30)
        platform.restore_model(model, settle_s=SETTLE_S)  # back to the manifests' autoscaling
    evidence.figure("scale", {"requested": requested, "running": outcome.running, "quota_pods": quota.pods})
    evidence.figure("scale_duration_s", round(time.monotonic() - started, 2))
    assert outcome.running < requested, (
        f"{model.name} runs {outcome.running} replicas, past its quota of {quota.pods} pods"
    )
    assert outcome.running <= current + room, f"{outcome.running} replicas exceed the room the quota left ({room})"
    assert any("quota" in r for r in outcome.refusals), f"the refusal was not reported: {outcome.refusals}"
    if others:
        assert all(len(codes) > 0 for codes in outcomes.values()), "the other tenants' prober sent nothing"
        failed = {
            name: [c for c in codes if c != 200] for name, codes in outcomes.items() if any(c != 200 for c in codes)
        }
        assert not failed, f"other tenants stopped serving while {model.tenant} scaled: {failed}"
