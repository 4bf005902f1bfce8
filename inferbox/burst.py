"""Bursts: many requests that reach the gateway at nearly the same moment, sent in a measured window.

A pool of client threads sends as fast as its threads get the CPU: on a busy machine 300 requests
can take three seconds, and a rate limiter of 100 requests per second may then rightly serve them
all. A burst here opens every connection first, then writes every request back to back (a few
milliseconds for hundreds of them), and only then reads the answers. The window the requests were
written in is measured, so a check can judge the platform by when its requests were sent, not by
how fast the client happened to be.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from inferbox.errors import InferboxError

CONNECT_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Burst:
    answers: list[httpx.Response]
    send_window_s: float  # from the first request written to the last one written
    elapsed_s: float  # from the first request written to the last answer read


def send_burst(
    base_url: str,
    count: int,
    method: str,
    path: str,
    headers: Callable[[int], Mapping[str, str]],
    answer_timeout_s: float = ANSWER_TIMEOUT_S,
) -> Burst:
    """``count`` requests without a body, request ``i`` with ``headers(i)`` (``Host`` included),
    one connection each: all connected, then all written, then all answers read."""
    url = urlsplit(base_url)
    if url.scheme != "http" or not url.hostname:
        raise InferboxError(f"a burst needs a plain http:// gateway URL, not {base_url!r}", "give the gateway's URL")
    port = url.port or 80
    prepared = [dict(headers(i)) for i in range(count)]
    connections = [http.client.HTTPConnection(url.hostname, port, timeout=CONNECT_TIMEOUT_S) for _ in range(count)]
    try:
        for connection in connections:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(answer_timeout_s)
        start = time.monotonic()
        for connection, request_headers in zip(connections, prepared, strict=True):
            connection.request(method, path, headers=request_headers)
        sent = time.monotonic()
        answers = [_answer(connection) for connection in connections]
        answered = time.monotonic()
    finally:
        for connection in connections:
            connection.close()
    return Burst(answers, sent - start, answered - start)


def _answer(connection: http.client.HTTPConnection) -> httpx.Response:
    response = connection.getresponse()
    return httpx.Response(response.status, headers=response.getheaders(), content=response.read())
