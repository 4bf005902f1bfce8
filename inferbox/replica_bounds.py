"""KServe's replica bounds of a predictor, read one way for every part of inferbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# KServe's defaults: one replica at least (scale to zero only when minReplicas is 0), no maximum
# (maxReplicas 0 leaves Knative's max-scale unset).
DEFAULT_MIN_REPLICAS = 1
NO_MAXIMUM = 0


def replica_bounds(predictor: Mapping[str, Any]) -> tuple[int, int]:
    """(minReplicas, maxReplicas) of ``spec.predictor``; a maximum of 0 means no bound."""
    return (
        int(predictor.get("minReplicas", DEFAULT_MIN_REPLICAS)),
        int(predictor.get("maxReplicas", NO_MAXIMUM)),
    )
