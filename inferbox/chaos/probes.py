"""Chaos Toolkit probes of the inferbox extension: the steady state, recovery measurements and the
judgement of an experiment's promises. Each speaks only to the platform contract; tolerances come
from the conformance profile (spec.chaos), never from the manifests under test."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed

from inferbox.chaos.promises import PROMISES
from inferbox.chaos.session import Verdict, current
from inferbox.chaos.timeline import Timeline
from inferbox.samples import samples_for
from inferbox.verdicts import describe
from inferbox.waiting import eventually

STEADY_WAIT_S = 60.0  # a model at zero answers its first request within its cold start


def _predict(model_name: str, token: str | None, configuration: dict[str, Any] | None = None) -> httpx.Response:
    session = current(configuration)
    model = session.model(model_name)
    sample = samples_for(model.kind)[0]
    with session.platform.gateway() as client:
        return client.predict_v1(model, sample.instances, token)


def tenants_served(configuration: dict[str, Any] | None = None) -> bool:
    """Every model answers a valid request with its known answer (within a cold start)."""
    session = current(configuration)
    with session.platform.gateway() as client:
        for model in session.platform.topology.predictive_models:
            token = client.token(session.platform.credentials(model.tenant))
            sample = samples_for(model.kind)[0]

            def answered(model: Any = model, token: str = token, sample: Any = sample) -> None:
                response = client.predict_v1(model, sample.instances, token)
                assert response.status_code == 200, describe(response)
                assert response.json().get("predictions") == sample.expected, describe(response)

            try:
                eventually(answered, STEADY_WAIT_S, 0.5)
            except (AssertionError, httpx.HTTPError):
                return False
    return True


def refusals_hold(configuration: dict[str, Any] | None = None) -> bool:
    """No model answers a request without a token, with a forged token or with another tenant's."""
    session = current(configuration)
    platform = session.platform
    tenants = [t.name for t in platform.topology.tenants]
    from inferbox.chaos.prober import _forged_token

    with platform.gateway() as client:
        for model in platform.topology.predictive_models:
            sample = samples_for(model.kind)[0]
            others = [t for t in tenants if t != model.tenant]
            tokens: list[str | None] = [None, _forged_token(platform, model.tenant)]
            if others:
                tokens.append(client.token(platform.credentials(others[0])))
            for token in tokens:
                if client.predict_v1(model, sample.instances, token).status_code == 200:
                    return False
    return True


def no_fault_in_force(configuration: dict[str, Any] | None = None) -> bool:
    """Nothing injected is still in force on the platform (from this run or an earlier one)."""
    return not current(configuration).platform.faults()


def promises_kept(configuration: dict[str, Any] | None = None) -> bool:
    """Every promise this run judged was kept (before the method nothing is judged yet)."""
    return current(configuration).kept()


def await_replacement(model: str, replicas: int, configuration: dict[str, Any] | None = None) -> float:
    """Seconds from the fault until the model has ``replicas`` ready replicas again."""
    session = current(configuration)
    target = session.model(model)
    budget = session.platform.profile.require_chaos().recovery("replacementReady")

    since = session.marks["fault"]

    def back() -> None:
        started = [t for t in session.platform.replica_timings(target, since) if t.ready_at is not None]
        assert started, f"{model}: no replica requested since the fault is ready"
        ready = sum(r.ready for r in session.platform.revisions(target))
        assert ready >= replicas, f"{model}: {ready} of {replicas} replicas ready"

    try:
        eventually(back, budget * 2, 0.1)
    except AssertionError as exc:
        raise ActivityFailed(f"{exc} after {budget * 2:.0f}s") from exc
    session.marks["replacement-ready"] = time.time()
    seconds = round(session.marks["replacement-ready"] - session.marks["fault"], 3)
    session.measured["replacement_ready_s"] = seconds
    return seconds


def token_request_status(configuration: dict[str, Any] | None = None) -> int:
    """The status the token endpoint answers a tenant's valid credentials with, now."""
    session = current(configuration)
    platform = session.platform
    tenant = platform.topology.tenants[0].name
    with platform.gateway() as client:
        status = client.request_token(platform.credentials(tenant)).status_code
    session.measured.setdefault("token_statuses", []).append(status)
    return status


def published_kids(configuration: dict[str, Any] | None = None) -> list[str]:
    """Key ids of the issuer's published keys, as the gateway serves them."""
    session = current(configuration)
    with session.platform.gateway() as client:
        response = client.jwks()
    kids = sorted(str(k.get("kid")) for k in response.json().get("keys", [])) if response.status_code == 200 else []
    session.measured.setdefault("published_kids", []).append(kids)
    return kids


def await_gateway(configuration: dict[str, Any] | None = None) -> float:
    """Seconds from the gateway's kill until it answers again (any HTTP answer: it is listening)."""
    session = current(configuration)
    budget = session.platform.profile.require_chaos().recovery("gateway")

    def listening() -> None:
        try:
            httpx.get(session.platform.gateway_url, timeout=1.0)
        except httpx.TransportError as exc:
            raise AssertionError(f"the gateway does not answer: {exc}") from exc

    try:
        eventually(listening, budget * 2, 0.05)
    except AssertionError as exc:
        raise ActivityFailed(str(exc)) from exc
    seconds = round(time.time() - session.marks["gateway-killed"], 3)
    session.measured["gateway_back_s"] = seconds
    return seconds


