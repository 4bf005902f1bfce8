"""Autoscaling: a burst of first requests at zero is held and served without starting more replicas
than the load asks for, and load above a model's target scales it out beyond one replica and back
in, without a request failing while replicas come and go (new replicas join, surplus ones drain).

The heavy load is real concurrency within the tenant's request budget: a workload of the model's
own tenant, inside the mesh, sends requests whose bodies it uploads slowly, keeping each in flight
at the model for about a second, so a handful of them is "above target" at a few requests per
second (``Platform.hold_requests``). It does not go through the gateway: the gateway buffers a
request's whole body before sending it on (the routes' requestBuffer), so a slow upload through it
is never in flight at the model. A light load through the gateway runs meanwhile and while the
surplus replicas drain.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from inferbox.client import DEFAULT_TIMEOUT, GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.evidence import Evidence
from inferbox.topology import Model

from ._overlap import Stage, alone
from ._serving import (
    Answer,
    Token,
    await_zero,
    declared,
    failures,
    predict,
    sample,
    starts_finished,
)

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.serving,
    pytest.mark.capability(Capability.AUTOSCALING),
]
LOAD_FACTOR = 2.5  # requests held in flight per replica's worth of target load
HOLD_S = 1.0  # how long each held request takes to send its body
LOAD_LIMIT_S = 30.0  # the heavy load stops at this point whatever happens
SCALE_IN_LIMIT_S = 30.0  # the light load stops at this point whatever happens
LIGHT_RATE = 5.0  # requests per second of the light load that runs while replicas drain
SAMPLE_S = 0.25


@pytest.mark.features(Feature.COLD_START, Feature.AUTOSCALING)
@pytest.mark.overlap(Stage.BURST)
def test_burst_at_zero_is_held_and_served(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Token, evidence: Evidence
) -> None:
    promise = platform.profile.require_serving()
    settings = declared(platform, model)
    token = token_for(model.tenant)
    await_zero(platform, model, settings, promise)
    before = platform.served_requests(model)
    start = threading.Barrier(promise.burst_requests)
    clients = [
        httpx.Client(base_url=platform.gateway_url, timeout=DEFAULT_TIMEOUT) for _ in range(promise.burst_requests)
    ]

    def one(i: int) -> Answer:
        start.wait(timeout=30)
        return predict(gateway, model, token, clients[i])

    sent = time.time()
    try:
        with alone():
            with ThreadPoolExecutor(max_workers=promise.burst_requests) as pool:
                answers = list(pool.map(one, range(promise.burst_requests)))
            starts_finished(platform, model)
    finally:
        for client in clients:
            client.close()
    after = platform.served_requests(model)
    routed = {rev: after.get(rev, 0) - before.get(rev, 0) for rev in after}
    started: dict[str, int] = defaultdict(int)
    for timing in platform.replica_timings(model, since=sent - 1.0):
        started[timing.revision] += 1
    evidence.figure("burst_seconds", sorted(round(a.seconds, 3) for a in answers))
    evidence.figure("burst_routed", routed)
    evidence.figure("burst_replicas_started", dict(started))
    assert not failures(answers), f"requests of the burst failed: {failures(answers)}"
    assert sum(routed.values()) >= promise.burst_requests, f"the platform counted {routed} for the burst"
    over = {
        rev: (count, settings.replicas_for(routed.get(rev, 0)))
        for rev, count in started.items()
        if count > max(1, settings.replicas_for(routed.get(rev, 0)))
    }
    assert not over, (
        f"more replicas than {promise.burst_requests} requests ask for (per-replica target "
        f"{settings.per_replica_target:g}): revision -> (started, expected at most): {over}"
    )


@pytest.mark.features(Feature.AUTOSCALING)
@pytest.mark.overlap(Stage.SCALE_OUT)
@pytest.mark.capability(Capability.HELD_LOAD)
def test_scales_out_under_load_and_back_in(
    platform: Platform, gateway: GatewayClient, model: Model, token_for: Token, evidence: Evidence
) -> None:
    promise = platform.profile.require_serving()
    if not promise.scale_out:
        pytest.skip("the profile does not promise scale-out")
    settings = declared(platform, model)
    if settings.metric != "concurrency":
        pytest.skip(f"the load below is concurrency; {model.name} scales on {settings.metric}")
    token = token_for(model.tenant)
    workers = math.ceil(LOAD_FACTOR * settings.per_replica_target)
    assert workers / HOLD_S < platform.profile.rate_limit_per_tenant_rps, "the load would exceed the tenant's budget"
    known = sample(model)
    answers: list[Answer] = []
    light, stop = threading.Event(), threading.Event()
    peak: dict[str, int] = defaultdict(int)
    timeline: list[tuple[float, dict[str, int]]] = []
    began = time.monotonic()

    def light_client() -> None:
        with httpx.Client(base_url=platform.gateway_url, timeout=DEFAULT_TIMEOUT) as client:
            deadline = time.monotonic() + LOAD_LIMIT_S + SCALE_IN_LIMIT_S
            while not light.is_set() and time.monotonic() < deadline:
                answers.append(predict(gateway, model, token, client))
                stop.wait(1 / LIGHT_RATE)

    def replicas() -> dict[str, int]:
        counts = {r.name: r.ready for r in platform.revisions(model)}
        for name, ready in counts.items():
            peak[name] = max(peak[name], ready)
        timeline.append((round(time.monotonic() - began, 2), counts))
        return counts

    payload = {"instances": known.instances}
    with alone() as section:  # load that starts replicas: no other check's heavy section meanwhile
        began = time.monotonic()  # the load's limits count from here, not from waiting for alone()
        light_thread = threading.Thread(target=light_client, daemon=True)
        light_thread.start()
        try:
            # Heavy load until a revision has scaled out and served a few seconds that way.
            with platform.hold_requests(model, token, payload, workers, HOLD_S, LOAD_LIMIT_S) as held:
                scaled_at = None
                while time.monotonic() - began < LOAD_LIMIT_S:
                    if max(replicas().values()) >= 2:
                        scaled_at = scaled_at or time.monotonic()
                        if time.monotonic() - scaled_at >= 2 * HOLD_S:
                            break
                    stop.wait(SAMPLE_S)
            starts_finished(platform, model)  # replicas the load asked for finish starting...
            section.release()  # ...then the check only waits: a light load while replicas drain
            # The light load goes on while the surplus replicas drain, down to one.
            scale_in_from = time.monotonic()
            while time.monotonic() - scale_in_from < SCALE_IN_LIMIT_S and max(replicas().values()) > 1:
                stop.wait(SAMPLE_S)
            scaled_in = max(replicas().values()) <= 1
        finally:
            light.set()
            stop.set()
            light_thread.join(timeout=30)
    answered = [r for r in held.results if r.answered]
    wrong = [r.describe() for r in answered if json.loads(r.body).get("predictions") != known.expected]
    evidence.figure("held_requests", workers)
    evidence.figure("peak_ready_replicas", dict(peak))
    evidence.figure("requests", {"held": len(held.results), "gateway": len(answers)})
    evidence.artifact(f"scale-timeline-{model.tenant}-{model.name}.json", {"timeline": timeline})
    assert held.results, "the held load sent nothing"
    assert answers, "the light load sent nothing"
    held_failed = held.failures() + wrong
    assert not held_failed, f"{len(held_failed)} of {len(held.results)} held requests failed: {held_failed[:5]}"
    assert not failures(answers), f"{len(failures(answers))} of {len(answers)} requests failed: {failures(answers)[:5]}"
    assert max(peak.values()) >= 2, (
        f"{workers} concurrent requests (per-replica target {settings.per_replica_target:g}) never scaled "
        f"{model.name} beyond one ready replica: peak {dict(peak)}"
    )
    if settings.max_replicas:
        assert max(peak.values()) <= settings.max_replicas, f"above maxReplicas {settings.max_replicas}: {dict(peak)}"
    assert scaled_in, f"still {max(replicas().values())} replicas {SCALE_IN_LIMIT_S:.0f}s after the load dropped"
