"""The chaos suite: nine experiments, each a Chaos Toolkit file under suites/chaos/experiments/,
run under load with a steady-state hypothesis and judged with the profile's chaos tolerances.

Chaos checks are not part of ``-m conformance``; ``pytest -m chaos`` (``make chaos``) runs them.
Key rotation waits out the gateway's five-minute key cache twice, so it is also marked ``slow``
and left out of ``make test`` (it runs with ``make chaos-slow`` and in the nightly set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inferbox.chaos.session import Session
from inferbox.contract import Capability, Feature

from ._chaos import assert_kept

pytestmark = [pytest.mark.chaos]
Run = Callable[[str], tuple[dict[str, Any], Session]]


@pytest.mark.capability(Capability.KILL_REPLICA, Capability.AUTOSCALING)
@pytest.mark.features(Feature.SERVING_V1)
def test_replica_loss_under_load(experiment: Run) -> None:
    assert_kept(*experiment("1-replica-loss"))


@pytest.mark.capability(Capability.STOP_COMPONENT)
@pytest.mark.features(Feature.JWT_AUTHENTICATION, Feature.TOKEN_ENDPOINT)
def test_token_issuer_outage(experiment: Run) -> None:
    assert_kept(*experiment("2-token-issuer-outage"))


@pytest.mark.capability(Capability.STOP_COMPONENT, Capability.KILL_GATEWAY)
@pytest.mark.features(Feature.JWT_AUTHENTICATION)
def test_jwks_unreachable_at_gateway_restart_fails_closed(experiment: Run) -> None:
    assert_kept(*experiment("3-jwks-at-restart"))


@pytest.mark.slow
@pytest.mark.capability(Capability.KEY_ROTATION, Capability.TOKEN_SIGNING_KEY)
@pytest.mark.features(Feature.JWT_AUTHENTICATION)
def test_key_rotation_under_load(experiment: Run) -> None:
    assert_kept(*experiment("4-key-rotation"))


@pytest.mark.capability(Capability.KILL_GATEWAY)
@pytest.mark.features(Feature.SERVING_V1)
def test_gateway_restart_under_load(experiment: Run) -> None:
    assert_kept(*experiment("5-gateway-restart"))


@pytest.mark.capability(Capability.PAUSE_REPLICA, Capability.AUTOSCALING)
@pytest.mark.features(Feature.SERVING_V1)
def test_hung_replica_is_bypassed(experiment: Run) -> None:
    assert_kept(*experiment("6-hung-replica"))


@pytest.mark.capability(Capability.PARTITION, Capability.AUTOSCALING)
@pytest.mark.features(Feature.NETWORK_ISOLATION)
def test_partition_of_one_tenant(experiment: Run) -> None:
    assert_kept(*experiment("7-partition"))


@pytest.mark.capability(Capability.STOP_COMPONENT, Capability.METRICS, Capability.TRACES)
@pytest.mark.features(Feature.METRICS, Feature.TRACING)
def test_telemetry_outage(experiment: Run) -> None:
    assert_kept(*experiment("8-telemetry-outage"))


@pytest.mark.capability(Capability.KILL_REPLICA, Capability.AUTOSCALING)
@pytest.mark.features(Feature.COLD_START)
def test_replica_dies_during_activation(experiment: Run) -> None:
    assert_kept(*experiment("9-activation"))
