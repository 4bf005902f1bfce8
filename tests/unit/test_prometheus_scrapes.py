"""The freshness wait that counting checks rely on, against Debian's real Prometheus."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from inferbox.observability.prometheus import NoData, Overcounted, PrometheusClient, Undercounted, expect_growths
from inferbox.waiting import eventually

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus (make setup)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=[True, False], ids=["with-a-down-target", "all-up"])
def prometheus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusClient, bool]]:
    """Prometheus scraping itself, and with the parameter also a port where nothing listens (one
    of each for the module: the checks only read it)."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    port, nobody = _free_port(), _free_port()  # nothing listens on the second port
    jobs = [{"job_name": "itself", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]
    if request.param:
        jobs.append({"job_name": "down", "static_configs": [{"targets": [f"127.0.0.1:{nobody}"]}]})
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = PrometheusClient(f"http://127.0.0.1:{port}")
    try:

        def every_target_scraped() -> None:
            try:
                scraped = len(client.query("up"))
            except httpx.HTTPError as exc:
                raise AssertionError(f"Prometheus is not answering yet: {exc}") from exc
            assert scraped == len(jobs), "not every target scraped yet"

        eventually(every_target_scraped, timeout_s=60, interval_s=0.2)
        yield client, request.param
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # by its PID, like everything the tests start
            process.wait()


def test_only_successful_scrapes_are_fresh(prometheus: tuple[PrometheusClient, bool]) -> None:
    """A failed scrape stamps ``up`` too but carries no samples: waiting must not count it as read."""
    client, with_down_target = prometheus
    moment = time.time()
    if with_down_target:
        assert client.last_complete_scrape() == 0
        with pytest.raises(AssertionError, match=r"targets without samples: http://127\.0\.0\.1:\d+/metrics \(down: "):
            client.wait_scraped_after(moment, timeout_s=2)
    else:
        client.wait_scraped_after(moment, timeout_s=10)
        assert client.last_complete_scrape() > moment


def test_a_count_still_short_after_two_scrape_rounds_is_final(prometheus: tuple[PrometheusClient, bool]) -> None:
    """Once every target has been scraped twice, a short or missing count is the answer: the check
    fails with it at once instead of at its deadline. A target that is down keeps it waiting (what it
    measured may still be missing), so the check ends at its deadline with the last shortfall."""
    client, with_down_target = prometheus
    assert expect_growths(client, {"vector(5)": (0.0, 5.0)}, timeout_s=30, in_a_row=1) == {"vector(5)": 5.0}
    short = {"vector(3)": (0.0, 5.0)}
    missing = {'up{job="no-such-job"}': (0.0, 1.0)}
    if with_down_target:
        with pytest.raises(AssertionError, match=r"grew by 3 of the 5 expected"):
            expect_growths(client, short, timeout_s=3)
        with pytest.raises(NoData):
            expect_growths(client, missing, timeout_s=3)
    else:
        with pytest.raises(Undercounted, match=r"grew by 3 of the 5 expected, after every target was scraped twice"):
            expect_growths(client, short, timeout_s=120)
        with pytest.raises(Undercounted, match=r"no-such-job.*after every target was scraped twice"):
            expect_growths(client, missing, timeout_s=120)
    with pytest.raises(Overcounted):
        expect_growths(client, {"vector(7)": (0.0, 5.0)}, timeout_s=30)
