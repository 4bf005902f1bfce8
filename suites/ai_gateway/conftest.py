"""Fixtures of the AI Gateway checks: an OpenAI client of the AI Gateway, the generative models (read
from the manifests) kept warm while the checks run, and their tenants' tokens."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from inferbox.contract import Capability, Platform
from inferbox.openai_client import OpenAIClient
from inferbox.profile import AIGatewayPromise
from inferbox.topology import Model

from .._background import BACKGROUND_KEY
from ..observability.conftest import observability, prometheus

__all__ = ["observability", "prometheus"]  # Prometheus fixtures for the token metrics check

SETTLE_S = float(os.environ.get("INFERBOX_SERVING_SETTLE_S", "90"))
PROMPT = "What does the with statement do?"


def _require(platform: Platform, capability: Capability) -> None:
    # Session fixtures are set up before the function-level capability gate runs, so they check too.
    if capability not in platform.capabilities:
        pytest.skip(f"target {platform.target} lacks capability: {capability}")


@pytest.fixture(scope="session")
def promise(platform: Platform) -> AIGatewayPromise:
    return platform.profile.require_ai_gateway()


@pytest.fixture(scope="session")
def ai_gateway(platform: Platform) -> Iterator[OpenAIClient]:
    _require(platform, Capability.AI_GATEWAY)
    client = OpenAIClient(platform.ai_gateway_url())
    yield client
    client.close()


@pytest.fixture(scope="module", autouse=True)
def generative_models_warm(platform: Platform, request: pytest.FixtureRequest) -> Iterator[None]:
    """Holds every generative model at one replica while a module runs (a cold start is the serving
    checks' subject, not these); the manifests' bounds come back afterwards, once no background
    check of this folder is left."""
    models = platform.topology.generative_models
    assert models, "the manifests define no generative model: nothing to check through the AI Gateway"
    if Capability.AUTOSCALING not in platform.capabilities:
        yield
        return
    for model in models:
        platform.set_scale_bounds(model, 1, 1, SETTLE_S)
    try:
        yield
    finally:
        # A background check of this folder still uses them; the last module of the folder, its
        # own, restores them once it has run.
        background = request.config.stash.get(BACKGROUND_KEY, None)
        if background is None or not background.pending_in(request.path.parent):
            for model in models:
                platform.restore_model(model, SETTLE_S)


def other_tenants_model(platform: Platform, model: Model) -> Model | None:
    """A generative model of another tenant (its token is allowed on the AI Gateway, for another model)."""
    return next((m for m in platform.topology.generative_models if m.tenant != model.tenant), None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``llm`` parameters cover every generative model the manifests define."""
    if "llm" in metafunc.fixturenames:
        from inferbox.manifests import load_manifests
        from inferbox.topology import read_topology

        topology = read_topology(load_manifests(metafunc.config.getoption("inferbox_manifests")))
        models = topology.generative_models
        metafunc.parametrize("llm", models, ids=[f"{m.tenant}/{m.name}" for m in models], scope="session")
