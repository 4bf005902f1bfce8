"""A small client for Prometheus's HTTP query API, with the waits the observability checks need.

Every failure message carries the PromQL, so "no data" says which query found nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from inferbox.waiting import eventually


class NoData(AssertionError):
    """A query returned no series."""


class QueryFailed(AssertionError):
    """Prometheus refused or failed the query (a syntax error, an unknown function...)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, params: dict[str, Any], what: str) -> Any:
        response = self.http.get(path, params=params)
        try:
            body = response.json()
        except ValueError as exc:
            raise QueryFailed(f"{what}: Prometheus answered {response.status_code} {response.text[:200]!r}") from exc
        if body.get("status") != "success":
            raise QueryFailed(f"{what}: {body.get('errorType', 'error')}: {body.get('error', response.text[:200])}")
        return body["data"]

    def query(self, promql: str) -> list[Sample]:
        data = self._get("/api/v1/query", {"query": promql}, f"query `{promql}`")
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise QueryFailed(f"query `{promql}` returned a {data['resultType']}, not an instant vector")
        return [Sample(dict(r["metric"]), float(r["value"][1])) for r in data["result"]]

    def value(self, promql: str) -> float:
        """The single value of a query that must return exactly one series."""
        samples = self.query(promql)
        if not samples:
            raise NoData(f"no data: `{promql}` returned no series")
        if len(samples) > 1:
            raise AssertionError(f"`{promql}` returned {len(samples)} series, expected one: {samples[:5]}")
        return samples[0].value

    def targets(self) -> list[dict[str, Any]]:
        data = self._get("/api/v1/targets", {"state": "active"}, "targets")
        targets: list[dict[str, Any]] = data["activeTargets"]
        return targets

    def last_complete_scrape(self) -> float:
        """The time by which every target has been scraped at least once more (epoch seconds)."""
        return self.value("min(timestamp(up))")

    def wait_scraped_after(self, moment: float, timeout_s: float) -> None:
        """Waits until every target has been scraped after ``moment``: everything measured before
        it is then in Prometheus."""

        def fresh() -> None:
            last = self.last_complete_scrape()
            assert last > moment, f"the oldest target's last scrape is {moment - last:.1f}s before the requests"

        eventually(fresh, timeout_s=timeout_s, interval_s=0.2)

    def settled_value(self, promql: str, timeout_s: float) -> float:
        """The value of ``promql`` once every target has been scraped after this call began."""
        self.wait_scraped_after(time.time(), timeout_s)
        return self.value(promql)


class Overcounted(Exception):
    """A counter grew by more than the requests sent: waiting longer cannot fix it."""


def expect_growth(
    prometheus: PrometheusClient, promql: str, before: float, expected: float, timeout_s: float, in_a_row: int = 3
) -> float:
    """Waits until ``promql`` equals ``before + expected`` and stays there ``in_a_row`` scrapes."""

    def grown() -> float:
        now = prometheus.value(promql)
        if now > before + expected:
            raise Overcounted(f"`{promql}` grew by {now - before:g}, more than the {expected:g} expected")
        assert now == before + expected, f"`{promql}` grew by {now - before:g} of the {expected:g} expected"
        return now

    return eventually(grown, timeout_s=timeout_s, interval_s=0.5, in_a_row=in_a_row)
