"""The platform's metrics are really there, with the right labels, for the requests just sent.

Exactness: checks count the requests they send and require Prometheus to show exactly that many
more (never "> 0"), read through the target's metric catalogue. A baseline is read only after every
target has been scraped twice since the check began, so earlier requests are already in it; the checks of
one session run one after another, so nothing else moves these counters meanwhile. Deadlines come
from the target's scrape interval (Observability.metrics_deadline_s). A query that finds nothing
fails with the query in the message.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from inferbox.burst import send_burst
from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Observability, Platform, Signal
from inferbox.evidence import Evidence
from inferbox.observability.prometheus import (
    NeverScraped,
    NoData,
    PrometheusClient,
    ScrapeRounds,
    duration_s,
    expect_growths,
)
from inferbox.observability.promises import observability_promise
from inferbox.observability.traffic import send_predictions
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of
from inferbox.waiting import eventually

pytestmark = [
    # Replicas scaled away mid-check would take their counters with them: the set stays fixed.
    pytest.mark.usefixtures("models_held_warm"),
    pytest.mark.conformance,
    pytest.mark.observability,
    pytest.mark.features(Feature.METRICS),
    pytest.mark.capability(Capability.METRICS),
]

Token = Callable[[str], str]
REQUESTS = 5
# Uncounted predictions first. The quantile is finite unless the counted requests all land on a revision
# the warm-up missed: for a 20 % canary about 0.8^10 x 0.2^5 + 0.2^10 x 0.8^5 = 3e-5.
WARM_UP = 10
NO_TOKEN, OTHER_TENANT = 3, 2
EVERY_START = 10 * 365 * 24 * 3600  # a window older than any replica


def _baseline(prometheus: PrometheusClient, queries: list[str], observability: Observability) -> dict[str, float]:
    """Values once every target has been scraped twice after now; a series that does not exist yet is 0.

    Envoy merges its histograms when its stats are read, so one scrape can show a histogram as of the
    scrape before: the second round has everything measured before this call."""
    for _ in range(2):
        prometheus.wait_scraped_after(time.time(), observability.metrics_deadline_s())
    values = {}
    for query in queries:
        try:
            values[query] = prometheus.value(query)
        except NoData:
            values[query] = 0.0
    return values


def _unchanged(prometheus: PrometheusClient, query: str, before: float) -> None:
    try:
        now = prometheus.value(query)
    except NoData:
        now = 0.0
    assert now == before, f"`{query}` changed by {now - before:g}; these requests must not reach it"


def test_every_scrape_target_is_up(
    platform: Platform, prometheus: PrometheusClient, observability: Observability, evidence: Evidence
) -> None:
    catalogue = observability.catalogue
    expected = {"gateway": catalogue.gateway_target, "token issuer": catalogue.issuer_target}
    for model in platform.topology.models:
        expected[f"model {model.tenant}/{model.name}"] = catalogue.model_up(model.tenant, model.name)

    rounds = ScrapeRounds(prometheus)

    def all_up() -> None:
        settled = rounds.complete()  # read before the series: they are at least as new
        problems, unscraped = [], []
        for name, selector in expected.items():
            samples = prometheus.query(selector)
            if not samples:
                unscraped.append(f"{name}: no data: `{selector}` returned no series (nothing scrapes it)")
            for sample in samples:
                if sample.value != 1:
                    problems.append(f"{name}: target {sample.labels.get('instance')} is down (`{selector}`)")
        problems += [f"target down: {s.labels}" for s in prometheus.query("up == 0")]
        if unscraped and settled:  # every target there is was scraped twice: these are not among them
            raise NeverScraped("\n".join(unscraped + problems))
        assert not unscraped + problems, "\n".join(unscraped + problems)

    eventually(all_up, timeout_s=observability.metrics_deadline_s() + 10, interval_s=0.5, in_a_row=2)
    promise = observability_promise(platform.profile)
    intervals = {}
    for target in prometheus.targets():
        interval = duration_s(str(target.get("scrapeInterval", "")))
        intervals[str(target["labels"].get("job"))] = interval
        assert interval <= promise.max_scrape_interval_s, (
            f"target {target['labels']} is scraped every {interval:g}s; the profile promises at most "
            f"{promise.max_scrape_interval_s:g}s"
        )
    evidence.figure("targets", len(prometheus.query("up")))
    evidence.figure("scrape_interval_s", max(intervals.values()))


@pytest.mark.features(Feature.SERVING_V1)
def test_requests_are_counted_exactly(
    prometheus: PrometheusClient,
    observability: Observability,
    gateway: GatewayClient,
    model: Model,
    token_for: Token,
    evidence: Evidence,
) -> None:
    """N predictions: the gateway's request counter (code 200), its latency histogram and the model
    server's inference histogram each grow by exactly N, and the histograms give latencies."""
    cat = observability.catalogue
    route = {"tenant": model.tenant, "model": model.name}
    counted = [
        cat.query(Signal.REQUESTS, code="200", **route),
        cat.query(Signal.REQUEST_LATENCY_COUNT, **route),
        cat.query(Signal.MODEL_LATENCY_COUNT, **route),
        cat.query(Signal.JWT_ALLOWED),
    ]
    token = token_for(model.tenant)
    # A replica's labelled histogram series appears with its first observation, and rate() needs a
    # series to exist before the counted requests: with replicas started for this module (idle models
    # scale to zero), a few uncounted predictions first, enough to reach every revision of a canary.
    # The baseline is the warm-up seen in full: a replica may serve before Prometheus scrapes it, so
    # "every target scraped" alone could miss it.
    unwarmed = _baseline(prometheus, counted, observability)
    send_predictions(gateway, model, token, WARM_UP)
    deadline = observability.metrics_deadline_s()
    before = expect_growths(prometheus, {query: (unwarmed[query], WARM_UP) for query in counted}, deadline)
    sent = time.monotonic()
    send_predictions(gateway, model, token, REQUESTS)
    expect_growths(prometheus, {query: (before[query], REQUESTS) for query in counted}, deadline)
    evidence.figure("visible_after_s", round(time.monotonic() - sent, 2))
    window = f"{int(max(60, 4 * observability.scrape_interval_s))}s"
    for signal in (Signal.REQUEST_LATENCY_QUANTILE, Signal.MODEL_LATENCY_QUANTILE):
        query = cat.query(signal, q="0.99", window=window, **route)
        latency = prometheus.value(query)
        assert math.isfinite(latency), f"`{query}` gave {latency}: the histogram has no samples"
        assert latency > 0, f"`{query}` gave {latency}"
        evidence.figure(f"{signal}_p99_s", round(latency, 6))


