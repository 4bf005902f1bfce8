"""Target knobs: settings of the embedded target that no manifest field expresses.

They exist for mutants, to break what a check guards when the break cannot be written as a
manifest change (for example, Envoy Gateway has no field for the JWT clock skew). Knobs come from
the INFERBOX_KNOBS environment variable as a JSON object; an unknown knob is an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

from inferbox.errors import PlatformError

KNOBS: dict[str, str] = {
    "gateway.jwtClockSkewSeconds": "clock skew the gateway's JWT validation tolerates (Envoy's default is 60)",
    "mesh.sidecarTrustAnyCA": "sidecars accept client certificates from any CA (Istio has no field for this)",
    "mesh.rogueIssuer": "workload certificates come from a second CA the mesh also trusts, not the platform CA",
    "serving.canaryWeightOffset": "percentage points the gateway adds to the latest revision's share of a split "
    "(negative: takes away), so traffic splits differ from what the platform declares",
    "serving.activatorDropsHeldRequests": "the activator answers 503 instead of holding a request while the "
    "revision has no ready replica",
}


def read_knobs(raw: str | None = None) -> dict[str, Any]:
    raw = os.environ.get("INFERBOX_KNOBS", "") if raw is None else raw
    if not raw:
        return {}
    try:
        knobs = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PlatformError(
            f"INFERBOX_KNOBS is not valid JSON: {exc}", 'use e.g. {"gateway.jwtClockSkewSeconds": 0}'
        ) from exc
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise PlatformError(f"unknown target knob(s): {', '.join(unknown)}", f"known knobs: {', '.join(KNOBS)}")
    return dict(knobs)
