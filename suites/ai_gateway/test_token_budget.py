"""Every tenant has its own token budget on the AI Gateway: once a tenant has spent what the profile
allows in a minute, the gateway refuses its requests (429, from the rate limit) while other tenants
keep being served, and the tenant is served again when the minute is over.

The budget counts an answer's tokens when the answer is complete, and lets a request in while the
count is within the budget, so the refusal comes after the request that spent past it (at most one
answer's tokens beyond the budget)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from inferbox.contract import Feature, Platform
from inferbox.evidence import Evidence
from inferbox.openai_client import OpenAIClient, chat_body
from inferbox.profile import AIGatewayPromise
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of
from inferbox.waiting import eventually

from .._machine import alone
from .conftest import PROMPT, other_tenants_model

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.ai_gateway,
    pytest.mark.slow,
    # Waits out budget windows (a minute each) and touches nothing but the AI Gateway's models, which
    # the other suites leave alone: it runs beside them (suites/_background.py).
    pytest.mark.background,
    pytest.mark.capability("ai-gateway"),
    pytest.mark.features(Feature.AI_GATEWAY, Feature.TOKEN_BUDGET),
]
WINDOW_S = 60  # the promise is per minute
# Spending a budget takes a few seconds (about 40 answers); a window with less left than this is
# waited out, and one that ends while spending is measured again.
SPEND_S = 10
MAX_TOKENS = 512  # the most one answer may spend; the model refuses more


def _reset(response: httpx.Response) -> int | None:
    value = response.headers.get("x-ratelimit-reset")
    return int(value) if value is not None else None


def _spend(ai_gateway: OpenAIClient, model: Model, token: str, budget: int) -> tuple[int, int, httpx.Response]:
    """Spends the tenant's budget with the largest answers until the gateway refuses; returns the
    tokens counted in the window (what was spent in it before, as the first answer's remaining budget
    tells, and the answers since), the largest single answer and the refusal. Bounded: a budget that
    never refuses fails after twice the requests it should take."""
    spent, largest = 0, 0
    window: int | None = None
    for _ in range(2 * (budget // MAX_TOKENS + 2)):
        response = ai_gateway.chat(chat_body(model.name, PROMPT, MAX_TOKENS), token)
        if response.status_code != 200:
            return spent, largest, response
        reset = _reset(response)
        if window is None:
            remaining = response.headers.get("x-ratelimit-remaining")
            if remaining is None:  # not a matter of time: fail now rather than wait windows out
                pytest.fail(f"the gateway reports no budget: {dict(response.headers)}")
            spent = budget - int(remaining)  # spent earlier in this window
        elif reset is not None and reset > window:
            raise AssertionError("a new budget window began while spending; spending again")
        window = reset
        total = int(response.json()["usage"]["total_tokens"])
        spent, largest = spent + total, max(largest, total)
    pytest.fail(f"{spent} tokens served in one window without a refusal; the budget is {budget}")


def _window_left(ai_gateway: OpenAIClient, model: Model, token: str, needed_s: float) -> None:
    """Fails unless the budget window has ``needed_s`` seconds left."""
    response = ai_gateway.chat(chat_body(model.name, PROMPT, 1), token)
    assert response.status_code == 200, describe(response)
    reset = _reset(response)
    if reset is None:  # not a matter of time: fail now rather than wait windows out
        pytest.fail(f"the gateway reports no budget window: {dict(response.headers)}")
    assert reset >= needed_s, f"{reset}s left in this budget window, waiting for the next"


def _window_start(ai_gateway: OpenAIClient, model: Model, token: str, needed_s: float) -> None:
    """Waits (at most a window) until the budget window has ``needed_s`` seconds left."""
    eventually(lambda: _window_left(ai_gateway, model, token, needed_s), timeout_s=WINDOW_S + 30, interval_s=1.0)


def test_budget_refuses_once_spent_and_recovers(
    platform: Platform,
    ai_gateway: OpenAIClient,
    llm: Model,
    token_for: Callable[[str], str],
    promise: AIGatewayPromise,
    evidence: Evidence,
) -> None:
    budget = promise.tokens_per_tenant_per_minute
    other = other_tenants_model(platform, llm)
    assert other is not None, "no second tenant on the AI Gateway: per-tenant budgets cannot be told apart"

    def spend_in_one_window() -> tuple[int, int, httpx.Response, httpx.Response]:
        token = token_for(llm.tenant)  # each attempt its own: a check may wait out several windows
        _window_start(ai_gateway, llm, token, needed_s=1.5 * SPEND_S)
        with alone():  # answers as fast as the gateway gives them: no other check's timing meanwhile
            # Waiting for the machine may have taken the window's time: spend only in time enough.
            _window_left(ai_gateway, llm, token, needed_s=SPEND_S)
            spent, largest, refusal = _spend(ai_gateway, llm, token, budget)
        # Meanwhile another tenant, with its own budget, is served, in the window that refused this
        # one: a window ending in between would serve both, whether budgets are per tenant or not.
        served = ai_gateway.chat(chat_body(other.name, PROMPT, 1), token_for(other.tenant))
        if refusal.status_code == 429:
            again = ai_gateway.chat(chat_body(llm.name, PROMPT, 1), token)
            if again.status_code == 200:
                raise AssertionError("the budget window ended right after the refusal; spending again")
        return spent, largest, refusal, served

    spent, largest, refusal, served = eventually(spend_in_one_window, timeout_s=4 * WINDOW_S, interval_s=1.0)
    refused_at = time.monotonic()
    evidence.figure("budget", {"budget": budget, "spent_before_refusal": spent, "largest_answer": largest})
    assert refusal.status_code == 429, f"past the budget: {describe(refusal)}"
    assert source_of(refusal) is Source.GATEWAY_RATE_LIMIT, f"not refused by the rate limit: {describe(refusal)}"
    assert spent >= budget, f"refused after {spent} tokens, before the budget of {budget} was spent"
    assert spent <= budget + largest, f"{spent} tokens served, more than the budget {budget} plus one answer"
    assert served.status_code == 200, f"{other.tenant} was limited by {llm.tenant}'s spending: {describe(served)}"

    def recovered() -> None:
        response = ai_gateway.chat(chat_body(llm.name, PROMPT, 1), token_for(llm.tenant))
        assert response.status_code == 200, f"still refused: {describe(response)}"

    eventually(recovered, timeout_s=WINDOW_S + 15, interval_s=1.0)
    evidence.figure("recovered_after_s", round(time.monotonic() - refused_at, 1))
