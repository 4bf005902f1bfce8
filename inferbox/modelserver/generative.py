"""A generative KServe model: the n-gram generator behind KServe's OpenAI-compatible protocol.

Non-streamed answers always carry ``usage``; streamed ones carry it, as OpenAI's API does, only when
the client asks with ``stream_options.include_usage``: a final chunk with no choices and the usage,
before ``data: [DONE]`` (every earlier chunk then has ``"usage": null``). Each content chunk of a
stream is exactly one token, so ``completion_tokens`` is the number of content chunks.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from kserve import Model

from inferbox.modelserver.ngram import Generation, NgramModel, detokenize_piece, load_ngram, tokenize
from inferbox.modelserver.openai_api import (
    Answer,
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    sse,
)

DEFAULT_MAX_TOKENS = 32
MAX_TOKENS = 512  # more is refused: an n-gram answer that long says nothing new


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class NgramGenerativeModel(Model):  # type: ignore[misc]
    """A KServe model (V1 metadata and readiness as any other) that also answers completions."""

    def __init__(self, name: str, artifact: str) -> None:
        super().__init__(name)
        self.artifact = artifact
        self.generator: NgramModel | None = None

    def load(self) -> bool:
        self.generator = load_ngram(self.artifact)
        self.ready = True
        return True

    def _check(self, n: int, limit: int) -> ErrorResponse | None:
        if n != 1:
            return ErrorResponse.of("only n=1 is supported", param="n")
        if limit > MAX_TOKENS:
            return ErrorResponse.of(f"max_tokens must be at most {MAX_TOKENS}", param="max_tokens")
        return None

    def _generate(self, prompt: list[str], limit: int) -> Generation:
        assert self.generator is not None, "load() first"
        return self.generator.generate(prompt, limit)

    async def create_completion(
        self,
        request: CompletionRequest,
        raw_request: Request | None = None,  # noqa: ARG002 - KServe's OpenAIGenerativeModel signature
        context: dict[str, Any] | None = None,  # noqa: ARG002 - KServe's OpenAIGenerativeModel signature
    ) -> Answer:
        limit = request.token_limit(DEFAULT_MAX_TOKENS)
        if problem := self._check(request.n, limit):
            return problem
        if isinstance(request.prompt, list) and len(request.prompt) != 1:
            return ErrorResponse.of("exactly one prompt is supported", param="prompt")
        text = request.prompt if isinstance(request.prompt, str) else request.prompt[0]
        prompt = tokenize(text)
        generation = self._generate(prompt, limit)
        ident, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
        base = {"id": ident, "object": "text_completion", "created": created, "model": self.name}
        if not request.stream:
            choice = {
                "index": 0,
                "text": _text(generation.tokens, leading=True),
                "finish_reason": generation.finish_reason,
                "logprobs": None,
            }
            return {**base, "choices": [choice], "usage": usage(len(prompt), len(generation.tokens))}

        def piece(token: str, first: bool) -> dict[str, Any]:  # noqa: ARG001 - a completion continues its prompt
            return {"index": 0, "text": detokenize_piece(token, False), "logprobs": None}

        return _stream(base, generation, len(prompt), request.include_usage, piece, {"text": ""})

    async def create_chat_completion(
        self,
        request: ChatCompletionRequest,
        raw_request: Request | None = None,  # noqa: ARG002 - KServe's OpenAIGenerativeModel signature
        context: dict[str, Any] | None = None,  # noqa: ARG002 - KServe's OpenAIGenerativeModel signature
    ) -> Answer:
        limit = request.token_limit(DEFAULT_MAX_TOKENS)
        if problem := self._check(request.n, limit):
            return problem
        prompt = [token for message in request.messages for token in tokenize(message.text())]
        # The answer continues the last thing the user said.
        users = [m for m in request.messages if m.role == "user"] or request.messages
        generation = self._generate(tokenize(users[-1].text()), limit)
        ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        base = {"id": ident, "object": "chat.completion", "created": created, "model": self.name}
        if not request.stream:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": _text(generation.tokens)},
                "finish_reason": generation.finish_reason,
                "logprobs": None,
            }
            return {**base, "choices": [choice], "usage": usage(len(prompt), len(generation.tokens))}

        def piece(token: str, first: bool) -> dict[str, Any]:
            return {"index": 0, "delta": {"content": detokenize_piece(token, first)}, "logprobs": None}

        return _stream(
            {**base, "object": "chat.completion.chunk"},
            generation,
            len(prompt),
            request.include_usage,
            piece,
            {"delta": {}},
            first={"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None},
        )


def _text(tokens: tuple[str, ...], leading: bool = False) -> str:
    return "".join(detokenize_piece(t, i == 0 and not leading) for i, t in enumerate(tokens))


async def _stream(
    base: dict[str, Any],
    generation: Generation,
    prompt_tokens: int,
    include_usage: bool,
    piece: Callable[[str, bool], dict[str, Any]],
    last: dict[str, Any],
    first: dict[str, Any] | None = None,
) -> AsyncIterator[str]:
    """The SSE frames of a streamed answer: one token per chunk, the finish reason, then the usage
    chunk when asked for, then [DONE]."""
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def frame(choices: list[dict[str, Any]], **more: Any) -> str:
        return sse(json.dumps({**base, "choices": choices, **extra, **more}))

    if first is not None:
        yield frame([first])
    for i, token in enumerate(generation.tokens):
        yield frame([piece(token, i == 0)])
    yield frame([{"index": 0, **last, "finish_reason": generation.finish_reason}])
    if include_usage:
        yield frame([], usage=usage(prompt_tokens, len(generation.tokens)))
    yield sse("[DONE]")
