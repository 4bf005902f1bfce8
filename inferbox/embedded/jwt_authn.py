"""Envoy ``jwt_authn`` providers, as Envoy Gateway builds them for a SecurityPolicy and istiod builds
them for a RequestAuthentication: one builder for the gateway and the sidecars, so both verify tokens
the same way and differ only where the upstream translations differ.

Envoy Gateway 1.4.2 (internal/xds/translator/jwt.go): the payload is kept under the provider's
name, ``scope`` is split on spaces, the token is forwarded, the JWKS is fetched asynchronously with
a 10 s timeout and no retry policy, and kept 300 s; extraction is set only when ``extractFrom`` is
(otherwise Envoy reads the Authorization header's Bearer token and the ``access_token`` query
parameter). Istio 1.26 (pilot/pkg/security/authn/policy_applier.go): the payload is kept under
``payload``, ``scope`` and ``permission`` are split, the token is forwarded only when
``forwardOriginalToken`` says so, CORS preflights pass, and extraction is set only from
``fromHeaders``/``fromParams``/``fromCookies``. Neither sets a clock skew (Envoy: 60 s),
``require_expiration`` or ``max_lifetime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferbox.embedded.gateway_plan import TokenLocations, jwks_service
from inferbox.errors import ManifestError

JWKS_CACHE_DURATION = "300s"
# Envoy Gateway's timeout for requests to external services (defaultExtServiceRequestTimeout).
GATEWAY_JWKS_FETCH_TIMEOUT = "10s"
# Istio's timeout for a remote JWKS fetched by the proxy itself (the embedded sidecars fetch their
# keys; istiod would fetch and inline them).
SIDECAR_JWKS_FETCH_TIMEOUT = "5s"


@dataclass(frozen=True)
class JwksSource:
    """Where a provider's keys come from: an in-cluster Service URL and the Envoy cluster reaching it."""

    uri: str
    namespace: str
    service: str
    port: int

    @classmethod
    def of(cls, uri: str) -> JwksSource:
        where = jwks_service(uri)
        if where is None:
            raise ManifestError(
                f"JWKS URI {uri} is not an in-cluster Service URL",
                "point remoteJWKS/jwksUri at http://<service>.<namespace>.svc.cluster.local:<port>/...",
            )
        return cls(uri, *where)

    def cluster(self, prefix: str) -> str:
        return f"{prefix}__{self.namespace}__{self.service}__{self.port}"


@dataclass(frozen=True)
class Provider:
    """One jwt_authn provider: what a token must carry and where its verified payload goes."""

    jwks: JwksSource
    jwks_cluster: str
    payload_key: str
    issuer: str | None = None
    audiences: tuple[str, ...] = ()
    forward: bool = True
    claim_to_headers: tuple[tuple[str, str], ...] = ()  # (header, claim)
    clock_skew_s: int | None = None  # None: Envoy's default (60 s)
    # None: keys fetched in the background and kept while refetches fail (async_fetch); a number:
    # keys expire after that many seconds and are fetched again on demand (a target knob).
    jwks_cache_s: int | None = None


def _common(provider: Provider) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "forward": provider.forward,
        "payload_in_metadata": provider.payload_key,
        "claim_to_headers": [{"header_name": h, "claim_name": c} for h, c in provider.claim_to_headers],
    }
    if provider.issuer:
        entry["issuer"] = provider.issuer
    if provider.audiences:
        entry["audiences"] = list(provider.audiences)
    if provider.clock_skew_s is not None:
        entry["clock_skew_seconds"] = provider.clock_skew_s
    return entry


def _locations(locations: TokenLocations | None) -> dict[str, Any]:
    """Explicit token locations; none at all leaves Envoy's defaults (Bearer header, access_token param)."""
    if locations is None:
        return {}
    found: dict[str, Any] = {}
    if locations.headers:
        found["from_headers"] = [{"name": n, "value_prefix": prefix} for n, prefix in locations.headers]
    if locations.cookies:
        found["from_cookies"] = list(locations.cookies)
    if locations.params:
        found["from_params"] = list(locations.params)
    return found


def gateway_provider_config(provider: Provider, locations: TokenLocations | None) -> dict[str, Any]:
    """A provider as Envoy Gateway 1.4.2 emits it for a SecurityPolicy."""
    remote: dict[str, Any] = {
        "http_uri": {
            "uri": provider.jwks.uri,
            "cluster": provider.jwks_cluster,
            "timeout": GATEWAY_JWKS_FETCH_TIMEOUT,
        },
        "cache_duration": JWKS_CACHE_DURATION,
        "async_fetch": {},
    }
    if provider.jwks_cache_s is not None:  # the knob: keys expire and are fetched again on demand
        remote.pop("async_fetch")
        remote["cache_duration"] = f"{provider.jwks_cache_s}s"
    return {
        **_common(provider),
        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope"]},
        "remote_jwks": remote,
        **_locations(locations),
    }


def sidecar_provider_config(provider: Provider, locations: TokenLocations | None) -> dict[str, Any]:
    """A provider as Istio 1.26 emits it for a RequestAuthentication rule."""
    return {
        **_common(provider),
        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope", "permission"]},
        "remote_jwks": {
            "http_uri": {
                "uri": provider.jwks.uri,
                "cluster": provider.jwks_cluster,
                "timeout": SIDECAR_JWKS_FETCH_TIMEOUT,
            },
            "cache_duration": JWKS_CACHE_DURATION,
            "async_fetch": {},
        },
        **_locations(locations),
    }
