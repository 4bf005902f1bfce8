"""KServe's OpenAI-compatible endpoints, for generative models served by KServe's ModelServer.

KServe (0.15 and later, 0.21 included) implements these routes in ``kserve.protocol.rest.openai``,
whose request and response types are imported from vLLM: without vLLM (and the PyTorch it pulls)
the module does not import and KServe logs "OpenAI endpoints not registered". This module serves
the same contract on KServe's own FastAPI app without vLLM, so it can be swapped for KServe's once
vLLM is installed (see docs/ai-gateway.md):

- the same routes under the same prefix (``KSERVE_OPENAI_ROUTE_PREFIX``, default ``/openai``;
  empty for no prefix): ``POST <prefix>/v1/completions``, ``POST <prefix>/v1/chat/completions``
  and, with a prefix, ``GET <prefix>/v1/models`` and ``GET <prefix>/v1/models/{name}`` (without one,
  KServe's V1 routes of the same paths are registered first and answer them);
- the body's ``model`` selects the model: an unknown one is KServe's ``ModelNotFound`` (404), one
  that is not ready ``ModelNotReady`` (503), answered by KServe's own handlers;
- a model's ``ErrorResponse`` is answered as OpenAI's error object with its status code;
- a stream is ``text/event-stream`` of complete SSE frames the model yields (``data: {...}``, then
  ``data: [DONE]``);
- models implement ``create_completion`` and ``create_chat_completion`` with KServe's signatures
  (``request``, ``raw_request``, ``context``).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from typing import Any, Literal, Protocol

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from kserve.errors import ModelNotFound, ModelNotReady
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

PREFIX_ENV = "KSERVE_OPENAI_ROUTE_PREFIX"
DEFAULT_PREFIX = "/openai"


def route_prefix(environ: Mapping[str, str] = os.environ) -> str:
    """KServe's rule: the variable's value (default /openai), with a leading / added; "" for none."""
    prefix = environ.get(PREFIX_ENV, DEFAULT_PREFIX)
    return prefix if not prefix or prefix.startswith("/") else f"/{prefix}"


# -- requests (the fields OpenAI's API defines; others are accepted and ignored, as vLLM does) ------
class StreamOptions(BaseModel):
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    seed: int | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(_Request):
    prompt: str | list[str]

    def token_limit(self, default: int) -> int:
        return self.max_tokens or default


# -- responses -----------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class ErrorResponse(BaseModel):
    """OpenAI's error object, as KServe's ``create_error_response`` builds it (code = HTTP status)."""

    error: ErrorBody

    @classmethod
    def of(cls, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, param: str = "") -> ErrorResponse:
        return cls(error=ErrorBody(message=message, type="BadRequestError", param=param, code=str(status.value)))


Answer = dict[str, Any] | AsyncIterator[str] | ErrorResponse


class GenerativeModel(Protocol):
    """What KServe's ``OpenAIGenerativeModel`` asks of a model."""

    name: str
    ready: bool

    async def create_completion(
        self, request: CompletionRequest, raw_request: Request | None = None, context: dict[str, Any] | None = None
    ) -> Answer: ...

    async def create_chat_completion(
        self,
        request: ChatCompletionRequest,
        raw_request: Request | None = None,
        context: dict[str, Any] | None = None,
    ) -> Answer: ...


def sse(payload: str) -> str:
    """One server-sent event frame."""
    return f"data: {payload}\n\n"


class _Endpoints:
    def __init__(self, models: Mapping[str, GenerativeModel]) -> None:
        self.models = models
        self.start_time = int(time.time())

    def _model(self, name: str) -> GenerativeModel:
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(name)
        if not model.ready:
            raise ModelNotReady(name)
        return model

    @staticmethod
    def _respond(answer: Answer) -> Response:
        if isinstance(answer, ErrorResponse):
            return JSONResponse(answer.model_dump(), status_code=int(answer.error.code))
        if isinstance(answer, dict):
            return JSONResponse(answer)
        return StreamingResponse(answer, media_type="text/event-stream")

    async def create_completion(self, body: CompletionRequest, raw_request: Request, response: Response) -> Response:
        model = self._model(body.model)
        context = {"headers": dict(raw_request.headers), "response": response}
        return self._respond(await model.create_completion(body, raw_request, context))

    async def create_chat_completion(
        self, body: ChatCompletionRequest, raw_request: Request, response: Response
    ) -> Response:
        model = self._model(body.model)
        context = {"headers": dict(raw_request.headers), "response": response}
        return self._respond(await model.create_chat_completion(body, raw_request, context))

    async def list_models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": self.start_time, "owned_by": ""}
                for name, model in sorted(self.models.items())
                if model.ready
            ],
        }

    async def health(self, model_name: str) -> Response:
        self._model(model_name)
        return Response(status_code=200)


def register_openai_endpoints(app: FastAPI, models: Mapping[str, GenerativeModel], prefix: str | None = None) -> None:
    """Adds the OpenAI routes for ``models`` to KServe's app (before KServe adds its V1/V2 routes)."""
    prefix = route_prefix() if prefix is None else prefix
    endpoints = _Endpoints(models)
    router = APIRouter(prefix=prefix, tags=["OpenAI"])
    router.add_api_route("/v1/completions", endpoints.create_completion, methods=["POST"])
    router.add_api_route("/v1/chat/completions", endpoints.create_chat_completion, methods=["POST"])
    if prefix:
        # Without a prefix these paths are KServe's V1 model list and readiness, registered first.
        router.add_api_route("/v1/models", endpoints.list_models, methods=["GET"])
        router.add_api_route("/v1/models/{model_name}", endpoints.health, methods=["GET"])
    app.include_router(router)
