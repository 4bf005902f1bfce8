"""Who answered a request: the gateway's authentication, authorization or rate limiter, or the model.

A 401 from a model server is not the gateway rejecting a token, so checks assert the source. The
signatures are those of Envoy's filters, which Envoy Gateway programs on a cluster and the embedded
target runs for real: jwt_authn answers 401 with a ``Bearer`` challenge and a "Jwt ..."/"Jwks ..."
body (403 "Audiences in Jwt are not allowed" for a token of another audience), RBAC answers 403
"RBAC: access denied", the local rate limiter answers 429 "local_rate_limited".
KServe's model server answers JSON.

A workload's sidecar is Envoy too and refuses with the same signatures. Envoy Gateway passes an
upstream's ``server`` header through and puts none on its own replies (its listener's
``server_header_transformation`` is PASS_THROUGH, and it suppresses Envoy's ``x-envoy-*`` response
headers), while Istio's proxies name themselves ``istio-envoy``: so a gateway verdict is a reply
without a ``server`` header, and a mesh verdict carries one.

The model is recognised by its JSON body (Envoy's own replies are plain text), not by that header:
Envoy leaves the header out when the upstream answers before the request was fully forwarded, as
KServe does for an unknown model name.
"""

from __future__ import annotations

from enum import StrEnum

import httpx

# Envoy jwt_authn's failure messages (JwtMissed, JwtExpired, JwksKidAlgMismatch, JwtAudienceNotAllowed...).
JWT_AUTHN_BODIES = ("Jwt ", "Jwks ", "Audiences in Jwt")
# Envoy AI Gateway 0.2.1's processor, when no rule serves the body's model.
AI_GATEWAY_NO_RULE = "no matching rule found"


class Source(StrEnum):
    GATEWAY_AUTHENTICATION = "gateway-authentication"
    GATEWAY_AUTHORIZATION = "gateway-authorization"
    GATEWAY_RATE_LIMIT = "gateway-rate-limit"
    GATEWAY_ROUTING = "gateway-routing"
    MESH_AUTHENTICATION = "mesh-authentication"  # the workload's sidecar refused the token
    MESH_AUTHORIZATION = "mesh-authorization"  # the workload's sidecar's authorization policy refused
    MODEL = "model"
    UNKNOWN = "unknown"


def from_upstream(response: httpx.Response) -> bool:
    """Whether something behind the gateway answered (the gateway's own replies carry no server header)."""
    return "server" in response.headers


def source_of(response: httpx.Response) -> Source:
    body = response.text
    content_type = response.headers.get("content-type", "")
    upstream = from_upstream(response)
    if (
        response.status_code in (401, 403)
        and response.headers.get("www-authenticate", "").startswith("Bearer")
        and body.startswith(JWT_AUTHN_BODIES)
    ):
        return Source.MESH_AUTHENTICATION if upstream else Source.GATEWAY_AUTHENTICATION
    if response.status_code == 403 and body.startswith("RBAC: access denied"):
        return Source.MESH_AUTHORIZATION if upstream else Source.GATEWAY_AUTHORIZATION
    if response.status_code == 429 and ("local_rate_limited" in body or response.headers.get("x-envoy-ratelimited")):
        # Envoy's local rate limiter names itself in the body; its global one (Envoy Gateway's global
        # rate limit) answers with an empty body and x-envoy-ratelimited.
        return Source.GATEWAY_RATE_LIMIT
    # No route (an empty body), or no AI Gateway rule for the body's model ("no matching rule found").
    if response.status_code == 404 and not upstream and (not body or body == AI_GATEWAY_NO_RULE):
        return Source.GATEWAY_ROUTING
    if "application/json" in content_type:
        return Source.MODEL
    return Source.UNKNOWN


def describe(response: httpx.Response) -> str:
    """One line for assertion messages: status, source and the start of the body."""
    return f"{response.status_code} from {source_of(response)}: {response.text[:120]!r}"
