"""What a tenant is charged is the usage the answer reports: the AI Gateway reads the tokens from the
answer (also from a stream's usage chunk) and its token budget counts exactly them, per tenant; the
gateway's token metrics in Prometheus count them per tenant and model."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from inferbox.contract import Feature, Observability, Platform
from inferbox.evidence import Evidence
from inferbox.observability.prometheus import NoData, PrometheusClient, expect_growths
from inferbox.openai_client import OpenAIClient, chat_body
from inferbox.topology import Model
from inferbox.verdicts import describe
from inferbox.waiting import eventually

from .conftest import PROMPT

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.ai_gateway,
    pytest.mark.capability("ai-gateway"),
    pytest.mark.features(Feature.AI_GATEWAY, Feature.TOKEN_BUDGET),
]
MAX_TOKENS = 40


def _remaining(response: httpx.Response) -> tuple[int, int]:
    """(tokens left in the tenant's budget, seconds to the budget's next window) the gateway reports."""
    assert response.status_code == 200, describe(response)
    remaining, reset = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-reset")
    assert remaining is not None, f"no token budget reported: {dict(response.headers)}"
    assert reset is not None, f"no budget window reported: {dict(response.headers)}"
    return int(remaining), int(reset)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_budget_is_charged_the_reported_usage(
    ai_gateway: OpenAIClient, llm: Model, token_for: Callable[[str], str], stream: bool, evidence: Evidence
) -> None:
    """Two requests in one budget window: what the budget lost in between is the first answer's
    total_tokens (a streamed answer's usage chunk, the client having asked for it)."""
    token = token_for(llm.tenant)

    def charged() -> tuple[int, int]:
        first = ai_gateway.chat(chat_body(llm.name, PROMPT, 1), token)
        before, reset_before = _remaining(first)
        body = chat_body(llm.name, PROMPT, MAX_TOKENS, stream=stream, include_usage=True)
        if stream:
            streamed = ai_gateway.stream_chat(body, token)
            assert streamed.status == 200, f"{streamed.status}: {streamed.body[:200]}"
            assert streamed.usage, "no usage chunk in the stream"
            total = streamed.usage["total_tokens"]
        else:
            answer = ai_gateway.chat(body, token)
            assert answer.status_code == 200, describe(answer)
            total = answer.json()["usage"]["total_tokens"]
        after, reset_after = _remaining(ai_gateway.chat(chat_body(llm.name, PROMPT, 1), token))
        if reset_after > reset_before:
            raise AssertionError("a new budget window began between the requests; measuring again")
        # The first probe's own tokens were charged once it completed, before the second request.
        first_total = first.json()["usage"]["total_tokens"]
        return before - after - first_total, total

    lost, total = eventually(charged, timeout_s=150, interval_s=0.5)
    evidence.figure("charged", {"reported_total_tokens": total, "budget_lost": lost})
    assert lost == total, f"the budget lost {lost} tokens for an answer that reported {total}"


def _tokens(prometheus: PrometheusClient, query: str) -> float:
    try:
        return prometheus.value(query)
    except NoData:
        return 0.0


@pytest.mark.capability("metrics")
@pytest.mark.features(Feature.METRICS)
def test_token_metrics_per_tenant_and_model(
    platform: Platform,
    ai_gateway: OpenAIClient,
    token_for: Callable[[str], str],
    prometheus: PrometheusClient,
    observability: Observability,
    evidence: Evidence,
) -> None:
    """After known answers, the gateway's token counter of each model, labelled with the model's
    tenant, grew by exactly the tokens those answers reported."""
    queries = {
        m: f'sum(gen_ai_client_token_usage_sum{{gen_ai_token_type="total",gen_ai_request_model="{m.name}",'
        f'tenant="{m.tenant}"}})'
        for m in platform.topology.generative_models
    }
    # Earlier checks' tokens are in the counters once Prometheus has scraped after them.
    prometheus.wait_scraped_after(time.time(), observability.metrics_deadline_s())
    before = {m: _tokens(prometheus, q) for m, q in queries.items()}
    reported = dict.fromkeys(queries, 0)
    for model in queries:
        for stream in (False, True):
            body = chat_body(model.name, PROMPT, 8, stream=stream, include_usage=True)
            if stream:
                streamed = ai_gateway.stream_chat(body, token_for(model.tenant))
                assert streamed.usage, f"no usage in the stream of {model.name}"
                reported[model] += streamed.usage["total_tokens"]
            else:
                answer = ai_gateway.chat(body, token_for(model.tenant))
                assert answer.status_code == 200, describe(answer)
                reported[model] += answer.json()["usage"]["total_tokens"]
    # Exactly the reported tokens, each model's counter labelled with its tenant; a count still
    # short once every target was scraped twice after the answers is final.
    growth = {query: (before[model], float(reported[model])) for model, query in queries.items()}
    expect_growths(prometheus, growth, observability.metrics_deadline_s() + 20, in_a_row=1)
    evidence.figure("tokens", {f"{m.tenant}/{m.name}": n for m, n in reported.items()})
