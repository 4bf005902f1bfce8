"""Fixtures of the observability checks: clients for Prometheus and the Jaeger query API, and
helpers that send a known number of requests. Everything speaks to the platform contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferbox.contract import Capability, Observability, Platform
from inferbox.observability.dashboards import Panel, all_panels
from inferbox.observability.jaeger import JaegerQueryClient
from inferbox.observability.prometheus import PrometheusClient
from inferbox.waiting import eventually


def _require(platform: Platform, capability: Capability) -> None:
    # Session fixtures are set up before the function-level capability gate runs, so they check too.
    if capability not in platform.capabilities:
        pytest.skip(f"target {platform.target} lacks capability: {capability}")


@pytest.fixture(scope="session")
def observability(platform: Platform) -> Observability:
    _require(platform, Capability.METRICS)
    return platform.observability()


@pytest.fixture(scope="session")
def prometheus(observability: Observability) -> Iterator[PrometheusClient]:
    """Prometheus, once it has scraped at least once (its first scrape waits for discovery)."""
    client = PrometheusClient(observability.prometheus_url)

    def scraped() -> None:
        assert client.query("up"), "Prometheus has not scraped anything yet: `up` returned no series"

    # Prometheus batches discovery updates for 5 s before the first scrape.
    eventually(scraped, timeout_s=observability.metrics_deadline_s() + 10, interval_s=0.25)
    yield client
    client.close()


@pytest.fixture(scope="session")
def jaeger(platform: Platform, observability: Observability) -> Iterator[JaegerQueryClient]:
    _require(platform, Capability.TRACES)
    if not observability.jaeger_query_url or observability.traces is None:
        pytest.skip(f"target {platform.target} lacks capability: {Capability.TRACES}")
    client = JaegerQueryClient(observability.jaeger_query_url)
    yield client
    client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``panel`` parameters cover every dashboard panel shipped under the manifests."""
    if "panel" in metafunc.fixturenames:
        panels: list[Panel] = all_panels(metafunc.config.getoption("inferbox_manifests"))
        metafunc.parametrize("panel", panels, ids=[p.id for p in panels])
