"""Calling generative models through the AI Gateway with OpenAI's wire format (plain httpx).

``POST /v1/chat/completions`` with ``{"model", "messages", ...}`` and a platform token; a streamed
answer is server-sent events (``data: {chunk}`` ... ``data: [DONE]``), read here frame by frame with
the time of each, so callers can measure the time to the first token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

CHAT_PATH = "/v1/chat/completions"
DEFAULT_TIMEOUT = httpx.Timeout(90.0, connect=5.0)  # a cold start from zero replicas included


def chat_body(
    model: str, prompt: str, max_tokens: int, stream: bool = False, include_usage: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


@dataclass
class StreamedChat:
    """A streamed chat completion as the client saw it."""

    status: int
    headers: httpx.Headers
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False  # the stream ended with data: [DONE]
    first_token_s: float | None = None  # from sending to the first chunk with content
    elapsed_s: float = 0.0
    body: str = ""  # a refusal's body (not a stream)

    @property
    def content(self) -> str:
        return "".join(
            str(choice.get("delta", {}).get("content") or "") for chunk in self.chunks for choice in chunk["choices"]
        )

    @property
    def content_chunks(self) -> int:
        return sum(1 for c in self.chunks for choice in c["choices"] if choice.get("delta", {}).get("content"))

    @property
    def usage(self) -> dict[str, int] | None:
        found = [c["usage"] for c in self.chunks if c.get("usage")]
        return found[0] if found else None


class OpenAIClient:
    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        self.http = client or httpx.Client(base_url=base_url, timeout=DEFAULT_TIMEOUT)

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _headers(token: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
        out = {"content-type": "application/json", **(headers or {})}
        if token is not None:
            out["authorization"] = f"Bearer {token}"
        return out

    def chat(
        self,
        body: dict[str, Any],
        token: str | None,
        headers: Mapping[str, str] | None = None,
        path: str = CHAT_PATH,
    ) -> httpx.Response:
        return self.http.post(path, content=json.dumps(body), headers=self._headers(token, headers))

    def stream_chat(self, body: dict[str, Any], token: str | None) -> StreamedChat:
        """Sends a streamed chat completion and reads every event as it arrives."""
        started = time.monotonic()
        with self.http.stream("POST", CHAT_PATH, content=json.dumps(body), headers=self._headers(token, None)) as reply:
            result = StreamedChat(reply.status_code, reply.headers)
            if reply.status_code != 200 or not reply.headers.get("content-type", "").startswith("text/event-stream"):
                result.body = reply.read().decode("utf-8", "replace")
                result.elapsed_s = time.monotonic() - started
                return result
            for line in reply.iter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: ") :]
                if payload == "[DONE]":
                    result.done = True
                    continue
                chunk = json.loads(payload)
                result.chunks.append(chunk)
                has_content = any(c.get("delta", {}).get("content") for c in chunk.get("choices", []))
                if has_content and result.first_token_s is None:
                    result.first_token_s = time.monotonic() - started
        result.elapsed_s = time.monotonic() - started
        return result

    def models(self, token: str | None) -> httpx.Response:
        return self.http.get("/v1/models", headers=self._headers(token, None))
