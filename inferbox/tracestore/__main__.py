"""Runs the trace store.

``python -m inferbox.tracestore --host H --otlp-port 4318 --query-port 16686 [--max-mib 128]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn

from inferbox.tracestore.app import create_otlp_app, create_query_app
from inferbox.tracestore.store import DEFAULT_MAX_BYTES, MIB, TraceStore


class _Server(uvicorn.Server):
    # Two servers share one process: signals are handled once, below, for both.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(host: str, otlp_port: int, query_port: int, max_bytes: int) -> None:
    store = TraceStore(max_bytes)
    servers = [
        _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
        for app, port in ((create_otlp_app(store), otlp_port), (create_query_app(store), query_port))
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="tracestore")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--otlp-port", type=int, default=4318)
    parser.add_argument("--query-port", type=int, default=16686)
    parser.add_argument(
        "--max-mib",
        type=float,
        default=DEFAULT_MAX_BYTES / MIB,
        help="memory the stored spans may take; the oldest traces are dropped (and counted) beyond it",
    )
    args = parser.parse_args()
    if args.max_mib <= 0:
        parser.error(f"--max-mib must be positive, not {args.max_mib:g}")
    asyncio.run(serve(args.host, args.otlp_port, args.query_port, int(args.max_mib * MIB)))


if __name__ == "__main__":
    main()
