"""Chaos Toolkit actions of the inferbox extension: each speaks only to the platform contract.

Experiment files name them as ``{"type": "python", "module": "inferbox.chaos.actions", "func": ...}``.
Every fault is bounded (the platform rolls it back at its bound by itself) and recorded in the
session, so the experiment's rollbacks (``heal_faults``, ``restore_models``) undo exactly what it did.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from inferbox.chaos.prober import Prober
from inferbox.chaos.session import current
from inferbox.contract import Capability, Fault
from inferbox.waiting import eventually

SETTLE_S = 120.0  # replicas starting, or going, when a model's bounds change


def _fault(fault: Fault) -> dict[str, Any]:
    current().faults.append(fault)
    return {
        "id": fault.id,
        "kind": fault.kind,
        "target": fault.target,
        "started": fault.started,
        "bound_s": fault.bound_s,
        "detail": fault.detail,
    }


def start_prober(seconds: float, rate: float = 12.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Starts the open-loop prober for ``seconds`` at ``rate`` requests/s (all streams together)."""
    session = current(configuration)
    timeout = session.platform.profile.require_chaos().max_request_s * 2
    # The steady state the fault is measured against: every model the experiment does not pin
    # itself keeps at least one replica (an idle canary revision scaling from zero mid-run would be
    # measured as the fault's doing). Restored by the rollback ``restore_models``.
    if Capability.AUTOSCALING in session.platform.capabilities:
        for model in session.platform.topology.predictive_models:
            if model not in session.held:
                session.held.append(model)
                session.platform.set_scale_bounds(model, 1, None, SETTLE_S)
    session.prober = Prober(session.platform, session.folder / "prober", seconds, rate, timeout).start()
    started = session.mark("prober-start")
    return {"seconds": seconds, "rate": rate, "client_timeout_s": timeout, "started": started}


def hold_replicas(
    model: str, replicas: int, max_replicas: int | None = None, configuration: dict[str, Any] | None = None
) -> int:
    """Pins a model at ``replicas`` replicas until ``restore_models``; 0 scales it to zero, and
    ``max_replicas`` then caps how many a burst may start."""
    session = current(configuration)
    target = session.model(model)
    session.held.append(target)
    session.platform.set_scale_bounds(target, replicas, replicas if replicas else max_replicas, SETTLE_S)
    if replicas == 0:

        def at_zero() -> None:
            running = sum(r.total for r in session.platform.revisions(target))
            assert running == 0, f"{model} still has {running} replica(s)"

        eventually(at_zero, SETTLE_S, 0.25)
    return sum(r.ready for r in session.platform.revisions(target))


def kill_replica(
    model: str, replica: int = 0, starting: bool = False, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    session = current(configuration)
    session.mark("fault")
    fault = session.platform.kill_replica(session.model(model), replica, starting)
    session.marks["fault"] = fault.started
    return _fault(fault)


def stall_replica(
    model: str, seconds: float, replica: int = 0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    session = current(configuration)
    fault = session.platform.stall_replica(session.model(model), seconds, replica)
    session.marks["fault"] = fault.started
    return _fault(fault)


def kill_gateway(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    session = current(configuration)
    fault = session.platform.kill_gateway()
    session.marks["gateway-killed"] = fault.started
    session.marks.setdefault("fault", fault.started)
    return _fault(fault)


def stop_component(component: str, seconds: float, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    session = current(configuration)
    fault = session.platform.stop_component(component, seconds)
    session.marks["fault"] = fault.started
    return _fault(fault)


def partition(tenant: str, seconds: float, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    session = current(configuration)
    fault = session.platform.partition(tenant, seconds)
    session.marks["fault"] = fault.started
    return _fault(fault)


def heal_last(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rolls back the last fault with something to undo (the method's planned end of the fault)."""
    session = current(configuration)
    for index in range(len(session.faults) - 1, -1, -1):
        fault = session.faults[index]
        if fault.bound_s:
            session.mark("heal-started")
            healed = session.platform.heal(fault)
            session.faults[index] = healed
            session.marks["healed"] = healed.healed or session.mark("healed")
            return {"id": healed.id, "healed": healed.healed}
    raise ValueError("no fault of this run has anything to roll back")


def heal_faults(configuration: dict[str, Any] | None = None) -> list[str]:
    """Rollback: every fault this run injected is rolled back (those already healed stay so)."""
    session = current(configuration)
    healed = []
    for index, fault in enumerate(session.faults):
        if fault.bound_s and fault.healed is None:
            session.faults[index] = session.platform.heal(fault)
            healed.append(fault.id)
    return healed


def restore_models(configuration: dict[str, Any] | None = None) -> list[str]:
    """Rollback: every model whose bounds this run changed gets the manifests' bounds back."""
    session = current(configuration)
    restored = []
    while session.held:
        model = session.held.pop()
        session.platform.restore_model(model, SETTLE_S)
        restored.append(f"{model.tenant}/{model.name}")
    return restored


def stop_prober(configuration: dict[str, Any] | None = None) -> bool:
    """Rollback: waits for a prober still running (it is bounded) so no load outlives the run."""
    session = current(configuration)
    if session.prober is None or not session.prober.running:
        return False
    with contextlib.suppress(Exception):
        session.prober.result()
    return True


def stage_signing_key(configuration: dict[str, Any] | None = None) -> str:
    session = current(configuration)
    kid = session.platform.stage_signing_key()
    session.measured["staged_kid"] = kid
    session.mark("key-staged")
    return kid


def wait_for_key_propagation(configuration: dict[str, Any] | None = None) -> float:
    """The staging period: a published key takes the profile's propagation time to reach every
    cache of the platform (the wait is the rotation procedure itself, not a synchronisation)."""
    seconds = current(configuration).platform.profile.require_chaos().key_propagation_s
    time.sleep(seconds)
    return seconds


def activate_signing_key(configuration: dict[str, Any] | None = None) -> str:
    session = current(configuration)
    session.measured["previous_kid"] = session.platform.signing_key().kid
    kid = session.platform.activate_signing_key()
    session.mark("key-activated")
    return kid


def retire_previous_key(configuration: dict[str, Any] | None = None) -> str:
    session = current(configuration)
    kid = str(session.measured["previous_kid"])
    session.platform.retire_signing_key(kid)
    session.mark("key-retired")
    return kid
