"""One request is one trace: client -> gateway -> model with W3C trace context, found through the
Jaeger query API (the same calls work against real Jaeger), with parentage, tenant and model
recorded. Deadlines come from the target's span export interval."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Observability, Platform
from inferbox.evidence import Evidence
from inferbox.observability.jaeger import JaegerQueryClient, Trace, same_trace_id
from inferbox.observability.promises import observability_promise
from inferbox.observability.traffic import send_predictions
from inferbox.topology import Model
from inferbox.waiting import eventually

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.observability,
    pytest.mark.features(Feature.TRACING),
    pytest.mark.capability(Capability.TRACES),
]

Token = Callable[[str], str]
UNTRACED_PROBES = 3


def _check_trace(trace: Trace, observability: Observability, model: Model, client_span: str | None) -> None:
    """Gateway and model spans, correctly parented, tenant and model recorded."""
    naming = observability.traces
    assert naming is not None
    gateway_spans = trace.of_service(naming.gateway_service)
    model_spans = trace.of_service(naming.model_service_pattern(model.tenant, model.name))
    services = sorted({s.service for s in trace.spans})
    assert gateway_spans, (
        f"trace {trace.trace_id} has no span of the gateway ({naming.gateway_service}); services {services}"
    )
    assert model_spans, (
        f"trace {trace.trace_id} has no span of {model.tenant}/{model.name} "
        f"(service matching {naming.model_service}); services {services}"
    )
    assert all(same_trace_id(s.trace_id, trace.trace_id) for s in trace.spans), "spans of another trace were mixed in"
    ids = {s.span_id for s in trace.spans}
    roots = [s for s in trace.spans if s.parent_id is None or s.parent_id not in ids]
    assert len(roots) == 1, f"trace {trace.trace_id} has {len(roots)} roots: {[(r.service, r.name) for r in roots]}"
    root = roots[0]
    assert root in gateway_spans, f"the trace starts at {root.service} {root.name!r}, not at the gateway"
    if client_span is not None:
        assert root.parent_id == client_span, (
            f"the gateway's first span has parent {root.parent_id}, not the client's span {client_span}"
        )
    else:
        assert root.parent_id is None, f"the gateway's first span names parent {root.parent_id} nobody sent"
    for span in model_spans:
        chain = trace.ancestors(span)
        assert chain, f"model span {span.name!r} has no parent in the trace"
        assert chain[-1] == root, f"model span {span.name!r} does not descend from the gateway's span"
        assert any(a in gateway_spans for a in chain), f"model span {span.name!r} has no gateway span above it"
    assert any(s.tags.get(naming.tenant_tag) == model.tenant for s in gateway_spans), (
        f"no gateway span records {naming.tenant_tag}={model.tenant}: "
        f"{[{k: v for k, v in s.tags.items() if k == naming.tenant_tag} for s in gateway_spans]}"
    )


def test_one_request_is_one_trace(
    observability: Observability,
    jaeger: JaegerQueryClient,
    gateway: GatewayClient,
    model: Model,
    token_for: Token,
    evidence: Evidence,
) -> None:
    """A request carrying a known W3C trace context yields that one trace, from the gateway down to
    the model, found by ID and by a search of the gateway's service."""
    assert observability.traces is not None
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    token = token_for(model.tenant)
    start_us = int(time.time() * 1_000_000)
    sent = time.monotonic()
    send_predictions(gateway, model, token, 1, headers={"traceparent": f"00-{trace_id}-{client_span}-01"})

    def complete() -> Trace:
        trace = jaeger.trace(trace_id)
        assert trace is not None, f"the trace store has no trace {trace_id} (GET /api/traces/{trace_id} is 404)"
        _check_trace(trace, observability, model, client_span)
        return trace

    trace = eventually(complete, timeout_s=observability.traces_deadline_s(), interval_s=0.25)
    evidence.figure("queryable_after_s", round(time.monotonic() - sent, 2))
    evidence.figure("spans", len(trace.spans))
    gateway_service = observability.traces.gateway_service
    found = jaeger.find(gateway_service, start_us=start_us, end_us=int(time.time() * 1_000_000), limit=100)
    assert any(same_trace_id(t.trace_id, trace_id) for t in found), (
        f"searching service {gateway_service} since the request does not return trace {trace_id}"
    )
    services = jaeger.services()
    assert gateway_service in services, f"{gateway_service} is not among the services {services}"
    assert jaeger.operations(gateway_service), f"the trace store lists no operations of {gateway_service}"


def test_every_request_is_traced(
    platform: Platform,
    observability: Observability,
    jaeger: JaegerQueryClient,
    gateway: GatewayClient,
    model: Model,
    token_for: Token,
) -> None:
    """Requests arriving without trace context: the gateway starts a trace for each (the profile
    promises every request is traced), found by searching its span tags."""
    if not observability_promise(platform.profile).every_request_traced:
        pytest.skip("the profile does not promise that every request is traced")
    assert observability.traces is not None
    gateway_service = observability.traces.gateway_service
    token = token_for(model.tenant)
    urls = []
    for _ in range(UNTRACED_PROBES):
        marker = f"?inferbox-probe={secrets.token_hex(8)}"
        send_predictions(gateway, model, token, 1, path_suffix=marker)
        urls.append(f"http://{gateway.host(model)}/v1/models/{model.name}:predict{marker}")

    def all_traced() -> None:
        missing = []
        for url in urls:
            found = jaeger.find(gateway_service, tags={"http.url": url}, limit=5)
            if len(found) != 1:
                missing.append(f"{len(found)} traces of {gateway_service} with http.url={url}")
                continue
            _check_trace(found[0], observability, model, None)
        assert not missing, "requests without one trace each:\n" + "\n".join(missing)

    eventually(all_traced, timeout_s=observability.traces_deadline_s(), interval_s=0.25)
