"""Fixtures of the Kind/existing target's tests: a fake API server per test, fast timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferbox.cluster.kube import KubeApi
from inferbox.cluster.timeouts import DEFAULTS, Timeouts
from inferbox.cluster.upstream import UpstreamData
from tests.cluster.fakekube import FakeCluster
from tests.cluster.upstream_data import pinned_schemas


@pytest.fixture
def fake_cluster() -> Iterator[FakeCluster]:
    cluster = FakeCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def fake_api(fake_cluster: FakeCluster) -> Iterator[KubeApi]:
    api = fake_cluster.api()
    yield api
    api.close()


@pytest.fixture
def fast_timeouts() -> Timeouts:
    """Every named timeout at 1.5 s: long enough for the fakes, short enough to see one expire."""
    return Timeouts(dict.fromkeys(DEFAULTS, 1.5))


# Lines the validation tests leave for the end of the run (how many objects were validated against
# the pinned schemas, and any CEL rule that could not be evaluated): `make test` prints them.
VALIDATION_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in VALIDATION_SUMMARY:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pinned() -> UpstreamData:
    """The pinned releases' CRDs and chart values; the test is skipped, naming how to fetch them,
    where they are not on this machine (``tests/cluster/upstream_data.py``)."""
    return pinned_schemas()
