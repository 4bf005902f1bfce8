"""AI Gateway's processor and the rate-limit service, driven with Envoy's own messages (no gRPC)."""

from __future__ import annotations

import gzip
import json

import pytest
from envoy_data_plane.envoy.config.core.v3 import HeaderMap, HeaderValue
from envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 import ProcessingModeBodySendMode
from envoy_data_plane.envoy.service.ext_proc.v3 import HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse
from prometheus_client import CollectorRegistry, generate_latest

from inferbox.aigateway.filterconfig import parse_config
from inferbox.aigateway.metrics import GenAIMetrics
from inferbox.aigateway.processor import ProcessingError, Stream
from inferbox.aigateway.ratelimit import RateLimiter

CONFIG = parse_config(
    {
        "metadataNamespace": "io.envoy.ai_gateway",
        "modelNameHeaderKey": "x-ai-eg-model",
        "selectedRouteHeaderKey": "x-ai-eg-selected-route",
        "originalPathHeaderKey": "x-ai-eg-original-path",
        "llmRequestCosts": [{"metadataKey": "llm_total_token", "type": "TotalToken"}],
        "rules": [{"name": "m-rule-0", "headers": [{"name": "x-ai-eg-model", "value": "m"}], "modelsOwnedBy": "me"}],
    }
)


def _headers(**values: str) -> ProcessingRequest:
    pairs = [
        HeaderValue(key=k.replace("_", "-").replace("status", ":status").replace("path", ":path"), raw_value=v.encode())
        for k, v in values.items()
    ]
    return ProcessingRequest(request_headers=HttpHeaders(headers=HeaderMap(headers=pairs)))


def _response_headers(status: str, **values: str) -> ProcessingRequest:
    pairs = [HeaderValue(key=":status", raw_value=status.encode())]
    pairs += [HeaderValue(key=k.replace("_", "-"), raw_value=v.encode()) for k, v in values.items()]
    return ProcessingRequest(response_headers=HttpHeaders(headers=HeaderMap(headers=pairs)))


def _body(data: bytes, end: bool = True, response: bool = False) -> ProcessingRequest:
    body = HttpBody(body=data, end_of_stream=end)
    return ProcessingRequest(response_body=body) if response else ProcessingRequest(request_body=body)


def _stream() -> tuple[Stream, CollectorRegistry]:
    registry = CollectorRegistry()
    return Stream(CONFIG, GenAIMetrics(registry)), registry


def _routed(body: dict[str, object]) -> tuple[Stream, CollectorRegistry, ProcessingResponse]:
    stream, registry = _stream()
    stream.handle(_headers(path="/v1/chat/completions"))
    response = stream.handle(_body(json.dumps(body).encode()))
    assert response is not None
    return stream, registry, response


def test_the_body_model_selects_the_rule() -> None:
    _, _, response = _routed({"model": "m", "messages": []})
    assert response.request_body is not None
    common = response.request_body.response
    assert common is not None
    assert common.clear_route_cache
    assert common.header_mutation is not None
    set_headers = {h.header.key: h.header.raw_value for h in common.header_mutation.set_headers if h.header}
    assert set_headers == {
        "x-ai-eg-model": b"m",
        "x-ai-eg-selected-route": b"m-rule-0",
        "x-ai-eg-original-path": b"/v1/chat/completions",
    }


def test_no_rule_is_a_404_from_the_processor() -> None:
    _, _, response = _routed({"model": "other", "messages": []})
    assert response.immediate_response is not None
    status = response.immediate_response.status
    assert status is not None
    assert status.code.value == 404
    assert response.immediate_response.body == b"no matching rule found"


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions?x=1", "/v1/models/m"])
def test_other_paths_fail_the_stream(path: str) -> None:
    stream, _ = _stream()
    with pytest.raises(ProcessingError) as failed:
        stream.handle(_headers(path=path))
    assert failed.value.code == "NOT_FOUND"


def test_a_body_that_is_not_json_fails_the_stream() -> None:
    stream, _ = _stream()
    stream.handle(_headers(path="/v1/chat/completions"))
    with pytest.raises(ProcessingError):
        stream.handle(_body(b"{not json"))


def test_models_are_answered_by_the_processor() -> None:
    stream, _ = _stream()
    response = stream.handle(_headers(path="/v1/models"))
    assert response is not None
    assert response.immediate_response is not None
    assert json.loads(response.immediate_response.body)["data"][0]["id"] == "m"


def _cost(response: ProcessingResponse) -> float:
    assert response.dynamic_metadata is not None
    namespace = response.dynamic_metadata.fields["io.envoy.ai_gateway"].struct_value
    assert namespace is not None
    return float(namespace.fields["llm_total_token"].number_value or 0)


