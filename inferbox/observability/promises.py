"""The observability promises of the conformance profile (``spec.observability``)."""

from __future__ import annotations

from dataclasses import dataclass

from inferbox.errors import ProfileError
from inferbox.profile import ConformanceProfile


@dataclass(frozen=True)
class ObservabilityPromise:
    max_scrape_interval_s: float
    every_request_traced: bool


def observability_promise(profile: ConformanceProfile) -> ObservabilityPromise:
    section = (profile.raw.get("spec") or {}).get("observability")
    if not isinstance(section, dict):
        raise ProfileError(
            f"{profile.source}: the profile has no spec.observability",
            "add maxScrapeIntervalSeconds and everyRequestTraced (see profiles/conformance.yaml)",
        )
    try:
        return ObservabilityPromise(
            max_scrape_interval_s=float(section["maxScrapeIntervalSeconds"]),
            every_request_traced=bool(section["everyRequestTraced"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(
            f"{profile.source}: spec.observability is incomplete or mistyped: {exc}",
            "set maxScrapeIntervalSeconds (a number) and everyRequestTraced (true/false)",
        ) from exc
