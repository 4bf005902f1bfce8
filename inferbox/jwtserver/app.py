"""The JWT server's HTTP API (an ASGI app).

- ``POST /token``: OAuth2 client-credentials grant; the client authenticates with HTTP Basic (or
  ``client_id``/``client_secret`` form fields). Answers ``{"access_token", "token_type",
  "expires_in"}``. Unauthenticated or wrong credentials: 401 ``invalid_client``. A client past its
  issue budget, or a client id in its failed-authentication backoff: 429 ``slow_down`` with a
  Retry-After (see limits.py).
- ``GET /.well-known/jwks.json``: the active key and retired keys still in their grace period.
- ``GET /healthz`` and ``GET /metrics`` (Prometheus text format).
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field

import jwt
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inferbox.jwtserver.clients import Client, ClientRegistry
from inferbox.jwtserver.keystore import KeyStore
from inferbox.jwtserver.limits import FailureBackoff, IssueBudget, LimitSettings, retry_after


@dataclass(frozen=True)
class IssuerSettings:
    issuer: str
    audience: str
    token_ttl_s: int
    rotation_grace_s: int
    # Development switch: hand tokens for this tenant to anyone, credentials or not. Never set on a
    # shared platform; the suite's mutants set it to prove the token-endpoint checks notice.
    anonymous_tenant: str | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)


def _oauth_error(status: int, error: str, description: str, wait_s: float | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="inference-in-a-box"'} if status == 401 else {}
    if wait_s is not None:
        headers["Retry-After"] = retry_after(wait_s)
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**headers, "Cache-Control": "no-store"},
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def create_app(settings: IssuerSettings, keys: KeyStore, clients: ClientRegistry) -> Starlette:  # noqa: C901 - one nested handler per endpoint
    registry = CollectorRegistry()
    issued = Counter("jwt_server_tokens_issued", "Tokens issued", ["tenant"], registry=registry)
    refused = Counter("jwt_server_token_requests_refused", "Token requests refused", ["reason"], registry=registry)
    limits = settings.limits
    budget = IssueBudget(limits.tokens_per_minute) if limits.tokens_per_minute else None
    backoff = (
        FailureBackoff(limits.failures_before_backoff, limits.backoff_s) if limits.failures_before_backoff else None
    )

    def mint(client: Client) -> str:
        now = int(time.time())
        signing = keys.active()
        claims = {
            "iss": settings.issuer,
            "aud": settings.audience,
            "sub": client.subject,
            "tenant": client.tenant,
            "iat": now,
            "nbf": now,
            "exp": now + settings.token_ttl_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, signing.key, algorithm="RS256", headers={"kid": signing.kid, "typ": "JWT"})

    async def token(request: Request) -> Response:
        form = await request.form()
        if settings.anonymous_tenant:
            anonymous = Client("anonymous", settings.anonymous_tenant, "anonymous", "")
            issued.labels(anonymous.tenant).inc()
            return JSONResponse(
                {"access_token": mint(anonymous), "token_type": "Bearer", "expires_in": settings.token_ttl_s}
            )
        grant = form.get("grant_type")
        if grant != "client_credentials":
            refused.labels("unsupported_grant_type").inc()
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
        creds = _basic_credentials(request)
        if creds is None and isinstance(form.get("client_id"), str) and isinstance(form.get("client_secret"), str):
            creds = (str(form["client_id"]), str(form["client_secret"]))
        if creds is None:
            refused.labels("no_credentials").inc()
            return _oauth_error(401, "invalid_client", "client authentication is required")
        client_id = creds[0]
        wait = backoff.blocked_for(client_id) if backoff else 0.0
        if wait > 0:
            # The secret is not even checked: guesses made during a backoff are worth nothing.
            refused.labels("auth_backoff").inc()
            return _oauth_error(429, "slow_down", "too many failed authentications for this client id", wait)
        client = clients.authenticate(*creds)
        if client is None:
            refused.labels("bad_credentials").inc()
            if backoff:
                backoff.failed(client_id)
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        if backoff:
            backoff.succeeded(client_id)
        wait = budget.take(client.client_id) if budget else 0.0
        if wait > 0:
            refused.labels("issue_budget").inc()
            return _oauth_error(429, "slow_down", "this client's token budget is spent for now", wait)
        issued.labels(client.tenant).inc()
        return JSONResponse(
            {"access_token": mint(client), "token_type": "Bearer", "expires_in": settings.token_ttl_s},
            headers={"Cache-Control": "no-store"},
        )

    async def jwks(_: Request) -> Response:
        return JSONResponse(keys.jwks(settings.rotation_grace_s), headers={"Cache-Control": "max-age=60"})

    async def healthz(_: Request) -> Response:
        keys.active()  # fails loudly when the key directory is unreadable
        return JSONResponse({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
