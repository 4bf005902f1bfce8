"""A small client for Prometheus's HTTP query API, with the waits the observability checks need.

Every failure message carries the PromQL, so "no data" says which query found nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from inferbox.contract_types import PROMETHEUS_TARGET_UPDATE_S
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
    def __init__(self, url: str, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

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

    def longest_scrape_interval(self) -> float:
        """The longest scrape interval of the active targets, in seconds (what deadlines derive from)."""
        intervals = [duration_s(str(t.get("scrapeInterval", ""))) for t in self.targets()]
        if not intervals:
            raise NoData("no data: Prometheus has no active scrape targets (GET /api/v1/targets)")
        return max(intervals)

    def last_complete_scrape(self) -> float:
        """The time by which every target has been scraped successfully once more (epoch seconds).

        Read from the targets API, which also lists targets not scraped yet (a replica that just
        joined). A failed scrape brings no samples, so a target that is down or not yet scraped
        counts as never scraped (0): a baseline read now cannot miss what that target measured."""
        targets = self.targets()
        if not targets:
            raise NoData("no data: Prometheus has no active scrape targets (GET /api/v1/targets)")
        return min(_last_good_scrape(target) for target in targets)

    def unscraped_targets(self) -> list[str]:
        """Targets whose last scrape failed or that were never scraped, with the reason."""
        return [
            f"{t.get('scrapeUrl')} ({t.get('health')}: {t.get('lastError') or 'not scraped yet'})"
            for t in self.targets()
            if _last_good_scrape(t) == 0
        ]

    def wait_scraped_after(self, moment: float, timeout_s: float) -> None:
        """Waits until every target has been scraped successfully after ``moment``: everything
        measured before it is then in Prometheus."""

        def fresh() -> None:
            last = self.last_complete_scrape()
            if last == 0:
                raise AssertionError(f"targets without samples: {'; '.join(self.unscraped_targets()) or 'none now'}")
            assert last > moment, f"the oldest target's last scrape is {moment - last:.1f}s before the requests"

        eventually(fresh, timeout_s=timeout_s, interval_s=0.2)

    def settled_value(self, promql: str, timeout_s: float) -> float:
        """The value of ``promql`` once every target has been scraped after this call began."""
        self.wait_scraped_after(time.time(), timeout_s)
        return self.value(promql)


def duration_s(text: str) -> float:
    """A Prometheus duration such as ``1s``, ``30s``, ``1m30s`` or ``500ms`` in seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
    total, number, i = 0.0, "", 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else text[i]
        if not number or unit not in units:
            raise ValueError(f"not a Prometheus duration: {text!r}")
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number or not text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def _last_good_scrape(target: dict[str, Any]) -> float:
    """A target's last scrape time (epoch seconds) if that scrape succeeded, else 0."""
    if target.get("health") != "up":
        return 0.0
    # RFC 3339 with up to nanoseconds; datetime takes microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(target["lastScrape"])).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


class Overcounted(Exception):
    """A counter grew by more than the requests sent: waiting longer cannot fix it."""


class Undercounted(Exception):
    """A counter still lacks requests after every target was scraped twice since they were answered:
    Prometheus holds all it will ever get of them, so waiting longer cannot fix it."""


class NeverScraped(Exception):
    """A target the platform should have is not among those Prometheus scrapes, after every target
    there is was scraped twice since its target set last changed: waiting longer cannot fix it."""


class ScrapeRounds:
    """Counts complete scrape rounds (every target scraped successfully) once the targets that
    existed when it was made are surely in Prometheus's target set.

    Two such rounds after a request was answered, all it measured is in Prometheus: Envoy merges its
    histograms when its stats are read, so one scrape can still show a histogram as of the one
    before; and a replica that served just before may be discovered but not yet scraped, so rounds
    begin only after Prometheus has applied target changes once more (PROMETHEUS_TARGET_UPDATE_S,
    plus a second for discovery). A target that is down or not scraped yet holds the count where
    it is."""

    def __init__(self, prometheus: PrometheusClient) -> None:
        self.prometheus = prometheus
        self.mark = time.time() + PROMETHEUS_TARGET_UPDATE_S + 1.0
        self.rounds = 0

    def complete(self, wanted: int = 2) -> bool:
        while self.rounds < wanted:
            try:
                last = self.prometheus.last_complete_scrape()
            except NoData:
                return False
            if last <= self.mark:
                return False
            self.rounds += 1
            self.mark = time.time()  # the next round is every target scraped after this reading
        return True


def expect_growths(
    prometheus: PrometheusClient, expected: dict[str, tuple[float, float]], timeout_s: float, in_a_row: int = 3
) -> dict[str, float]:
    """Waits until each query (query -> (before, growth)) equals its ``before + growth``, all of
    them in the same ``in_a_row`` readings. The requests counted were answered before the call: a
    reading still short once every target has been scraped twice since is final (Undercounted),
    as is one above the expected value (Overcounted)."""
    rounds = ScrapeRounds(prometheus)

    def grown() -> dict[str, float]:
        settled = rounds.complete()  # read before the values: they are at least as new
        values, short = {}, []
        for promql, (before, growth) in expected.items():
            try:
                now = prometheus.value(promql)
            except NoData as exc:
                if settled:
                    raise Undercounted(f"{exc}, after every target was scraped twice since the requests") from exc
                raise
            if now > before + growth:
                raise Overcounted(f"`{promql}` grew by {now - before:g}, more than the {growth:g} expected")
            if now != before + growth:
                short.append(f"`{promql}` grew by {now - before:g} of the {growth:g} expected")
            values[promql] = now
        if short and settled:
            raise Undercounted("; ".join(short) + ", after every target was scraped twice since the requests")
        assert not short, "; ".join(short)
        return values

    return eventually(grown, timeout_s=timeout_s, interval_s=0.5, in_a_row=in_a_row)
