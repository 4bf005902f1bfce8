"""AI Gateway 0.2.1's generative-AI metrics (OpenTelemetry's gen_ai semantic conventions, exported
in Prometheus format on the processor's metrics port): the same series names, labels and buckets.

0.2.1 records some of them more often than once a request, and so does this stand-in: token usage
on every response body chunk (0 for chunks without usage, so for streams only ``_sum`` is the
request's tokens), the request duration on every response body chunk. See docs/ai-gateway.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram

SCOPE = {"otel_scope_name": "envoyproxy/ai-gateway", "otel_scope_version": ""}
COMMON = ("gen_ai_operation_name", "gen_ai_system_name", "gen_ai_request_model")
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16 ... 67108864
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
OUTPUT_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


class GenAIMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = (*COMMON, *SCOPE)
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Number of tokens processed.",
            (*labels, "gen_ai_token_type"),
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.request_duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "Time spent processing request.",
            (*labels, "error_type"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to receive first token in streaming responses.",
            labels,
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.per_output_token = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Time between consecutive tokens in streaming responses.",
            labels,
            buckets=OUTPUT_TOKEN_BUCKETS,
            registry=registry,
        )


@dataclass
class ChatMetrics:
    """One chat completion's metrics, recorded as 0.2.1's ChatCompletionMetrics records them."""

    metrics: GenAIMetrics
    model: str = ""
    system: str = "openai"
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None

    def _labels(self) -> dict[str, str]:
        return {
            "gen_ai_operation_name": "chat",
            "gen_ai_system_name": self.system,
            "gen_ai_request_model": self.model,
            **SCOPE,
        }

    def completion(self, success: bool) -> None:
        error = {"error_type": ""} if success else {"error_type": "_OTHER"}
        self.metrics.request_duration.labels(**self._labels(), **error).observe(time.monotonic() - self.started)

    def tokens(self, input_tokens: int, output_tokens: int, total_tokens: int) -> None:
        for kind, value in (("input", input_tokens), ("output", output_tokens), ("total", total_tokens)):
            self.metrics.token_usage.labels(**self._labels(), gen_ai_token_type=kind).observe(value)

    def token_latency(self, output_tokens: int) -> None:
        """Streams: the first chunk's time is the time to first token; a chunk with tokens gives the
        time since the previous one per token."""
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
            self.metrics.first_token.labels(**self._labels()).observe(now - self.started)
        elif output_tokens > 0 and self.last_token_at is not None:
            self.metrics.per_output_token.labels(**self._labels()).observe((now - self.last_token_at) / output_tokens)
        self.last_token_at = now
