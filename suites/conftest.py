"""Fixtures shared by the conformance suites; everything here speaks only to the platform contract."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Platform
from inferbox.tokens import decode_unverified
from inferbox.topology import Model


@pytest.fixture(scope="session")
def gateway(platform: Platform) -> Iterator[GatewayClient]:
    client = platform.gateway()
    yield client
    client.close()


@pytest.fixture(scope="session")
def token_for(platform: Platform, gateway: GatewayClient) -> Callable[[str], str]:
    """A real token for a tenant from the platform's token endpoint, renewed before it expires."""
    cache: dict[str, tuple[str, float]] = {}

    def get(tenant: str) -> str:
        token, expires = cache.get(tenant, ("", 0.0))
        if time.time() > expires - 30:
            token = gateway.token(platform.credentials(tenant))
            expires = float(decode_unverified(token)[1]["exp"])
            cache[tenant] = (token, expires)
        return token

    return get


# How long holding a model warm may take (replicas starting from zero; longer on a cluster).
HOLD_SETTLE_S = float(os.environ.get("INFERBOX_SERVING_SETTLE_S", "90"))


@pytest.fixture(scope="module")
def models_held_warm(platform: Platform) -> Iterator[None]:
    """For modules that need a fixed set of model replicas while they run (probing pods directly,
    counting a replica's metrics): an idle model would scale to zero, and a replica scaled in would
    take its counters with it, so every revision is pinned at one replica (through the contract);
    the manifests' bounds come back afterwards. Use with ``pytest.mark.usefixtures("models_held_warm")``."""
    if Capability.AUTOSCALING not in platform.capabilities:
        yield
        return
    for model in platform.topology.models:
        platform.set_scale_bounds(model, 1, 1, HOLD_SETTLE_S)
    try:
        yield
    finally:
        for model in platform.topology.models:
            platform.restore_model(model, HOLD_SETTLE_S)


def model_ids(models: tuple[Model, ...]) -> list[str]:
    return [f"{m.tenant}/{m.name}" for m in models]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``model`` parameters cover every model the manifests define (read from the manifests)."""
    if "model" in metafunc.fixturenames:
        from inferbox.manifests import load_manifests
        from inferbox.topology import read_topology

        topology = read_topology(load_manifests(metafunc.config.getoption("inferbox_manifests")))
        # Generative models speak OpenAI's API through the AI Gateway (suites/ai_gateway), not V1/V2.
        models = topology.predictive_models
        metafunc.parametrize("model", models, ids=model_ids(models), scope="session")
