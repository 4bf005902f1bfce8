"""Envoy ``jwt_authn`` providers, as Envoy Gateway builds them for a SecurityPolicy and istiod builds
them for a RequestAuthentication: one builder for the gateway and the sidecars, so both verify tokens
the same way and differ only where the upstream translations differ (the arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferbox.embedded.gateway_plan import jwks_service
from inferbox.errors import ManifestError

# Both translations fetch the JWKS asynchronously (listeners start at once, requests are refused
# until keys arrive) and keep it for five minutes.
JWKS_CACHE_DURATION = "300s"
JWKS_FETCH_TIMEOUT = "5s"
JWKS_FETCH_RETRIES = 3


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


def provider_config(provider: Provider) -> dict[str, Any]:
    entry = _provider_entry(provider)
    if provider.jwks_cache_s is not None:
        remote = entry["remote_jwks"]
        remote.pop("async_fetch")
        remote["cache_duration"] = f"{provider.jwks_cache_s}s"
    return entry


def _provider_entry(provider: Provider) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "remote_jwks": {
            "http_uri": {"uri": provider.jwks.uri, "cluster": provider.jwks_cluster, "timeout": JWKS_FETCH_TIMEOUT},
            "cache_duration": JWKS_CACHE_DURATION,
            "async_fetch": {},
            "retry_policy": {"num_retries": JWKS_FETCH_RETRIES},
        },
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