def test_usage_of_an_answer_becomes_the_cost() -> None:
    stream, registry, _ = _routed({"model": "m", "messages": []})
    stream.handle(_response_headers("200", x_envoy_upstream_service_time="3", content_encoding="gzip"))
    answer = gzip.compress(
        json.dumps({"usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}}).encode()
    )
    response = stream.handle(_body(answer, response=True))
    assert response is not None
    assert _cost(response) == 7
    assert b'gen_ai_client_token_usage_sum{gen_ai_operation_name="chat"' in generate_latest(registry)


def test_a_stream_is_streamed_and_charged_its_first_usage_chunk() -> None:
    stream, _, _ = _routed({"model": "m", "messages": [], "stream": True})
    headers = stream.handle(_response_headers("200", x_envoy_upstream_service_time="3"))
    assert headers is not None
    assert headers.mode_override is not None
    assert headers.mode_override.response_body_mode == ProcessingModeBodySendMode.STREAMED
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    frames = [
        b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n',
        b'data: {"choices":[],"usage":' + json.dumps(usage).encode()[:10],  # a chunk split mid-event
        json.dumps(usage).encode()[10:] + b"}\n\n",
        b'data: {"choices":[],"usage":{"total_tokens":99}}\n\ndata: [DONE]\n\n',
    ]
    for frame in frames[:-1]:
        response = stream.handle(_body(frame, end=False, response=True))
        assert response is not None
        assert response.dynamic_metadata is None
    last = stream.handle(_body(frames[-1], end=True, response=True))
    assert last is not None
    assert _cost(last) == 3  # the first usage counts; later ones are not read


def test_a_stream_without_usage_costs_nothing() -> None:
    stream, _, _ = _routed({"model": "m", "messages": [], "stream": True})
    stream.handle(_response_headers("200", x_envoy_upstream_service_time="3"))
    last = stream.handle(_body(b'data: {"choices":[]}\n\ndata: [DONE]\n\n', response=True))
    assert last is not None
    assert _cost(last) == 0


def test_a_backend_error_in_plain_text_becomes_an_openai_style_error() -> None:
    stream, _, _ = _routed({"model": "m", "messages": []})
    stream.handle(_response_headers("503", x_envoy_upstream_service_time="3", content_type="text/plain"))
    response = stream.handle(_body(b"upstream connect error", response=True))
    assert response is not None
    assert response.response_body is not None
    common = response.response_body.response
    assert common is not None
    assert common.body_mutation is not None
    assert common.body_mutation.body is not None
    assert json.loads(common.body_mutation.body)["error"] == {
        "type": "OpenAIBackendError",
        "message": "upstream connect error",
        "code": "503",
    }


def test_gateway_refusals_pass_untouched() -> None:
    """RBAC's 403 (no backend answered): not rewritten, not accounted."""
    stream, _, _ = _routed({"model": "m", "messages": []})
    stream.handle(_response_headers("403", content_type="text/plain"))
    response = stream.handle(_body(b"RBAC: access denied", response=True))
    assert response is not None
    assert response.dynamic_metadata is None
    assert response.response_body is not None
    assert response.response_body.response is not None
    assert response.response_body.response.body_mutation is None


LIMITS = [
    {
        "domain": "d",
        "descriptors": [
            {
                "key": "route",
                "value": "route",
                "descriptors": [{"key": "tenant", "rate_limit": {"unit": "MINUTE", "requests_per_unit": 10}}],
            }
        ],
    }
]


def test_the_rate_limit_counts_per_value_and_refuses_strictly_above_the_limit() -> None:
    now = [1200.0]
    limiter = RateLimiter(LIMITS, clock=lambda: now[0])
    a = [("route", "route"), ("tenant", "a")]
    assert not limiter.check("d", [(a, 10)])[0].over_limit  # exactly the limit is still within it
    status = limiter.check("d", [(a, 0)])[0]  # hits 0 checks without counting
    assert not status.over_limit
    assert status.remaining == 0
    assert limiter.check("d", [(a, 1)])[0].over_limit
    assert limiter.check("d", [(a, 0)])[0].over_limit
    assert not limiter.check("d", [([("route", "route"), ("tenant", "b")], 0)])[0].over_limit
    assert limiter.check("d", [([("route", "other")], 5)])[0].limit is None  # no limit configured
    now[0] = 1260.0  # the next minute
    assert not limiter.check("d", [(a, 0)])[0].over_limit


def test_the_window_is_aligned_to_the_unit() -> None:
    now = [1259.0]
    limiter = RateLimiter(LIMITS, clock=lambda: now[0])
    status = limiter.check("d", [([("route", "route"), ("tenant", "a")], 11)])[0]
    assert status.over_limit
    assert status.reset_s == 1
