"""The generative model and KServe's OpenAI-compatible routes it is served on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve.errors import ModelNotFound, model_not_found_handler

from inferbox.modelserver.generative import NgramGenerativeModel
from inferbox.modelserver.ngram import NgramModel, load_ngram, tokenize
from inferbox.modelserver.openai_api import register_openai_endpoints, route_prefix

TEXT = "the cat sat on the mat . the cat ate the fish . a dog sat on the cat ."


def test_tokens_are_words_and_punctuation() -> None:
    assert tokenize("What's this? A cat, 2 dogs.") == ["What's", "this", "?", "A", "cat", ",", "2", "dogs", "."]


def test_generation_is_deterministic_and_bounded() -> None:
    model = NgramModel.train(TEXT)
    first = model.generate(tokenize("the cat"), 5)
    assert first == model.generate(tokenize("the cat"), 5)
    assert len(first.tokens) == 5
    assert first.finish_reason == "length"
    # Never the same trigram twice, so generation ends once every continuation is used up.
    long = model.generate(tokenize("the cat"), 500)
    assert long.finish_reason == "stop"
    assert len(long.tokens) < 500
    trigrams = list(zip(("the", "cat", *long.tokens), ("cat", *long.tokens), long.tokens, strict=False))
    assert len(trigrams) == len(set(trigrams))


def test_trained_model_round_trips_through_its_cache(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERBOX_CACHE", str(tmp_path))
    model = load_ngram("ngram-sklearn")
    again = load_ngram("ngram-sklearn")
    prompt = tokenize("the iris dataset")
    assert model.generate(prompt, 12) == again.generate(prompt, 12)
    assert model.generate(prompt, 12).tokens, "the model generated nothing"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory) -> Iterator[TestClient]:
    monkeypatch.setenv("INFERBOX_CACHE", str(tmp_path))
    model = NgramGenerativeModel("tiny", "ngram-sklearn")
    model.load()
    app = FastAPI()
    app.add_exception_handler(ModelNotFound, model_not_found_handler)
    register_openai_endpoints(app, {"tiny": model}, prefix="")
    with TestClient(app) as test_client:
        yield test_client


def _chat(stream: bool = False, include_usage: bool = False, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "the iris dataset"}],
        "max_tokens": 6,
        **extra,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": include_usage}
    return body


def _events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def test_chat_completion_reports_usage(client: TestClient) -> None:
    answer = client.post("/v1/chat/completions", json=_chat()).json()
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "tiny"
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assert answer["choices"][0]["finish_reason"] == "length"


def test_stream_has_one_token_per_chunk_and_usage_only_when_asked(client: TestClient) -> None:
    whole = client.post("/v1/chat/completions", json=_chat()).json()
    with_usage = client.post("/v1/chat/completions", json=_chat(stream=True, include_usage=True))
    assert with_usage.headers["content-type"].startswith("text/event-stream")
    events = _events(with_usage.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = [
        c["choices"][0]["delta"]["content"] for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")
    ]
    assert "".join(content) == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]
    assert whole["usage"]["completion_tokens"] == len(content)
    assert all(c["usage"] is None for c in chunks[:-1])
    without = [json.loads(e) for e in _events(client.post("/v1/chat/completions", json=_chat(stream=True)).text)[:-1]]
    assert all("usage" not in c for c in without), "usage sent without stream_options.include_usage"


def test_completions(client: TestClient) -> None:
    answer = client.post("/v1/completions", json={"model": "tiny", "prompt": "the iris", "max_tokens": 3}).json()
    assert answer["object"] == "text_completion"
    assert answer["usage"]["completion_tokens"] == 3


def test_errors_are_kserves(client: TestClient) -> None:
    unknown = client.post("/v1/chat/completions", json={**_chat(), "model": "nope"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Model with name nope does not exist."}
    many = client.post("/v1/chat/completions", json=_chat(n=2))
    assert many.status_code == 400
    assert many.json()["error"]["code"] == "400"
    assert client.post("/v1/chat/completions", json={"model": "tiny"}).status_code == 422


def test_route_prefix_follows_kserve() -> None:
    assert route_prefix({}) == "/openai"
    assert route_prefix({"KSERVE_OPENAI_ROUTE_PREFIX": ""}) == ""
    assert route_prefix({"KSERVE_OPENAI_ROUTE_PREFIX": "llm"}) == "/llm"
