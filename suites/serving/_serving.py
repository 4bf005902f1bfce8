"""Shared pieces of the serverless checks: a model's declared state, requests whose answer is known,
and waiting for zero. Target-agnostic: everything goes through the platform contract."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from inferbox.client import GatewayClient
from inferbox.contract import Platform
from inferbox.profile import ServingPromise
from inferbox.samples import Sample, samples_for
from inferbox.serving import AutoscalingSettings, wait_for_zero, wait_until_gone
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of
from inferbox.waiting import eventually

# How long the platform may take to apply a change of bounds or routing (replicas starting, routes
# propagating). Override with INFERBOX_SERVING_SETTLE_S (a cluster needs longer than embedded).
SETTLE_S = float(os.environ.get("INFERBOX_SERVING_SETTLE_S", "90"))

Token = Callable[[str], str]


def sample(model: Model) -> Sample:
    return samples_for(model.kind)[0]


def declared(platform: Platform, model: Model) -> AutoscalingSettings:
    """Back to the manifests' bounds and split (an earlier check may have changed them), and the
    settings the platform applies."""
    platform.restore_model(model, SETTLE_S)
    return platform.autoscaling(model)


def await_zero(platform: Platform, model: Model, settings: AutoscalingSettings, promise: ServingPromise) -> float:
    """Waits for the model to be at zero for as long as the profile promises it takes (counted from
    now, which follows the model's last request); a failure says what its settings imply too.

    Its settings imply less (a stable window and a grace period), but a platform on a busy machine
    may take longer than its settings and still keep its promise: the wait is the promise."""
    timeout = promise.scale_to_zero_deadline_s
    try:
        return wait_for_zero(platform, model, timeout)
    except AssertionError as exc:
        raise AssertionError(
            f"{model.tenant}/{model.name} is not at zero after {timeout:.0f}s: {exc}. Its settings imply "
            f"{settings.idle_to_zero_s:.0f}s of idleness (min {settings.min_replicas} replicas, stable window "
            f"{settings.stable_window_s:.0f}s, grace {settings.scale_to_zero_grace_s:.0f}s); the profile promises "
            f"{promise.scale_to_zero_deadline_s:.0f}s"
        ) from exc


def starts_finished(platform: Platform, model: Model) -> None:
    """Waits until no replica of the model is still starting (a burst may start several, and the
    first answer comes as soon as one is ready); the others load the machine until they are."""

    def finished() -> None:
        starting = {r.name: r.total - r.ready for r in platform.revisions(model) if r.total > r.ready}
        assert not starting, f"{model.tenant}/{model.name} has replicas still starting: {starting}"

    eventually(finished, SETTLE_S, 0.1)


def await_quiet_zero(platform: Platform, model: Model, settings: AutoscalingSettings, promise: ServingPromise) -> None:
    """At zero (``await_zero``), and the replicas scaled away have finished stopping: what comes
    next is timed, and should not share the machine with the previous cycle's replicas."""
    await_zero(platform, model, settings, promise)
    wait_until_gone(platform, model, SETTLE_S)


@dataclass
class Answer:
    status: int
    source: Source
    sent_at: float  # wall clock
    answered_at: float
    detail: str
    correct: bool

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.source is Source.MODEL and self.correct

    @property
    def seconds(self) -> float:
        return self.answered_at - self.sent_at


def predict(gateway: GatewayClient, model: Model, token: str, client: httpx.Client | None = None) -> Answer:
    """One V1 predict whose answer is known; transport errors become an Answer with status 0."""
    known = sample(model)
    sent = time.time()
    try:
        if client is None:
            response = gateway.predict_v1(model, known.instances, token)
        else:
            response = client.post(
                f"/v1/models/{model.name}:predict",
                json={"instances": known.instances},
                headers={"Host": gateway.host(model), "Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        return Answer(0, Source.UNKNOWN, sent, time.time(), f"{type(exc).__name__}: {exc}", False)
    answered = time.time()
    correct = response.status_code == 200 and response.json().get("predictions") == known.expected
    return Answer(response.status_code, source_of(response), sent, answered, describe(response), correct)


def failures(answers: list[Answer]) -> list[str]:
    return [a.detail for a in answers if not a.ok]
