"""Fixtures shared by the conformance suites; everything here speaks only to the platform contract."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from inferbox.client import GatewayClient, TokenError
from inferbox.contract import Capability, Platform
from inferbox.tokens import decode_unverified
from inferbox.topology import Model

from ._background import background_checks, plan_background, relay_background_outcome, stop_background
from .serving._overlap import OVERLAP_KEY


@pytest.fixture(scope="session")
def gateway(platform: Platform) -> Iterator[GatewayClient]:
    client = platform.gateway()
    yield client
    client.close()


RENEW_BEFORE_S = 120.0  # a check holds a token for up to a few budget windows
USABLE_FOR_S = 30.0


@pytest.fixture(scope="session")
def token_for(platform: Platform, gateway: GatewayClient) -> Callable[[str], str]:
    """A real token for a tenant from the platform's token endpoint, renewed well before it expires.

    Checks run side by side (``_background.py``), and one of them exhausts a client's token budget on
    purpose: a renewal refused then keeps the current token while it has time left, as a client would."""
    cache: dict[str, tuple[str, float]] = {}
    lock = threading.Lock()

    def get(tenant: str) -> str:
        with lock:
            token, expires = cache.get(tenant, ("", 0.0))
            left = expires - time.time()
            if left < RENEW_BEFORE_S:
                try:
                    token = gateway.token(platform.credentials(tenant))
                except TokenError:
                    if left < USABLE_FOR_S:
                        raise
                    return token
                cache[tenant] = (token, float(decode_unverified(token)[1]["exp"]))
            return token

    return get


__all__ = ["background_checks"]  # an autouse fixture of every check (``_background.py``)

SLOWEST_KEY = pytest.StashKey[dict[str, float]]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's wall time, setup and teardown included (for the slowest-tests summary)."""
    config = _CONFIG[0] if _CONFIG else None
    if config is not None:
        times = config.stash.setdefault(SLOWEST_KEY, {})
        times[report.nodeid] = times.get(report.nodeid, 0.0) + report.duration


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG[:] = [config]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """With INFERBOX_SLOWEST=N (``make conformance``), the N slowest tests, setup included (the
    first test's setup includes the platform's start; an overlapped check's time is its wait)."""
    count = int(os.environ.get("INFERBOX_SLOWEST", "0") or 0)
    times = config.stash.get(SLOWEST_KEY, {})
    if count <= 0 or not times:
        return
    terminalreporter.write_sep("=", f"slowest {min(count, len(times))} tests (setup + call + teardown)")
    for nodeid, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:count]:
        terminalreporter.write_line(f"{seconds:8.2f}s  {nodeid}")
    terminalreporter.write_line(f"{sum(times.values()):8.2f}s  all {len(times)} tests")


# How long holding a model warm may take (replicas starting from zero; longer on a cluster).
HOLD_SETTLE_S = float(os.environ.get("INFERBOX_SERVING_SETTLE_S", "90"))


@pytest.fixture(scope="session")
def _pinned_models(platform: Platform) -> Iterator[None]:
    """The manifests' bounds come back at the end of the session (a kept platform stays as declared)."""
    yield
    if Capability.AUTOSCALING in platform.capabilities:
        for model in platform.topology.models:
            platform.restore_model(model, HOLD_SETTLE_S)


@pytest.fixture(scope="module")
def models_held_warm(platform: Platform, _pinned_models: None) -> None:
    """For modules that need a fixed set of model replicas while they run (probing pods directly,
    counting a replica's metrics): an idle model would scale to zero, and a replica scaled in would
    take its counters with it, so every revision is pinned at one replica (through the contract).
    Use with ``pytest.mark.usefixtures("models_held_warm")``.

    The pin stays after the module: the next module that wants it finds the replicas ready instead
    of starting them again from zero. Checks that need the manifests' own bounds restore them
    themselves (every serving check does), and the session restores them at its end."""
    if Capability.AUTOSCALING not in platform.capabilities:
        return
    for model in platform.topology.models:
        platform.set_scale_bounds(model, 1, 1, HOLD_SETTLE_S)


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Background checks (``_background.py``) go to the end of the session; the rest keeps its order."""
    plan_background(config, items)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A background check already ran (or runs) in the background thread: report how it ended."""
    return relay_background_outcome(pyfuncitem)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """While the overlapped serverless checks run, no other test may send a model traffic."""
    overlap = item.config.stash.get(OVERLAP_KEY, None)
    if overlap is not None and not overlap.has(item):
        overlap.finish()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before the session's fixtures (the platform) go, no overlapped check may still use them."""
    overlap = item.config.stash.get(OVERLAP_KEY, None)
    if overlap is not None and nextitem is None:
        overlap.stop()
    if nextitem is None:
        stop_background(item.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    overlap = session.config.stash.get(OVERLAP_KEY, None)
    if overlap is not None:
        overlap.stop()
    stop_background(session.config)
