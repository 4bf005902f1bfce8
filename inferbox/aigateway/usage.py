"""Token usage in OpenAI chat-completion answers, read the way AI Gateway 0.2.1's OpenAI-to-OpenAI
translator reads it: from a JSON answer's ``usage``, or from a stream's server-sent events, where
the first ``data:`` chunk whose ``usage`` is not null gives the counts and nothing later is read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DATA_PREFIX = b"data: "


@dataclass(frozen=True)
class TokenUsage:
    input: int = 0
    output: int = 0
    total: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input + other.input, self.output + other.output, self.total + other.total)

    def cost(self, kind: str) -> int:
        return {"InputToken": self.input, "OutputToken": self.output, "TotalToken": self.total}[kind]


def _of(usage: Any) -> TokenUsage:
    if not isinstance(usage, dict):
        return TokenUsage()
    return TokenUsage(
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(usage.get("total_tokens") or 0),
    )


def usage_of_answer(body: bytes) -> TokenUsage:
    """The usage of a complete JSON answer; a body that is not a JSON object raises ValueError."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return _of(data.get("usage"))


class StreamUsage:
    """Scans a streamed answer's chunks as they pass; the first usage found is the stream's."""

    def __init__(self) -> None:
        self.buffered = b""
        self.found: TokenUsage | None = None

    def feed(self, chunk: bytes) -> TokenUsage:
        """The usage this chunk completes (zero until the usage chunk, and after it)."""
        if self.found is not None:
            return TokenUsage()
        self.buffered += chunk
        while b"\n" in self.buffered:
            line, self.buffered = self.buffered.split(b"\n", 1)
            if not line.startswith(DATA_PREFIX):
                continue
            try:
                event = json.loads(line[len(DATA_PREFIX) :])
            except ValueError:
                continue  # [DONE] and anything else that is not JSON
            if isinstance(event, dict) and event.get("usage") is not None:
                self.found = _of(event["usage"])
                self.buffered = b""
                return self.found
        return TokenUsage()


def error_body(status: str, content_type: str | None, body: bytes) -> bytes | None:
    """0.2.1's rewrite of a backend error that is not JSON into an OpenAI-style error (None: kept)."""
    if content_type is None or content_type == "application/json":
        return None
    payload = {
        "type": "error",
        "error": {"type": "OpenAIBackendError", "message": body.decode("utf-8", "replace"), "code": status},
    }
    return json.dumps(payload, separators=(",", ":")).encode()