def _prometheus_has_recent_sample(url: str, since: float) -> bool:
    response = httpx.get(f"{url}/api/v1/query", params={"query": "max(timestamp(up))"}, timeout=5.0)
    result = response.json().get("data", {}).get("result", [])
    return bool(result) and float(result[0]["value"][1]) > since


def telemetry_resumed(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Seconds from the telemetry stack's return until Prometheus scrapes again and the trace store
    holds a span exported after it; and the gap in the metrics (last sample before the outage to
    the first after)."""
    session = current(configuration)
    observability = session.platform.observability()
    budget = session.platform.profile.require_chaos().recovery("telemetry")
    healed = session.marks["healed"]

    def scraped() -> None:
        assert _prometheus_has_recent_sample(observability.prometheus_url, healed), "no sample after the restart"

    def traced() -> None:
        assert observability.jaeger_query_url is not None
        services = httpx.get(f"{observability.jaeger_query_url}/api/services", timeout=5.0).json().get("data") or []
        newest = 0.0
        for service in services:
            traces = httpx.get(
                f"{observability.jaeger_query_url}/api/traces",
                params={"service": service, "limit": "20", "start": str(int(healed * 1e6))},
                timeout=5.0,
            ).json()
            for trace in traces.get("data") or []:
                newest = max([newest] + [span["startTime"] / 1e6 for span in trace.get("spans", [])])
        assert newest > healed, "no span exported after the restart"

    def settled(check: Any) -> Any:
        def attempt() -> None:
            try:
                check()
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:  # not answering yet
                raise AssertionError(f"{type(exc).__name__}: {exc}") from exc

        return attempt

    found: dict[str, Any] = {}
    for name, check in (("metrics_resumed_s", scraped), ("traces_resumed_s", traced)):
        try:
            eventually(settled(check), budget * 2, 0.5)
            found[name] = round(time.time() - healed, 3)
        except AssertionError:
            found[name] = None
    found["metrics_gap_s"] = round(time.time() - session.marks["fault"], 3) if found["metrics_resumed_s"] else None
    session.measured.update(found)
    return found


def new_key_accepted(configuration: dict[str, Any] | None = None) -> bool:
    """A freshly issued token (signed by the key just activated) is accepted at once."""
    session = current(configuration)
    model = session.platform.topology.predictive_models[0]
    with session.platform.gateway() as client:
        token = client.token(session.platform.credentials(model.tenant))
    accepted = _predict(f"{model.tenant}/{model.name}", token, configuration).status_code == 200
    session.measured["new_key_accepted"] = accepted
    return accepted


def keep_signing_key(configuration: dict[str, Any] | None = None) -> str:
    """Keeps the current signing key, to sign tokens with it after it is retired."""
    session = current(configuration)
    key = session.platform.signing_key()
    session.measured["kept_key"] = key
    return key.kid


def retired_key_refused(configuration: dict[str, Any] | None = None) -> float | None:
    """Seconds from the retirement until a fresh token signed by the retired key is refused (401)."""
    from inferbox.tokens import TokenForge

    session = current(configuration)
    chaos = session.platform.profile.require_chaos()
    model = session.platform.topology.predictive_models[0]
    forge = TokenForge(session.measured["kept_key"], session.platform.profile)

    def refused() -> None:
        response = _predict(f"{model.tenant}/{model.name}", forge.valid(model.tenant), configuration)
        assert response.status_code == 401, describe(response)

    try:
        eventually(refused, chaos.key_propagation_s * 1.5, 2.0)
    except AssertionError:
        session.measured["retired_key_refused_s"] = None
        return None
    seconds = round(time.time() - session.marks["key-retired"], 3)
    session.measured["retired_key_refused_s"] = seconds
    return seconds


def judge(promise: str, configuration: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """Waits for the prober, measures the timeline around the fault and judges the experiment's
    promises with the profile's tolerances; raises ActivityFailed naming every broken promise."""
    session = current(configuration)
    if promise not in PROMISES:
        raise ActivityFailed(f"no promise {promise!r}; known: {', '.join(sorted(PROMISES))}")
    if session.prober is None:
        raise ActivityFailed("no prober ran in this experiment: nothing was measured")
    run = session.prober.result()
    timeline = Timeline(run)
    verdicts, figures = PROMISES[promise](session, timeline, params)
    session.verdicts.extend(verdicts)
    body = {
        "promise": promise,
        "kept": all(v.passed for v in verdicts),
        "verdicts": [asdict(v) for v in verdicts],
        "figures": figures,
        "marks": {k: round(timeline.at(v), 3) for k, v in session.marks.items()},
        "per_second": timeline.per_second(),
    }
    (session.folder / "judgement.json").write_text(json.dumps(body, indent=2, default=str))
    if not body["kept"]:
        broken = "; ".join(f"{v.name}: {v.detail or v.value}" for v in verdicts if not v.passed)
        raise ActivityFailed(f"promises broken: {broken}")
    return body


__all__ = ["Verdict"]
