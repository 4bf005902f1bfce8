"""Generative models answer OpenAI's chat completions API through the AI Gateway: with a token of the
model's tenant, streamed and not, from the backend the body's ``model`` names. Who may call is the
profile's promise (tenants are isolated); which models exist comes from the manifests."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest

from inferbox.contract import Feature, Platform
from inferbox.evidence import Evidence
from inferbox.openai_client import OpenAIClient, chat_body
from inferbox.profile import AIGatewayPromise
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of

from .conftest import PROMPT, other_tenants_model

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.ai_gateway,
    pytest.mark.capability("ai-gateway"),
    pytest.mark.features(Feature.AI_GATEWAY),
]
MAX_TOKENS = 12


def _answer(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, describe(response)
    assert response.headers.get("x-envoy-upstream-service-time") is not None, "not answered by a backend"
    data = response.json()
    assert isinstance(data, dict), f"the answer is not a JSON object: {response.text[:200]}"
    return data


def _check_usage(usage: object, max_tokens: int) -> dict[str, int]:
    assert isinstance(usage, dict), f"no usage in the answer: {usage!r}"
    prompt, completion, total = usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    assert all(isinstance(n, int) and n >= 0 for n in (prompt, completion, total)), f"usage is not counts: {usage}"
    assert isinstance(prompt, int)
    assert isinstance(completion, int)
    assert prompt > 0, f"the prompt counted no token: {usage}"
    assert total == prompt + completion, f"total_tokens is not prompt + completion: {usage}"
    assert 0 < completion <= max_tokens, f"{completion} completion tokens for max_tokens {max_tokens}: {usage}"
    return {"prompt": prompt, "completion": completion, "total": total}


def test_chat_completion(ai_gateway: OpenAIClient, llm: Model, token_for: Callable[[str], str]) -> None:
    data = _answer(ai_gateway.chat(chat_body(llm.name, PROMPT, MAX_TOKENS), token_for(llm.tenant)))
    assert data.get("object") == "chat.completion", data
    assert data.get("model") == llm.name, f"answered by model {data.get('model')!r}, asked for {llm.name}"
    choices = data.get("choices")
    assert isinstance(choices, list), f"choices: {choices!r}"
    assert len(choices) == 1, f"choices: {choices!r}"
    message = choices[0].get("message") or {}
    assert message.get("role") == "assistant"
    assert isinstance(message.get("content"), str)
    assert message["content"]
    assert choices[0].get("finish_reason") in ("stop", "length"), choices[0]
    _check_usage(data.get("usage"), MAX_TOKENS)


def test_streamed_chat_completion_matches_the_whole_answer(
    ai_gateway: OpenAIClient, llm: Model, token_for: Callable[[str], str], evidence: Evidence
) -> None:
    """A streamed answer (server-sent events, usage in a last chunk when asked for) says what the
    same request answers unstreamed: the models are deterministic."""
    token = token_for(llm.tenant)
    whole = _answer(ai_gateway.chat(chat_body(llm.name, PROMPT, MAX_TOKENS), token))
    streamed = ai_gateway.stream_chat(chat_body(llm.name, PROMPT, MAX_TOKENS, stream=True, include_usage=True), token)
    assert streamed.status == 200, f"{streamed.status}: {streamed.body[:200]}"
    assert streamed.headers.get("content-type", "").startswith("text/event-stream"), streamed.headers
    assert streamed.done, "the stream did not end with data: [DONE]"
    assert all(c.get("object") == "chat.completion.chunk" and c.get("model") == llm.name for c in streamed.chunks)
    choices = whole["choices"]
    assert isinstance(choices, list)
    assert streamed.content == choices[0]["message"]["content"], (
        f"streamed {streamed.content!r}, unstreamed {choices[0]['message']['content']!r}"
    )
    usage = _check_usage(streamed.usage, MAX_TOKENS)
    assert streamed.usage == whole["usage"], f"streamed usage {streamed.usage}, unstreamed {whole['usage']}"
    evidence.figure("stream", {"chunks": len(streamed.chunks), "first_token_s": streamed.first_token_s, **usage})


def test_the_body_model_selects_the_backend(
    platform: Platform, ai_gateway: OpenAIClient, token_for: Callable[[str], str]
) -> None:
    """Every generative model answers under its own name through the one entry point, and no two
    answer the same prompt alike (each request reached the model it named)."""
    answers = {}
    for model in platform.topology.generative_models:
        data = _answer(ai_gateway.chat(chat_body(model.name, PROMPT, MAX_TOKENS), token_for(model.tenant)))
        assert data.get("model") == model.name, f"asked for {model.name}, answered by {data.get('model')!r}"
        choices = data["choices"]
        assert isinstance(choices, list)
        answers[model.name] = choices[0]["message"]["content"]
    assert len(set(answers.values())) == len(answers), f"models answered alike: {answers}"


def test_unknown_model_is_refused_by_the_gateway(
    ai_gateway: OpenAIClient, llm: Model, token_for: Callable[[str], str], promise: AIGatewayPromise, evidence: Evidence
) -> None:
    unknown = f"no-such-model-{secrets.token_hex(3)}"
    response = ai_gateway.chat(chat_body(unknown, PROMPT, MAX_TOKENS), token_for(llm.tenant))
    assert response.status_code == promise.unknown_model_status, describe(response)
    assert source_of(response) is Source.GATEWAY_ROUTING, f"not refused by the gateway's routing: {describe(response)}"
    try:
        openai_shaped = isinstance(response.json().get("error"), dict)
    except ValueError:
        openai_shaped = False
    # OpenAI's clients expect {"error": {...}}; Envoy AI Gateway 0.2.1 answers plain text (a finding).
    evidence.figure("unknown_model", {"status": response.status_code, "openai_error_shape": openai_shaped})


def test_a_token_is_required(ai_gateway: OpenAIClient, llm: Model, token_for: Callable[[str], str]) -> None:
    allowed = ai_gateway.chat(chat_body(llm.name, PROMPT, MAX_TOKENS), token_for(llm.tenant))
    assert allowed.status_code == 200, describe(allowed)
    missing = ai_gateway.chat(chat_body(llm.name, PROMPT, MAX_TOKENS), None)
    assert missing.status_code == 401, describe(missing)
    assert source_of(missing) is Source.GATEWAY_AUTHENTICATION, describe(missing)


def test_other_tenants_tokens_are_refused(
    platform: Platform, ai_gateway: OpenAIClient, llm: Model, token_for: Callable[[str], str]
) -> None:
    """A token of another tenant is refused by the gateway's authorization, also when the client
    adds identity headers naming the model's tenant or its model."""
    others = [t.name for t in platform.topology.tenants if t.name != llm.tenant]
    assert others, "a single tenant: nothing to be isolated from"
    spoof = {header: llm.tenant for header in platform.profile.isolation.identity_headers}
    spoof["x-ai-eg-model"] = (other_tenants_model(platform, llm) or llm).name
    for tenant in others:
        for headers in ({}, spoof):
            response = ai_gateway.chat(chat_body(llm.name, PROMPT, MAX_TOKENS), token_for(tenant), headers=headers)
            assert response.status_code == 403, f"{tenant}'s token, headers {headers}: {describe(response)}"
            assert source_of(response) is Source.GATEWAY_AUTHORIZATION, f"{tenant}'s token: {describe(response)}"