def _other_tenant(platform: Platform, tenant: str) -> str:
    others = [t.name for t in platform.topology.tenants if t.name != tenant]
    if not others:
        pytest.skip("the platform has a single tenant: no other tenant's token to be refused")
    return others[0]


def test_denied_requests_are_counted_with_their_code(
    platform: Platform,
    prometheus: PrometheusClient,
    observability: Observability,
    gateway: GatewayClient,
    model: Model,
    token_for: Token,
) -> None:
    """Requests without a token (401) and with another tenant's token (403) are counted as the
    gateway's refusals with their codes, and never reach the model's counters."""
    cat = observability.catalogue
    route = {"tenant": model.tenant, "model": model.name}
    jwt_denied, authz_denied, refused = (
        cat.query(Signal.JWT_DENIED),
        cat.query(Signal.AUTHZ_DENIED),
        cat.query(Signal.GATEWAY_4XX),
    )
    reached = [cat.query(Signal.REQUESTS, code=".*", **route), cat.query(Signal.MODEL_LATENCY_COUNT, **route)]
    other_token = token_for(_other_tenant(platform, model.tenant))
    before = _baseline(prometheus, [jwt_denied, authz_denied, refused, *reached], observability)
    for _ in range(NO_TOKEN):
        response = gateway.metadata_v1(model)
        assert (response.status_code, source_of(response)) == (401, Source.GATEWAY_AUTHENTICATION), describe(response)
    for _ in range(OTHER_TENANT):
        response = gateway.metadata_v1(model, other_token)
        assert (response.status_code, source_of(response)) == (403, Source.GATEWAY_AUTHORIZATION), describe(response)
    deadline = observability.metrics_deadline_s()
    growth = {jwt_denied: NO_TOKEN, authz_denied: OTHER_TENANT, refused: NO_TOKEN + OTHER_TENANT}
    expect_growths(prometheus, {query: (before[query], n) for query, n in growth.items()}, deadline)
    for query in reached:
        _unchanged(prometheus, query, before[query])


