"""The embedded target's metric catalogue (the shared one, replicas counted from scrapes; see
inferbox.observability.catalogue) and trace naming."""

from __future__ import annotations

from inferbox.contract import TraceNaming
from inferbox.observability.catalogue import REPLICAS_FROM_SCRAPES, catalogue

CATALOGUE = catalogue("embedded", REPLICAS_FROM_SCRAPES)


def trace_naming(gateway_service: str) -> TraceNaming:
    # Model servers name their spans' service as Istio names a sidecar's: <app>.<namespace>.
    return TraceNaming(gateway_service=gateway_service, model_service="{model}-predictor\\.{tenant}")
