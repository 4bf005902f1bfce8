"""Requests the observability checks send through the gateway, each verified to come from the model."""

from __future__ import annotations

from typing import Any

import httpx

from inferbox.client import GatewayClient
from inferbox.samples import samples_for
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of


def send_predictions(
    gateway: GatewayClient, model: Model, token: str, count: int, path_suffix: str = "", **kw: Any
) -> list[httpx.Response]:
    """``count`` V1 predictions (``path_suffix`` such as ``?probe=...`` is appended to the path),
    each answered 200 by the model."""
    sample = samples_for(model.kind)[0]
    responses = []
    for _ in range(count):
        response = gateway.call(
            model,
            "POST",
            f"/v1/models/{model.name}:predict{path_suffix}",
            token,
            json={"instances": sample.instances},
            **kw,
        )
        assert (response.status_code, source_of(response)) == (200, Source.MODEL), describe(response)
        responses.append(response)
    return responses
