"""AI Gateway 0.2.1's external processor, one HTTP stream at a time (no gRPC here: see ``server``).

The processor is chosen by the request's exact ``:path``:

- ``/v1/chat/completions``: the buffered body's ``model`` goes into ``x-ai-eg-model``; the first
  rule matching a request header sets ``x-ai-eg-selected-route`` (and ``x-ai-eg-original-path``) and
  clears Envoy's route cache, so Envoy re-routes to that rule; no rule: ``404 no matching rule
  found``. A 200 stream switches the response body to STREAMED; usage is read from the answer
  (``usage``) and, at the end of the response, written as the configured costs to dynamic metadata.
  A backend error that is not JSON is rewritten into an OpenAI-style error. Answers that never
  reached a backend (Envoy's own 403, 429...) pass untouched: in 0.2.1 only the upstream filter,
  which runs once a backend is picked, handles responses (recognised here by the router's
  ``x-envoy-upstream-service-time``, which only upstream answers carry);
- ``/v1/models``: answered here with every model the rules declare;
- anything else (``/v1/completions`` included): a gRPC NotFound, which Envoy, failing closed,
  answers with a 500.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field

from envoy_data_plane.envoy.config.core.v3 import HeaderMap, HeaderValue, HeaderValueOption
from envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 import ProcessingMode, ProcessingModeBodySendMode
from envoy_data_plane.envoy.service.ext_proc.v3 import (
    BodyMutation,
    BodyResponse,
    CommonResponse,
    HeaderMutation,
    HeadersResponse,
    HttpBody,
    ImmediateResponse,
    ProcessingRequest,
    ProcessingResponse,
)
from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode
from envoy_data_plane.google.protobuf import Struct, Value

from inferbox.aigateway.filterconfig import FilterConfig, Rule
from inferbox.aigateway.metrics import ChatMetrics, GenAIMetrics
from inferbox.aigateway.usage import StreamUsage, TokenUsage, error_body, usage_of_answer

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
NO_MATCHING_RULE = b"no matching rule found"
UPSTREAM_TIME = "x-envoy-upstream-service-time"


class ProcessingError(Exception):
    """Ends the stream with a gRPC error (Envoy then answers 500: the filter fails closed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # a grpc.StatusCode name: NOT_FOUND, UNKNOWN, INTERNAL


def header_map(headers: HeaderMap | None) -> dict[str, str]:
    if headers is None:
        return {}
    return {
        h.key.lower(): (h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value) for h in headers.headers
    }


def _set(key: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(header=HeaderValue(key=key, raw_value=value.encode()))


def _continue_headers() -> ProcessingResponse:
    return ProcessingResponse(request_headers=HeadersResponse(response=CommonResponse()))


@dataclass
class Stream:
    """The processor's state for one HTTP stream."""

    config: FilterConfig
    metrics: GenAIMetrics
    path: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    rule: Rule | None = None
    streaming: bool = False
    costs: TokenUsage = field(default_factory=TokenUsage)
    stream_usage: StreamUsage = field(default_factory=StreamUsage)
    buffered: bytes = b""
    chat: ChatMetrics | None = None

    def handle(self, request: ProcessingRequest) -> ProcessingResponse | None:
        """The answer to one message from Envoy (None: nothing to send)."""
        if request.request_headers is not None:
            return self._request_headers(request.request_headers.headers)
        if request.request_body is not None:
            return self._request_body(request.request_body)
        if request.response_headers is not None:
            return self._response_headers(request.response_headers.headers)
        if request.response_body is not None:
            return self._response_body(request.response_body)
        return None

    # -- request -------------------------------------------------------------------------------
    def _request_headers(self, headers: HeaderMap | None) -> ProcessingResponse:
        self.request_headers = header_map(headers)
        self.path = self.request_headers.get(":path", "")
        if self.path == CHAT_PATH:
            return _continue_headers()
        if self.path == MODELS_PATH:
            return self._models()
        raise ProcessingError("NOT_FOUND", f"no processor defined for path: {self.path}")

    def _models(self) -> ProcessingResponse:
        body = json.dumps(
            {
                "object": "list",
                "data": [
                    {"id": model, "object": "model", "owned_by": owner, "created": created}
                    for model, owner, created in self.config.declared_models()
                ],
            }
        ).encode()
        headers = HeaderMutation(
            set_headers=[_set("content-length", str(len(body))), _set("content-type", "application/json")]
        )
        return ProcessingResponse(
            immediate_response=ImmediateResponse(status=HttpStatus(code=StatusCode.OK), headers=headers, body=body)
        )

    def _request_body(self, body: HttpBody) -> ProcessingResponse:
        self.buffered += body.body
        try:
            data = json.loads(self.buffered)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            model, stream = data.get("model", ""), data.get("stream", False)
            if not isinstance(model, str) or not isinstance(stream, bool):
                raise ValueError("model must be a string and stream a boolean")
        except ValueError as exc:
            raise ProcessingError("UNKNOWN", f"failed to parse request body: {exc}") from exc
        self.buffered = b""
        self.streaming = stream
        self.request_headers[self.config.model_header] = model
        self.rule = self.config.route(self.request_headers)
        if self.rule is None:
            return ProcessingResponse(
                immediate_response=ImmediateResponse(status=HttpStatus(code=StatusCode.NotFound), body=NO_MATCHING_RULE)
            )
        self.chat = ChatMetrics(self.metrics, model=model, system=self.rule.backend_system)
        mutation = HeaderMutation(
            set_headers=[
                _set(self.config.model_header, model),
                _set(self.config.selected_route_header, self.rule.name),
                _set(self.config.original_path_header, self.path),
            ]
        )
        return ProcessingResponse(
            request_body=BodyResponse(response=CommonResponse(header_mutation=mutation, clear_route_cache=True))
        )

    # -- response ------------------------------------------------------------------------------
    def _response_headers(self, headers: HeaderMap | None) -> ProcessingResponse:
        self.response_headers = header_map(headers)
        mode = None
        upstream = self.rule is not None and UPSTREAM_TIME in self.response_headers
        if upstream and self.streaming and self.response_headers.get(":status") == "200":
            mode = ProcessingMode(response_body_mode=ProcessingModeBodySendMode.STREAMED)
        return ProcessingResponse(response_headers=HeadersResponse(response=CommonResponse()), mode_override=mode)

    def _response_body(self, body: HttpBody) -> ProcessingResponse:
        if self.rule is None or UPSTREAM_TIME not in self.response_headers:
            # Answered before a backend was picked (no rule, RBAC, rate limit): nothing to account.
            return ProcessingResponse(response_body=BodyResponse(response=CommonResponse()))
        assert self.chat is not None
        status = self.response_headers.get(":status", "")
        if not status.startswith("2"):
            self.chat.completion(False)
            return self._backend_error(status, body)
        try:
            usage = self._usage(body)
        except ValueError as exc:
            self.chat.completion(False)
            raise ProcessingError("UNKNOWN", f"failed to transform response: {exc}") from exc
        self.costs = self.costs + usage
        self.chat.tokens(usage.input, usage.output, usage.total)
        if self.streaming:
            self.chat.token_latency(usage.output)
        self.chat.completion(True)
        metadata = self._metadata() if body.end_of_stream else None
        return ProcessingResponse(response_body=BodyResponse(response=CommonResponse()), dynamic_metadata=metadata)

    def _usage(self, body: HttpBody) -> TokenUsage:
        if self.streaming:
            return self.stream_usage.feed(body.body)
        raw = body.body
        if self.response_headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        return usage_of_answer(raw)

    def _backend_error(self, status: str, body: HttpBody) -> ProcessingResponse:
        rewritten = error_body(status, self.response_headers.get("content-type"), body.body)
        if rewritten is None:
            return ProcessingResponse(response_body=BodyResponse(response=CommonResponse()))
        mutation = HeaderMutation(set_headers=[_set("content-length", str(len(rewritten)))])
        return ProcessingResponse(
            response_body=BodyResponse(
                response=CommonResponse(header_mutation=mutation, body_mutation=BodyMutation(body=rewritten))
            )
        )

    def _metadata(self) -> Struct | None:
        if not self.config.costs:
            return None
        fields = {key: Value(number_value=float(self.costs.cost(kind))) for key, kind in self.config.costs}
        return Struct(fields={self.config.metadata_namespace: Value(struct_value=Struct(fields=fields))})
