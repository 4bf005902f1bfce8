"""What each experiment promises, judged on its timeline with the profile's tolerances.

Each judge returns its verdicts and the figures the report shows. A window without a single valid
request is "no data" and fails: a prober that measured nothing proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inferbox.chaos.timeline import Timeline, Window
from inferbox.profile import ChaosPromise

if TYPE_CHECKING:
    from inferbox.chaos.session import Session, Verdict

MIN_FAULT_WINDOW_S = 5.0  # a fault window is judged over at least this long


def _verdict(name: str, value: Any, op: str, bound: Any, why: str) -> Verdict:
    from inferbox.chaos.session import Verdict

    if value is None:
        return Verdict(name, None, bound, False, f"no data: {why} was not measured")
    passed = value <= bound if op == "<=" else value >= bound if op == ">=" else value == bound
    return Verdict(name, value, bound, bool(passed), f"{why}: {value} (must be {op} {bound})")


def _common(timeline: Timeline, chaos: ChaosPromise) -> list[Verdict]:
    """Promises of every experiment: nothing unauthenticated is ever answered; no request hangs."""
    from inferbox.chaos.session import Verdict

    successes = sum(timeline.refused_successes().values())
    refused = timeline.refused_requests()
    unauth = (
        _verdict(
            "unauthenticated-successes",
            successes,
            "<=",
            chaos.max_unauthenticated_successes,
            f"requests without a valid token of the model's tenant answered by a model (of {refused})",
        )
        if refused
        else Verdict("unauthenticated-successes", None, 0, False, "no data: no refused stream was sent")
    )
    return [
        unauth,
        _verdict("longest-wait-s", timeline.longest_wait_s(), "<=", chaos.max_request_s, "longest any request waited"),
    ]


def _ratio(name: str, window: Window, bound: float, why: str) -> Verdict:
    ratio = window.success_ratio
    return _verdict(name, None if ratio is None else round(ratio, 5), ">=", bound, why)


def _figures(*windows: Window, **extra: Any) -> dict[str, Any]:
    return {"windows": [w.as_dict() for w in windows], **extra}


def _at(session: Session, timeline: Timeline, mark: str) -> float:
    if mark not in session.marks:
        raise KeyError(f"the experiment never reached {mark!r}")
    return timeline.at(session.marks[mark])


Judged = tuple[list["Verdict"], dict[str, Any]]


def replica_loss(session: Session, timeline: Timeline, params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    tenant = session.model(str(params["model"])).tenant
    fault = _at(session, timeline, "fault")
    ready = _at(session, timeline, "replacement-ready") if "replacement-ready" in session.marks else None
    end = max(ready if ready is not None else fault, fault + MIN_FAULT_WINDOW_S)
    during = timeline.window("during", fault, end, tenant=tenant)
    replaced = session.measured.get("replacement_ready_s")
    verdicts = [
        _ratio("success-ratio-during-fault", during, chaos.min_success_ratio, "valid requests answered"),
        _verdict(
            "replacement-ready-s", replaced, "<=", chaos.recovery("replacementReady"), "a replacement was ready after"
        ),
        *_common(timeline, chaos),
    ]
    before = timeline.window("before", 1.0, fault)
    after = timeline.window("after", end, timeline.run.seconds)
    return verdicts, _figures(before, during, after, recovery_s=replaced)


def hung_replica(session: Session, timeline: Timeline, params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    tenant = session.model(str(params["model"])).tenant
    fault = _at(session, timeline, "fault")
    healed = _at(session, timeline, "healed")
    during = timeline.window("during", fault, max(healed, fault + MIN_FAULT_WINDOW_S), tenant=tenant)
    verdicts = [
        _ratio("success-ratio-during-fault", during, chaos.min_success_ratio, "valid requests answered"),
        *_common(timeline, chaos),
    ]
    after = timeline.window("after", healed, timeline.run.seconds)
    return verdicts, _figures(timeline.window("before", 1.0, fault), during, after)


def gateway_restart(session: Session, timeline: Timeline, _params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    killed = _at(session, timeline, "gateway-killed")
    recovery = timeline.recovery_s(killed)
    verdicts = [
        _verdict("recovery-s", recovery, "<=", chaos.recovery("gateway"), "the gateway served again after"),
        _verdict("served-after-restart", timeline.served_after(killed), ">=", 1, "valid requests answered after"),
        *_common(timeline, chaos),
    ]
    end = killed + (recovery or 0.0)
    during = timeline.window("during", killed, max(end, killed + 0.001))
    return verdicts, _figures(
        timeline.window("before", 1.0, killed),
        during,
        timeline.window("after", end, timeline.run.seconds),
        recovery_s=recovery,
    )


def token_issuer_outage(session: Session, timeline: Timeline, _params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    stopped = _at(session, timeline, "fault")
    healed = _at(session, timeline, "healed")
    during = timeline.window("during", stopped, healed)
    statuses = session.measured.get("token_statuses") or []
    kids = session.measured.get("published_kids") or []
    outage_statuses = statuses[:-1]
    verdicts = [
        _ratio("issued-tokens-keep-working", during, chaos.min_success_ratio, "valid requests with issued tokens"),
        _verdict(
            "token-requests-refused-with-5xx",
            all(s >= 500 for s in outage_statuses) if outage_statuses else None,
            "==",
            True,
            f"token requests during the outage answered {outage_statuses}",
        ),
        _verdict(
            "same-keys-after-restart",
            kids[0] == kids[-1] if len(kids) >= 2 and kids[0] else None,
            "==",
            True,
            f"published key ids before and after {kids[:1] + kids[-1:]}",
        ),
        _verdict(
            "tokens-issued-after-restart",
            statuses[-1] if statuses else None,
            "==",
            200,
            "a token request after the restart",
        ),
        _verdict("recovery-s", timeline.recovery_s(healed), "<=", chaos.recovery("tokenIssuer"), "served again after"),
        *_common(timeline, chaos),
    ]
    return verdicts, _figures(timeline.window("before", 1.0, stopped), during, token_statuses=statuses)


def jwks_at_restart(session: Session, timeline: Timeline, _params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    killed = _at(session, timeline, "gateway-killed")
    # The keys may come back as soon as the issuer starts again: the window ends when it is asked to.
    healed = _at(session, timeline, "heal-started")
    restarted = killed + (session.measured.get("gateway_back_s") or 0.0)
    closed = timeline.window("gateway-without-keys", restarted, healed)
    # Judged on the answers given while the keys were unreachable: a request that waited for the
    # keys and was answered once they were back did not get through without them.
    statuses = timeline.window_statuses(restarted, healed, settled_by=healed)
    answered = statuses.get("200", 0) if statuses else None
    verdicts = [
        _verdict("valid-requests-answered-without-keys", answered, "==", 0, "answered while the keys were unreachable"),
        _verdict(
            "refused-by-authentication",
            set(statuses) <= {"401"} if statuses else None,
            "==",
            True,
            f"statuses of valid requests while the keys were unreachable {statuses}",
        ),
        _verdict("recovery-s", timeline.recovery_s(healed), "<=", chaos.recovery("tokenIssuer"), "served again after"),
        *_common(timeline, chaos),
    ]
    return verdicts, _figures(closed, timeline.window("after", healed, timeline.run.seconds), statuses=statuses)


def partition(session: Session, timeline: Timeline, params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    tenant = str(params["tenant"])
    fault = _at(session, timeline, "fault")
    healed = _at(session, timeline, "healed")
    cut = timeline.window("cut-off-tenant", fault, healed, tenant=tenant)
    others = timeline.window("other-tenants", fault, healed, exclude=tenant)
    failures = cut.failures
    verdicts = [
        _verdict(
            "cut-off-tenant-refused-with-5xx",
            (sum(failures.values()) > 0 and all(k.startswith("HTTP 5") for k in failures)) if cut.requests else None,
            "==",
            True,
            f"how the cut-off tenant's requests failed {failures}",
        ),
        _ratio("other-tenants-unaffected", others, chaos.unaffected_success_ratio, "other tenants' requests answered"),
        _verdict(
            "recovery-s",
            timeline.recovery_s(healed, tenant=tenant),
            "<=",
            chaos.recovery("partition"),
            "the tenant was served again after",
        ),
        *_common(timeline, chaos),
    ]
    return verdicts, _figures(cut, others, timeline.window("after", healed, timeline.run.seconds))


def telemetry_outage(session: Session, timeline: Timeline, _params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    fault = _at(session, timeline, "fault")
    healed = _at(session, timeline, "healed")
    before = timeline.window("before", 1.0, fault)
    during = timeline.window("during", fault, healed)
    increase = round((during.p99_ms - before.p99_ms) / 1000, 3) if during.p99_ms is not None and before.p99_ms else None
    metrics = session.measured.get("metrics_resumed_s")
    traces = session.measured.get("traces_resumed_s")
    verdicts = [
        _ratio("serving-unaffected", during, chaos.unaffected_success_ratio, "valid requests answered"),
        _verdict("p99-increase-s", increase, "<=", chaos.max_p99_increase_s, "p99 added while telemetry was down"),
        _verdict("metrics-resumed-s", metrics, "<=", chaos.recovery("telemetry"), "metrics scraped again after"),
        _verdict("traces-resumed-s", traces, "<=", chaos.recovery("telemetry"), "traces stored again after"),
        *_common(timeline, chaos),
    ]
    gap = session.measured.get("metrics_gap_s")
    return verdicts, _figures(before, during, metrics_gap_s=gap, metrics_resumed_s=metrics, traces_resumed_s=traces)


def activation(session: Session, timeline: Timeline, params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    budget = session.platform.profile.require_serving().cold_start_budget_s
    model = session.model(str(params["model"]))
    start = _at(session, timeline, "prober-start")
    fault = _at(session, timeline, "fault")
    held = timeline.window("held-and-after", start, fault + budget, tenant=model.tenant)
    failures = held.failures
    verdicts = [
        _verdict("longest-held-wait-s", held.max_wait_s, "<=", budget, "longest a request to the model waited"),
        _verdict(
            "refusals-are-clear",
            all(k.startswith("HTTP 5") for k in failures) if held.requests else None,
            "==",
            True,
            f"requests not answered failed as {failures or 'none'}",
        ),
        _verdict(
            "held-requests-answered",
            timeline.window("held", start, fault, tenant=model.tenant).ok,
            ">=",
            1,
            "requests sent before the kill (held while the model woke up) answered by another replica",
        ),
        *_common(timeline, chaos),
    ]
    return verdicts, _figures(held)


def key_rotation(session: Session, timeline: Timeline, _params: dict[str, Any]) -> Judged:
    chaos = session.platform.profile.require_chaos()
    staged = _at(session, timeline, "key-staged")
    retired = _at(session, timeline, "key-retired")
    grace = timeline.window("staged-to-retired", staged, retired)
    refused_401 = grace.failures.get("HTTP 401", 0)
    verdicts = [
        _verdict("valid-tokens-refused-401", refused_401 if grace.requests else None, "==", 0, "401s for valid tokens"),
        _ratio("success-ratio-during-rotation", grace, chaos.min_success_ratio, "valid requests answered"),
        _verdict(
            "retired-key-refused-s",
            session.measured.get("retired_key_refused_s"),
            "<=",
            chaos.key_propagation_s,
            "a token of the retired key was refused after",
        ),
        _verdict(
            "new-key-accepted",
            session.measured.get("new_key_accepted"),
            "==",
            True,
            "a token of the new key was accepted at once after activation",
        ),
        *_common(timeline, chaos),
    ]
    return verdicts, _figures(grace)


PROMISES: dict[str, Callable[[Session, Timeline, dict[str, Any]], Judged]] = {
    "replica-loss": replica_loss,
    "token-issuer-outage": token_issuer_outage,
    "jwks-at-restart": jwks_at_restart,
    "key-rotation": key_rotation,
    "gateway-restart": gateway_restart,
    "hung-replica": hung_replica,
    "partition": partition,
    "telemetry-outage": telemetry_outage,
    "activation": activation,
}
