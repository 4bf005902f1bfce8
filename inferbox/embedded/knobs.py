"""Target knobs: settings of the embedded target that no manifest field expresses.

They exist for mutants, to break what a check guards when the break cannot be written as a
manifest change (for example, Envoy Gateway has no field for the JWT clock skew). Knobs come from
the INFERBOX_KNOBS environment variable as a JSON object; an unknown knob or a value of the wrong
type is an error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from typing import Any

from inferbox.errors import PlatformError


@dataclass(frozen=True)
class Knobs:
    """The embedded target's knobs; the defaults are the faithful platform."""

    # Clock skew the gateway's JWT validation tolerates (None: Envoy's default, 60 s).
    jwt_clock_skew_s: int | None = None
    # The gateway leaves request paths as sent: no dot-segment removal (Envoy Gateway always
    # normalises them; no field turns it off).
    gateway_skips_path_normalization: bool = False
    # The controller's configuration leaves EnvoyPatchPolicy disabled (extensionApis), so every
    # EnvoyPatchPolicy is Accepted=False, reason Disabled, and nothing is patched.
    envoy_patch_policy_disabled: bool = False
    # Sidecars accept client certificates from any CA (Istio has no field for this).
    sidecar_trust_any_ca: bool = False
    # Workload certificates come from a second CA the mesh also trusts, not the platform CA.
    rogue_issuer: bool = False
    # Percentage points the gateway adds to the latest revision's share of a split (negative: takes
    # away), so traffic splits differ from what the platform declares.
    canary_weight_offset: int = 0
    # The activator answers 503 instead of holding a request while the revision has no ready replica.
    activator_drops_held_requests: bool = False
    # The supervisor does not restart a gateway that exited (restartPolicy: Never instead of Always).
    gateway_restart_never: bool = False
    # The gateway's JWT authentication lets a request through when its keys cannot be fetched (a
    # requirement with allow_missing_or_failed): fail open instead of closed.
    jwks_fail_open: bool = False
    # The gateway keeps the issuer's keys for this many seconds before fetching them again, and
    # forgets them when a fetch fails (None: Envoy Gateway's 300 s, keys kept while fetches fail).
    jwks_cache_s: int | None = None
    # A partition cuts the gateway off from every tenant's pods, not only the one asked for.
    partition_all_tenants: bool = False
    # A key rotation publishes the new key only when it starts signing (staging does nothing), so
    # gateways that cache the keys refuse the new tokens until they fetch again.
    rotation_without_staging: bool = False


# The knobs' names as mutants write them, and the field each sets.
KNOB_NAMES: dict[str, str] = {
    "gateway.jwtClockSkewSeconds": "jwt_clock_skew_s",
    "gateway.skipPathNormalization": "gateway_skips_path_normalization",
    "envoyGateway.envoyPatchPolicyDisabled": "envoy_patch_policy_disabled",
    "mesh.sidecarTrustAnyCA": "sidecar_trust_any_ca",
    "mesh.rogueIssuer": "rogue_issuer",
    "serving.canaryWeightOffset": "canary_weight_offset",
    "serving.activatorDropsHeldRequests": "activator_drops_held_requests",
    "gateway.restartNever": "gateway_restart_never",
    "gateway.jwksFailOpen": "jwks_fail_open",
    "gateway.jwksCacheSeconds": "jwks_cache_s",
    "chaos.partitionAllTenants": "partition_all_tenants",
    "jwtServer.rotationWithoutStaging": "rotation_without_staging",
}
_TYPES = {f.name: f.type for f in fields(Knobs)}


def _value(name: str, value: Any) -> Any:
    kind = _TYPES[KNOB_NAMES[name]]
    wants_bool = "bool" in str(kind)
    if wants_bool and isinstance(value, bool):
        return value
    if not wants_bool and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PlatformError(
        f"target knob {name} must be {'true or false' if wants_bool else 'an integer'}, not {value!r}",
        f"e.g. INFERBOX_KNOBS='{{\"{name}\": {'true' if wants_bool else 0}}}'",
    )


def parse_knobs(raw: str) -> Knobs:
    """Knobs from a JSON object of knob names (empty: the faithful platform)."""
    if not raw:
        return Knobs()
    try:
        given = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PlatformError(
            f"INFERBOX_KNOBS is not valid JSON: {exc}", 'use e.g. {"gateway.jwtClockSkewSeconds": 0}'
        ) from exc
    if not isinstance(given, dict):
        raise PlatformError("INFERBOX_KNOBS must be a JSON object", 'use e.g. {"gateway.jwtClockSkewSeconds": 0}')
    unknown = sorted(set(given) - set(KNOB_NAMES))
    if unknown:
        raise PlatformError(f"unknown target knob(s): {', '.join(unknown)}", f"known knobs: {', '.join(KNOB_NAMES)}")
    return Knobs(**{KNOB_NAMES[name]: _value(name, value) for name, value in given.items()})


def read_knobs() -> Knobs:
    """The knobs this process was started with (INFERBOX_KNOBS)."""
    return parse_knobs(os.environ.get("INFERBOX_KNOBS", ""))
