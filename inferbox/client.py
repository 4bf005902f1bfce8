"""Calling the platform through its gateway: KServe V1 and V2 paths, and the token endpoint.

Every model is addressed by the host name the profile promises, <model>.<tenant>.<domain>; the
gateway is reached at one base URL and the Host header selects the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from inferbox.contract_types import Credentials
from inferbox.profile import ConformanceProfile
from inferbox.topology import Model

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class TokenError(Exception):
    """The token endpoint refused or failed; carries the response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"token endpoint answered {response.status_code}: {response.text[:200]}")
        self.response = response


class GatewayClient:
    def __init__(self, base_url: str, profile: ConformanceProfile, client: httpx.Client | None = None) -> None:
        self.profile = profile
        self.http = client or httpx.Client(base_url=base_url, timeout=DEFAULT_TIMEOUT)
        if client is not None:
            self.http.base_url = httpx.URL(base_url)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ------------------------------------------------------------------------------
    def request_token(
        self,
        credentials: Credentials | None,
        grant_type: str = "client_credentials",
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """POST /token on the token host; credentials go in HTTP Basic unless ``auth`` overrides."""
        basic = auth or ((credentials.client_id, credentials.client_secret) if credentials else None)
        return self.http.post(
            "/token",
            data={"grant_type": grant_type},
            auth=basic if basic else httpx.USE_CLIENT_DEFAULT,
            headers={"Host": self.profile.token_host},
        )

    def token(self, credentials: Credentials) -> str:
        response = self.request_token(credentials)
        if response.status_code != 200:
            raise TokenError(response)
        token: str = response.json()["access_token"]
        return token

    def jwks(self) -> httpx.Response:
        return self.http.get("/.well-known/jwks.json", headers={"Host": self.profile.token_host})

    # -- models ------------------------------------------------------------------------------
    def host(self, model: Model) -> str:
        return self.profile.model_host(model.name, model.tenant)

    def call(
        self,
        model: Model,
        method: str,
        path: str,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        authorization: str | None = None,
    ) -> httpx.Response:
        """Any request to a model's host. ``authorization`` sets the raw header (for malformed values)."""
        all_headers = {"Host": self.host(model), **(headers or {})}
        if authorization is not None:
            all_headers["Authorization"] = authorization
        elif token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if json is not None or content is not None:
            all_headers.setdefault("Content-Type", "application/json")
        return self.http.request(method, path, headers=all_headers, json=json, content=content)

    def predict_v1(self, model: Model, instances: list[Any], token: str | None = None, **kw: Any) -> httpx.Response:
        return self.call(model, "POST", f"/v1/models/{model.name}:predict", token, json={"instances": instances}, **kw)

    def infer_v2(
        self, model: Model, inputs: list[dict[str, Any]], token: str | None = None, **kw: Any
    ) -> httpx.Response:
        return self.call(model, "POST", f"/v2/models/{model.name}/infer", token, json={"inputs": inputs}, **kw)

    def metadata_v1(self, model: Model, token: str | None = None) -> httpx.Response:
        return self.call(model, "GET", f"/v1/models/{model.name}", token)

    def metadata_v2(self, model: Model, token: str | None = None) -> httpx.Response:
        return self.call(model, "GET", f"/v2/models/{model.name}", token)

    def ready_v2(self, model: Model, token: str | None = None) -> httpx.Response:
        return self.call(model, "GET", f"/v2/models/{model.name}/ready", token)

    def server_ready_v2(self, model: Model, token: str | None = None) -> httpx.Response:
        return self.call(model, "GET", "/v2/health/ready", token)


def v2_tensor(name: str, rows: list[list[float]], datatype: str = "FP32") -> dict[str, Any]:
    """An Open Inference Protocol input tensor from rows of equal length."""
    flat = [value for row in rows for value in row]
    return {
        "name": name,
        "shape": [len(rows), len(rows[0]) if rows else 0],
        "datatype": datatype,
        "data": flat,
    }