@pytest.fixture
def budget_refilled(gateway: GatewayClient, token_for: Token, model: Model) -> Iterator[None]:
    """After the burst, waits until the tenant is served again, so later checks are not limited by
    this one. Envoy Gateway's local limiter refills the whole bucket at each interval (tokens per
    fill = the limit) and reports nothing in headers, so a served request after the burst means
    the bucket was refilled."""
    yield

    def refilled() -> None:
        response = gateway.metadata_v1(model, token_for(model.tenant))
        assert response.status_code == 200, describe(response)

    eventually(refilled, timeout_s=10, interval_s=0.2)


@pytest.mark.features(Feature.RATE_LIMIT)
@pytest.mark.usefixtures("budget_refilled")
def test_rate_limited_requests_are_counted(
    platform: Platform,
    prometheus: PrometheusClient,
    observability: Observability,
    gateway: GatewayClient,
    model: Model,
    token_for: Token,
    evidence: Evidence,
) -> None:
    """A burst past the tenant's budget: the rate limiter's counter grows by exactly the 429s the
    client saw, and the model's request counter by exactly the requests it served."""
    cat = observability.catalogue
    route = {"tenant": model.tenant, "model": model.name}
    limited, served = cat.query(Signal.RATE_LIMITED), cat.query(Signal.REQUESTS, code="200", **route)
    token = token_for(model.tenant)
    before = _baseline(prometheus, [limited, served], observability)

    burst = platform.profile.rate_limit_per_tenant_rps * 3  # as the rate-limit checks: past the budget
    headers = {"Host": gateway.host(model), "Authorization": f"Bearer {token}"}
    sent = send_burst(platform.gateway_url, burst, "GET", f"/v1/models/{model.name}", lambda _: headers)
    counts: Counter[Source] = Counter()
    for response in sent.answers:
        source = source_of(response)
        assert (response.status_code, source) in ((200, Source.MODEL), (429, Source.GATEWAY_RATE_LIMIT)), (
            f"unexpected answer during the burst: {describe(response)}"
        )
        counts[source] += 1
    evidence.figure(
        "burst",
        {
            "sent": burst,
            "served": counts[Source.MODEL],
            "limited": counts[Source.GATEWAY_RATE_LIMIT],
            "send_window_s": round(sent.send_window_s, 4),
        },
    )
    # What is judged here is the counting; whether the limiter refuses is test_rate_limit's verdict.
    # Without a refusal there is nothing to count: the burst was not sent at once.
    assert counts[Source.GATEWAY_RATE_LIMIT] > 0, (
        f"{burst} requests sent within {sent.send_window_s:.3f}s were never limited"
    )
    deadline = observability.metrics_deadline_s()
    growth = {limited: counts[Source.GATEWAY_RATE_LIMIT], served: counts[Source.MODEL]}
    expect_growths(prometheus, {query: (before[query], n) for query, n in growth.items()}, deadline)


def test_replicas_and_starts_are_visible(
    prometheus: PrometheusClient, observability: Observability, model: Model, evidence: Evidence
) -> None:
    """The model's ready replicas are within its declared bounds, and every one of them shows its start."""
    cat = observability.catalogue
    route = {"tenant": model.tenant, "model": model.name}
    replicas = prometheus.value(cat.query(Signal.REPLICAS, **route))
    highest = model.max_replicas or math.inf  # 0: KServe sets no maximum
    assert model.min_replicas <= replicas <= highest, (
        f"{model.tenant}/{model.name}: {replicas:g} ready replicas, outside [{model.min_replicas}, {highest:g}]"
    )
    starts = prometheus.value(cat.query(Signal.COLD_STARTS, window_s=EVERY_START, **route))
    assert starts == replicas, f"{starts:g} replica starts visible for {replicas:g} running replicas"
    evidence.figure("replicas", replicas)
