"""Models answer correctly through the gateway on KServe's V1 and V2 (Open Inference Protocol)
paths, and their metadata and readiness endpoints answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Feature
from inferbox.samples import samples_for, v2_shape
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of

pytestmark = [pytest.mark.conformance, pytest.mark.serving]

Token = Callable[[str], str]


@pytest.mark.features(Feature.SERVING_V1)
def test_v1_predict_returns_the_right_classes(gateway: GatewayClient, model: Model, token_for: Token) -> None:
    for sample in samples_for(model.kind):
        response = gateway.predict_v1(model, sample.instances, token_for(model.tenant))
        assert response.status_code == 200, f"{sample.name}: {describe(response)}"
        assert response.json()["predictions"] == sample.expected, sample.name


@pytest.mark.features(Feature.SERVING_V2)
def test_v2_infer_returns_the_right_classes(gateway: GatewayClient, model: Model, token_for: Token) -> None:
    for sample in samples_for(model.kind):
        tensor: dict[str, Any] = {
            "name": "input-0",
            "shape": v2_shape(model.kind, len(sample.instances)),
            "datatype": "FP32",
            "data": [value for row in sample.instances for value in row],
        }
        response = gateway.infer_v2(model, [tensor], token_for(model.tenant))
        assert response.status_code == 200, f"{sample.name}: {describe(response)}"
        body = response.json()
        assert body["model_name"] == model.name
        assert [int(v) for v in body["outputs"][0]["data"]] == sample.expected, sample.name


@pytest.mark.features(Feature.MODEL_METADATA)
def test_metadata_and_readiness_answer(gateway: GatewayClient, model: Model, token_for: Token) -> None:
    token = token_for(model.tenant)
    v1 = gateway.metadata_v1(model, token)
    assert v1.status_code == 200, describe(v1)
    assert v1.json() == {"name": model.name, "ready": True}, v1.text
    v2 = gateway.metadata_v2(model, token)
    assert v2.status_code == 200, describe(v2)
    assert v2.json()["name"] == model.name
    for response in (gateway.ready_v2(model, token), gateway.server_ready_v2(model, token)):
        assert response.status_code == 200, describe(response)


@pytest.mark.features(Feature.SERVING_V1, Feature.SERVING_V2)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/models/{name}:predict", {"bogus": 1}),
        ("POST", "/v1/models/{name}:predict", {"instances": [[1.0]]}),
        ("POST", "/v1/models/{name}:predict", {"instances": []}),
        (
            "POST",
            "/v2/models/{name}/infer",
            {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]},
        ),
        ("POST", "/v1/models/{name}:predict", b"{not json"),
    ],
    ids=["v1-no-instances", "v1-wrong-width", "v1-empty", "v2-wrong-shape", "not-json"],
)
def test_malformed_requests_get_a_4xx_from_the_model(
    gateway: GatewayClient, model: Model, token_for: Token, method: str, path: str, body: Any
) -> None:
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = gateway.call(model, method, path.format(name=model.name), token_for(model.tenant), **kwargs)
    assert 400 <= response.status_code < 500, describe(response)
    assert source_of(response) is Source.MODEL, describe(response)


@pytest.mark.features(Feature.SERVING_V1)
def test_unknown_model_name_is_404_from_the_model(gateway: GatewayClient, model: Model, token_for: Token) -> None:
    response = gateway.call(
        model,
        "POST",
        "/v1/models/no-such-model:predict",
        token_for(model.tenant),
        json={"instances": [[1.0]]},
    )
    assert response.status_code == 404, describe(response)
    assert source_of(response) is Source.MODEL, describe(response)
