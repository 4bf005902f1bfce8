"""The gRPC servers Envoy calls: AI Gateway's external processor and the rate-limit service.

Both listen on a Unix socket (Envoy reaches them through a STATIC cluster with a ``pipe`` address);
messages are Envoy's own protobufs (``envoy-data-plane``) carried by grpcio. The processor also
serves its metrics over HTTP, as AI Gateway's sidecar does on port 1064.

``python -m inferbox.aigateway extproc --config FILE --socket PATH --metrics-host H --metrics-port P``
``python -m inferbox.aigateway ratelimit --config FILE --socket PATH``
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from envoy_data_plane.envoy.service.ext_proc.v3 import ProcessingRequest, ProcessingResponse
from envoy_data_plane.envoy.service.ratelimit.v3 import (
    RateLimitRequest,
    RateLimitResponse,
    RateLimitResponseCode,
    RateLimitResponseDescriptorStatus,
    RateLimitResponseRateLimit,
    RateLimitResponseRateLimitUnit,
)
from prometheus_client import CollectorRegistry, start_http_server

from inferbox.aigateway.filterconfig import FilterConfig, load_config
from inferbox.aigateway.metrics import GenAIMetrics
from inferbox.aigateway.processor import ProcessingError, Stream
from inferbox.aigateway.ratelimit import RateLimiter

LOG = logging.getLogger("inferbox.aigateway")
EXTPROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
RATELIMIT_SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
WORKERS = 32  # one per concurrent HTTP stream being processed


def processor_handler(config: FilterConfig, metrics: GenAIMetrics) -> grpc.GenericRpcHandler:
    def process(requests: Iterator[ProcessingRequest], context: grpc.ServicerContext) -> Iterator[ProcessingResponse]:
        stream = Stream(config, metrics)
        for request in requests:
            try:
                response = stream.handle(request)
            except ProcessingError as exc:
                LOG.info("stream ends with %s: %s", exc.code, exc)
                context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
            if response is not None:
                yield response

    return grpc.method_handlers_generic_handler(
        EXTPROC_SERVICE,
        {
            "Process": grpc.stream_stream_rpc_method_handler(
                process, request_deserializer=ProcessingRequest.parse, response_serializer=bytes
            )
        },
    )


def _hits(request: RateLimitRequest) -> list[int]:
    """Per descriptor: its own hits_addend when Envoy sent one, else the request's (at least 1)."""
    default = max(1, request.hits_addend)
    return [d.hits_addend if d.hits_addend is not None else default for d in request.descriptors]


def ratelimit_handler(limiter: RateLimiter) -> grpc.GenericRpcHandler:
    def should_rate_limit(request: RateLimitRequest, _: grpc.ServicerContext) -> RateLimitResponse:
        descriptors = [
            ([(e.key, e.value) for e in d.entries], hits)
            for d, hits in zip(request.descriptors, _hits(request), strict=True)
        ]
        statuses = limiter.check(request.domain, descriptors)
        replies = []
        for status in statuses:
            reply = RateLimitResponseDescriptorStatus(
                code=RateLimitResponseCode.OVER_LIMIT if status.over_limit else RateLimitResponseCode.OK
            )
            if status.limit is not None:
                reply.current_limit = RateLimitResponseRateLimit(
                    requests_per_unit=status.limit.requests_per_unit,
                    unit=RateLimitResponseRateLimitUnit[status.limit.unit],
                )
                reply.limit_remaining = status.remaining
                reply.duration_until_reset = datetime.timedelta(seconds=status.reset_s)
            replies.append(reply)
        over = any(s.over_limit for s in statuses)
        return RateLimitResponse(
            overall_code=RateLimitResponseCode.OVER_LIMIT if over else RateLimitResponseCode.OK, statuses=replies
        )

    return grpc.method_handlers_generic_handler(
        RATELIMIT_SERVICE,
        {
            "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
                should_rate_limit, request_deserializer=RateLimitRequest.parse, response_serializer=bytes
            )
        },
    )


def serve(handler: grpc.GenericRpcHandler, socket: Path) -> None:
    """Serves on a Unix socket until SIGTERM or SIGINT."""
    socket.unlink(missing_ok=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix://{socket}")
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    server.start()
    LOG.info("serving on %s", socket)
    stopped.wait()
    server.stop(grace=2).wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inferbox.aigateway")
    sub = parser.add_subparsers(dest="service", required=True)
    extproc = sub.add_parser("extproc", help="AI Gateway's external processor")
    extproc.add_argument("--config", type=Path, required=True, help="the filter configuration (JSON)")
    extproc.add_argument("--socket", type=Path, required=True, help="the Unix socket to serve gRPC on")
    extproc.add_argument("--metrics-host", default="127.0.0.1", help="where to serve /metrics")
    extproc.add_argument("--metrics-port", type=int, required=True, help="the port of /metrics")
    ratelimit = sub.add_parser("ratelimit", help="the rate-limit service")
    ratelimit.add_argument("--config", type=Path, required=True, help="the rate-limit configuration (JSON)")
    ratelimit.add_argument("--socket", type=Path, required=True, help="the Unix socket to serve gRPC on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.service == "extproc":
        registry = CollectorRegistry()
        metrics = GenAIMetrics(registry)
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=registry)
        serve(processor_handler(load_config(args.config), metrics), args.socket)
    else:
        config: list[dict[str, Any]] = json.loads(args.config.read_text(encoding="utf-8"))
        serve(ratelimit_handler(RateLimiter(config)), args.socket)
