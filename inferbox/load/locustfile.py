"""inferbox's locustfile: model requests through the gateway (or directly to replicas), measured honestly.

It depends on the standard library and Locust (with gevent and geventhttpclient, which Locust
brings) only, so the same file runs in the official Locust image as a worker inside a cluster.
Everything it does comes from a run plan (JSON) named by ``INFERBOX_LOAD_PLAN``; tenants' client
credentials come from the file named by ``INFERBOX_LOAD_CREDENTIALS`` (never from the plan, which is
copied into the report).

Two modes:

- ``open``: requests follow a fixed timeline (constant spacing or Poisson arrivals) computed from
  the plan's stages. Each Locust process runs one user, a dispatcher, that serves its share of the
  timeline: it sleeps until a request's intended time on a timerfd (gevent's own timers round up to
  whole milliseconds), spinning the last fraction of a millisecond when the timeline is sparse,
  and sends on an idle keep-alive connection. When every connection is busy (a stalled backend) it
  opens another one at once instead of letting the request wait, so the request still leaves on
  time; only at MAX_CONNECTIONS per origin does a request wait for a connection, and those waits
  are counted (``queued``) and show as schedule delay. Latency is from the intended time to the
  kernel's receive timestamp of the answer's last byte (plain HTTP; with TLS, to when the answer
  is decrypted), so neither a late send nor a late wake-up of this process hides. Locust's own
  statistics receive the same latency. Slots the generator never sent count against the achieved
  rate.
- ``closed``: ordinary Locust users (FastHttpUser), each pacing itself to its share of the stage's
  rate; latency is measured from the actual send, as Locust always does. Kept to show what closed
  loop hides.

Every request is also recorded raw (intended, sent and done times, status, outcome, target) so
percentiles are exact, not Locust's rounded buckets. Workers ship their records to the master with
their regular reports. When the run ends, the master asks each worker for the rest: the worker
waits until none of its requests is in flight, then sends its last records and the count of its
timeline's slots (the master waits for every worker, bounded; Locust itself would give workers
half a second). The local runner or the master writes them to ``samples.bin`` and
``samples.json`` in the plan's output folder when Locust quits.
"""

from __future__ import annotations

import array
import base64
import contextlib
import ctypes
import gc
import json
import math
import os
import random
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.socket
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser
from locust import FastHttpUser, LoadTestShape, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

# Outcome codes of a recorded request (inferbox.load.records reads the same codes).
OK, RATE_LIMITED, HTTP_ERROR, WRONG_ANSWER, CONNECTION = 0, 1, 2, 3, 4

with open(os.environ["INFERBOX_LOAD_PLAN"], encoding="utf-8") as _plan_file:
    PLAN: dict[str, Any] = json.load(_plan_file)

STAGES: list[dict[str, Any]] = PLAN["stages"]
TOTAL_S = float(sum(stage["seconds"] for stage in STAGES))
OPEN = PLAN["mode"] == "open"
TARGETS: list[dict[str, Any]] = PLAN["targets"]
STREAMED = any(t.get("chat_stream") for t in TARGETS)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("intended", "d"),
    ("sent", "d"),
    ("done", "d"),
    ("status", "h"),
    ("outcome", "b"),
    ("target", "h"),
)
if STREAMED:
    # Streams also record when their first token arrived (NaN: none), the completion tokens the final
    # usage chunk reported (-1: no usage) and the chunks with content counted (-1: not a stream).
    COLUMNS += (("first", "d"), ("tokens", "i"), ("chunks", "i"))
NAN = float("nan")
END_GRACE_S = 2.0
FINAL_REPORT_TIMEOUT_S = 30.0
PROCESSES = max(1, int(PLAN.get("workers") or 0))
# Open loop: connections per origin before requests wait for one; idle connections older than
# IDLE_MAX_S are replaced rather than reused (servers close idle keep-alive connections, uvicorn
# after 5 s, and a request sent on one being closed would fail for the generator's sake).
MAX_CONNECTIONS = 1000
IDLE_MAX_S = 4.0
# A dispatcher this far behind its timeline opens connections one at a time (Pool.may_grow); on time,
# it opens one for every request that finds all busy, so a stalled backend never holds a request.
GROW_LATE_S = 0.005
# The dispatcher wakes this long before a request's time and spins the rest, when the timeline is
# sparse enough (gaps of SPIN_GAPS times this) that spinning costs at most a tenth of a core.
SPIN_S = float(PLAN.get("spin_s", 0.0002))
SPIN_GAPS = 10.0
TIMER_FLOOR_S = 0.00002  # closer than this, spinning beats arming a timer
SO_TIMESTAMPNS = 35  # Linux: a socket option and, as SCM_TIMESTAMPNS, its ancillary message


def stage_at(offset: float) -> dict[str, Any] | None:
    elapsed = 0.0
    for stage in STAGES:
        elapsed += float(stage["seconds"])
        if offset < elapsed:
            return stage
    return None


class Schedule:
    """The open-loop timeline of this process: its share of the plan's rate, as offsets from t0.

    Constant arrivals: in a stage starting at S with rate R, the whole run's slots are S + k/R, and
    worker i of N takes every N-th of them starting at the i-th, so workers interleave exactly.
    Poisson arrivals: each worker draws exponential gaps at R/N (independent Poisson streams add up
    to one at R); at a stage boundary it restarts at the new rate, which memorylessness allows.
    """

    def __init__(self, share: float, index: int, seed: int) -> None:
        count = max(1, round(1.0 / share))
        self.slots = (
            self._poisson(count, random.Random(seed * 1_000_003 + index))
            if PLAN["arrival"] == "poisson"
            else self._constant(count, index)
        )
        self.issued = 0
        self.over = False

    @staticmethod
    def _constant(count: int, index: int) -> Iterator[float]:
        begin = 0.0
        for stage in STAGES:
            seconds, rate = float(stage["seconds"]), float(stage["rate"])
            k = index
            while rate > 0 and k / rate < seconds - 1e-9:
                yield begin + k / rate
                k += count
            begin += seconds

    @staticmethod
    def _poisson(count: int, rng: random.Random) -> Iterator[float]:
        begin = 0.0
        for stage in STAGES:
            seconds, rate = float(stage["seconds"]), float(stage["rate"]) / count
            t = rng.expovariate(rate) if rate > 0 else seconds
            while t < seconds:
                yield begin + t
                t += rng.expovariate(rate)
            begin += seconds

    def take(self) -> float | None:
        """The next slot's offset, or None when the timeline is over."""
        slot = next(self.slots, None)
        if slot is None:
            self.over = True
            return None
        self.issued += 1
        return slot

    def drain(self) -> int:
        """Counts every slot of the whole timeline, also those never taken (the generator fell behind)."""
        while self.take() is not None:
            pass
        return self.issued


class Recorder:
    """Raw per-request records of this process, with the part not yet shipped to the master."""

    def __init__(self) -> None:
        self.columns: dict[str, array.array[Any]] = {name: array.array(code) for name, code in COLUMNS}
        self.shipped = 0
        self.t0_mono = time.monotonic()
        self.t0_wall = time.time()
        self.cpu0 = time.process_time()
        self.scheduled: int | None = None

    def add(
        self,
        intended: float,
        sent: float,
        done: float,
        status: int,
        outcome: int,
        target: int,
        stream: ChatStream | None = None,
    ) -> None:
        row: tuple[float | int, ...] = (
            intended - self.t0_mono,
            sent - self.t0_mono,
            done - self.t0_mono,
            status,
            outcome,
            target,
        )
        if STREAMED:
            first = stream.first if stream is not None and stream.first is not None else None
            row += (
                NAN if first is None else first - self.t0_mono,
                -1 if stream is None or stream.usage_tokens is None else stream.usage_tokens,
                -1 if stream is None else stream.chunks,
            )
        for (name, _), value in zip(COLUMNS, row, strict=True):
            self.columns[name].append(value)

    def __len__(self) -> int:
        return len(self.columns["done"])

    def unshipped(self) -> dict[str, list[Any]]:
        end = len(self)
        rows = {name: self.columns[name][self.shipped : end].tolist() for name, _ in COLUMNS}
        self.shipped = end
        return rows


class Tokens:
    """Real tokens of each tenant from the platform's token endpoint, renewed before they expire."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.tokens: dict[str, tuple[str, float]] = {}
        path = os.environ.get("INFERBOX_LOAD_CREDENTIALS", "")
        self.credentials: dict[str, dict[str, str]] = {}
        if path:
            with open(path, encoding="utf-8") as handle:
                self.credentials = json.load(handle)
        self.tenants = sorted({t.get("token_tenant") or t["tenant"] for t in TARGETS if t["auth"]})
        missing = [t for t in self.tenants if t not in self.credentials]
        if missing:
            raise RuntimeError(f"no client credentials for tenant(s) {missing} in INFERBOX_LOAD_CREDENTIALS")

    def fetch(self, tenant: str) -> None:
        token = PLAN["token"]
        creds = self.credentials[tenant]
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the plan's gateway URL
            token["base_url"].rstrip("/") + token["path"],
            data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
            headers={"Host": token["host"], "Authorization": f"Basic {basic}"},
            method="POST",
        )
        start = time.perf_counter()
        error: Exception | None = None
        length = 0
        try:
            with urllib.request.urlopen(request, timeout=PLAN["timeout_s"]) as response:  # noqa: S310
                body = response.read()
            length = len(body)
            value = json.loads(body)["access_token"]
            # Only the expiry, to renew in time (the gateway verifies the token). Decoded by hand: this file
            # also runs in the official Locust image, which has no pyjwt (see the locustfile's imports test).
            claims = json.loads(base64.urlsafe_b64decode(value.split(".")[1] + "=="))
            self.tokens[tenant] = (value, float(claims["exp"]))
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="TOKEN",
            name=f"token {tenant}",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=error,
            context={"tenant": tenant},
        )

    def due(self, tenant: str) -> bool:
        _, expires = self.tokens.get(tenant, ("", 0.0))
        return time.time() > expires - float(PLAN["token"]["refresh_before_expiry_s"])

    def start(self) -> None:
        for tenant in self.tenants:
            self.fetch(tenant)
        gevent.spawn(self._renew)

    def _renew(self) -> None:
        # Bounded by the run: the process ends with the test.
        while True:
            for tenant in self.tenants:
                if self.due(tenant):
                    self.fetch(tenant)
            gevent.sleep(1.0)

    def get(self, tenant: str) -> str:
        if tenant not in self.tokens or self.due(tenant):
            self.fetch(tenant)
        return self.tokens.get(tenant, ("", 0.0))[0]


class Mix:
    """Smooth weighted round robin over the plan's targets: exact shares, evenly interleaved."""

    def __init__(self, offset: int) -> None:
        self.weights = [float(t["weight"]) for t in TARGETS]
        self.total = sum(self.weights)
        self.current = [0.0] * len(TARGETS)
        for _ in range(offset % max(1, len(TARGETS))):
            self.next()

    def next(self) -> int:
        best = 0
        for index, weight in enumerate(self.weights):
            self.current[index] += weight
            if self.current[index] > self.current[best]:
                best = index
        self.current[best] -= self.total
        return best


STATE: dict[str, Any] = {}


def _answer_ok(target: dict[str, Any], body: Any) -> bool:
    expect = target["expect"]
    if expect is None:
        return True
    if target["protocol"] == "v1":
        return isinstance(body, dict) and bool(body.get("predictions") == expect)
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        return False
    return bool([int(v) for v in outputs[0].get("data", [])] == expect)


def classify(
    target: dict[str, Any], status: int, content: bytes, body: Any, rate_limit_header: bool = False
) -> tuple[int, str]:
    """The outcome of an answer. A 429 is the gateway's rate limiter only when it says so: Envoy's local
    limiter names itself in the body, its global one (the AI Gateway's token budget) sends an empty
    body and ``x-envoy-ratelimited``."""
    if status == 0:
        return CONNECTION, "no response (connection error or timeout)"
    if status == 429 and (b"local_rate_limited" in content or rate_limit_header):
        return RATE_LIMITED, "429 from the gateway's rate limiter"
    if status != 200:
        return HTTP_ERROR, f"HTTP {status}"
    if not _answer_ok(target, body):
        return WRONG_ANSWER, "wrong answer"
    return OK, ""


def bearer_token(target: dict[str, Any]) -> str:
    """The token a target's requests carry: a fixed one (a chaos probe's forged token), else the
    current token of the tenant it names (a chaos probe may send another tenant's), else none."""
    if target.get("token"):
        return str(target["token"])
    if not target["auth"]:
        return ""
    return str(STATE["tokens"].get(target.get("token_tenant") or target["tenant"]) or "")


def rate_limit_head(data: bytes) -> bool:
    """The response head (the bytes up to its blank line) carries Envoy's ``x-envoy-ratelimited``."""
    end = data.find(b"\r\n\r\n")
    return b"\r\nx-envoy-ratelimited:" in data[: end if end >= 0 else len(data)].lower()


class ChatStream:
    """One streamed chat completion (OpenAI's server-sent events) read as its bytes arrive: when the
    first chunk with content came, how many chunks had content, the usage of the final chunk, and
    whether it ended with ``data: [DONE]``. Fed the body (transfer encoding removed) in pieces."""

    def __init__(self) -> None:
        self.pending = b""
        self.data: list[bytes] = []
        self.first: float | None = None  # monotonic time of the read that brought the first token
        self.chunks = 0  # chunks whose delta has content (one token each for the n-gram models)
        self.usage_tokens: int | None = None  # completion_tokens of the usage chunk
        self.done = False
        self.problem = ""

    def feed(self, data: bytes, at: float) -> None:
        """Reads the complete lines of ``data`` (the rest waits for more); ``at`` is when it arrived."""
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line.startswith(b"data:"):
                self.data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif not line and self.data:  # a blank line ends an event
                self._event(b"\n".join(self.data), at)
                self.data = []

    def _event(self, payload: bytes, at: float) -> None:
        if self.done:
            self.problem = self.problem or "an event after data: [DONE]"
            return
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            self.problem = self.problem or f"an event that is not JSON: {payload[:60]!r}"
            return
        if not isinstance(chunk, dict) or chunk.get("object") != "chat.completion.chunk":
            self.problem = self.problem or f"an event that is not a chat.completion.chunk: {payload[:60]!r}"
            return
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and (choice.get("delta") or {}).get("content"):
                self.chunks += 1
                if self.first is None:
                    self.first = at
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = int(usage["completion_tokens"])

    def verdict(self) -> tuple[int, str]:
        """A complete stream with at least one token is a right answer (the text is the model's own)."""
        if self.problem:
            return WRONG_ANSWER, f"unreadable stream: {self.problem}"
        if self.pending.strip() or self.data:
            return WRONG_ANSWER, "the stream ended inside an event"
        if not self.done:
            return WRONG_ANSWER, "the stream did not end with data: [DONE]"
        if not self.chunks:
            return WRONG_ANSWER, "the stream carried no token"
        return OK, ""


def _mesh_tls(*args: Any, **kwargs: Any) -> Any:
    """Mutual TLS with the plan's mesh identity, for replicas behind a sidecar (identities are URI SANs)."""
    tls = PLAN["tls"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(tls["ca"])
    context.load_cert_chain(tls["cert"], tls["key"])
    return context


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Clock:
    """Waits for a monotonic time to within microseconds: a timerfd (an hrtimer without timer slack)
    watched by gevent's loop, whose own timers round their timeouts up to whole milliseconds.
    Without timerfd (not Linux) it falls back to gevent's timers."""

    CLOCK_MONOTONIC, TFD_TIMER_ABSTIME = 1, 1

    def __init__(self, spin_s: float = SPIN_S) -> None:
        self.spin_s = spin_s
        self.fd = -1
        try:
            self.libc: Any = ctypes.CDLL(None, use_errno=True)
            self.fd = int(self.libc.timerfd_create(self.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        except (OSError, AttributeError):
            self.fd = -1
        self.spec = _Itimerspec()
        self.watcher = gevent.get_hub().loop.io(self.fd, 1) if self.fd >= 0 else None
        if self.watcher is not None:
            # libev's highest priority: when the timer and answers are ready together, the request
            # due leaves first (answers keep their kernel timestamps however late they are read).
            self.watcher.priority = 2

    def _sleep(self, at: float) -> None:
        if self.watcher is None:
            gevent.sleep(max(0.0, at - time.monotonic()))
            return
        seconds = int(at)
        self.spec.it_value.tv_sec = seconds
        self.spec.it_value.tv_nsec = int((at - seconds) * 1e9)
        self.libc.timerfd_settime(self.fd, self.TFD_TIMER_ABSTIME, ctypes.byref(self.spec), None)
        gevent.get_hub().wait(self.watcher)
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def until(self, at: float) -> None:
        """Returns at ``at`` or, when that has passed, at once; never before it."""
        remaining = at - time.monotonic()
        if remaining > TIMER_FLOOR_S:
            self._sleep(at - self.spin_s if remaining >= SPIN_GAPS * self.spin_s else at)
        while time.monotonic() < at:  # the last stretch on the CPU: at most spin_s, or TIMER_FLOOR_S
            pass


class Answer(HTTPResponseParser):
    """One HTTP response parsed by geventhttpclient's C parser; only status and body are kept."""

    def __init__(self) -> None:
        super().__init__()
        self.complete = False
        self.body = bytearray()
        self.rate_limit_header = False

    def _on_message_begin(self) -> None:
        pass

    def _on_status(self, message: str) -> None:
        pass

    def _on_header_field(self, name: str) -> None:
        if name.lower() == "x-envoy-ratelimited":
            self.rate_limit_header = True

    def _on_header_value(self, value: str) -> None:
        pass

    def _on_headers_complete(self) -> bool:
        return False  # the body follows

    def _on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def _on_message_complete(self) -> None:
        self.complete = True


class _More:
    """quick_answer's verdict: the response is not complete yet."""


MORE = _More()
QUICK_LIMIT = 65536  # a head longer than this goes to the full parser


def quick_answer(data: bytes) -> tuple[int, bytes, bool] | _More | None:
    """Status, body and keep-alive of the common response (HTTP/1.1, final status, Content-Length)
    in about a tenth of the time the full parser takes (its Python callbacks run once per header);
    MORE when it has not all arrived; None for anything else (chunked, no length, 1xx, HTTP/1.0),
    which the full parser, geventhttpclient's, then reads."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return MORE if len(data) < QUICK_LIMIT and data[:9] in (b"HTTP/1.1 "[: len(data)], b"HTTP/1.1 ") else None
    if not data.startswith(b"HTTP/1.1 ") or not data[9:12].isdigit():
        return None
    head = data[:end].lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0 or b"\r\ntransfer-encoding:" in head or head.find(b"\r\ncontent-length:", at + 1) >= 0:
        return None
    stop = head.find(b"\r\n", at + 17)
    try:
        length = int(head[at + 17 : stop if stop >= 0 else None])
    except ValueError:
        return None
    status = int(data[9:12])
    body = data[end + 4 :]
    if status < 200 or len(body) > length:
        return None
    if len(body) < length:
        return MORE
    return status, body, b"\r\nconnection: close" not in head


class WallToMonotonic:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, read in a tight bracket (a process preempted between
    two clock reads would shift every timestamp by the preemption) and read again every second
    (the two clocks are slewed together; only a step of the wall clock moves the difference)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.read_at = -1e9

    def _measure(self) -> None:
        best = (1.0, 0.0)
        for _ in range(5):
            before = time.time()
            mono = time.monotonic()
            after = time.time()
            best = min(best, (after - before, (before + after) / 2 - mono))
            if best[0] < 20e-6:
                break
        self.offset = best[1]
        self.read_at = time.monotonic()

    def monotonic(self, wall: float) -> float:
        if time.monotonic() - self.read_at > 1.0:
            self._measure()
        return wall - self.offset


WALL = WallToMonotonic()


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The monotonic time the newest segment of a read reached the kernel (its CLOCK_REALTIME receive
    timestamp); None without one, or when it is not from the last second (a clock step)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            arrived = WALL.monotonic(seconds + nanos / 1e9)
            return arrived if 0.0 <= time.monotonic() - arrived < 1.0 else None
    return None


class Failed(Exception):
    """A request without a correct answer, as Locust's statistics record it."""


class Connection:
    """One keep-alive connection of the open-loop pool; its reader greenlet completes each request."""

    def __init__(self, dispatcher: Dispatcher, origin: tuple[str, str, int]) -> None:
        scheme, host, port = origin
        self.dispatcher = dispatcher
        self.origin = origin
        self.open = True
        self.busy = False
        self.last_used = time.monotonic()
        self.intended = self.sent = 0.0
        self.index = 0
        self.stream: ChatStream | None = None  # the request's stream, when its target streams
        self.read_body = 0  # how much of the answer's body the stream has been fed
        sock = gevent.socket.create_connection((host, port), timeout=float(PLAN["timeout_s"]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.kernel_stamps = False
        if scheme == "https":
            if "tls" not in STATE:
                STATE["tls"] = _mesh_tls()  # one context per process: loading the certificates is slow
            sock = STATE["tls"].wrap_socket(sock, server_hostname=host)
        else:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.kernel_stamps = True
            except OSError:
                pass
        # No timeout per read (a timer started and stopped for every answer costs more than the rest of
        # the read): the dispatcher's watchdog ends connections whose request is overdue.
        sock.settimeout(None)
        self.sock = sock
        self.reader = gevent.spawn(self._read)

    def send(self, payload: bytes, intended: float, index: int) -> None:
        self.busy = True
        self.intended, self.index = intended, index
        self.stream = ChatStream() if TARGETS[index].get("chat_stream") else None
        self.read_body = 0
        self.sent = time.monotonic()
        try:
            written = self.sock.send(payload)  # a request fits an idle socket's buffer: one call
            if written < len(payload):
                self.sock.sendall(payload[written:])
        except OSError as exc:
            self.fail(f"no response: {exc}")

    def _read(self) -> None:  # noqa: C901 - one branch per state of an HTTP/1.1 response being read
        buffered = b""
        answer: Answer | None = None  # the full parser, once the quick one left this response to it
        while self.open:
            try:
                if self.kernel_stamps:
                    data, ancillary, _, _ = self.sock.recvmsg(65536, 64)
                else:
                    data, ancillary = self.sock.recv(65536), []
            except OSError as exc:
                self.fail(f"no response: {exc}")
                return
            if not data:
                self.fail("no response: the server closed the connection")
                return
            if not self.busy:
                self.fail("the server sent data nobody asked for")
                return
            try:
                quick: tuple[int, bytes, bool] | None = None
                if answer is None:
                    buffered += data
                    outcome = quick_answer(buffered)
                    if isinstance(outcome, _More):
                        continue
                    if outcome is None:
                        answer = Answer()
                        answer.feed(buffered)
                    else:
                        quick = outcome
                else:
                    answer.feed(data)
                if self.stream is not None and answer is not None:
                    self._stream_read(answer, ancillary)
                if quick is not None:
                    status, content, keep = quick
                    limited = status == 429 and rate_limit_head(buffered)
                elif answer is not None and answer.complete:
                    status, content, keep = answer.get_code(), bytes(answer.body), answer.should_keep_alive()
                    limited = answer.rate_limit_header
                else:
                    continue
            except HTTPParseError as exc:
                self.fail(f"no response: unreadable answer ({exc})")
                return
            done = (kernel_time(ancillary) if self.kernel_stamps else None) or time.monotonic()
            if self.stream is not None and quick is not None and status == 200:
                self.stream.feed(content, done)  # a stream that came whole, with a length
            self.busy = False
            self.dispatcher.answered(self, status, content, done, limited)
            if not keep:
                self.close()
                return
            buffered, answer = b"", None

    def _stream_read(self, answer: Answer, ancillary: list[tuple[int, int, bytes]]) -> None:
        """Feeds a 200 stream's new body bytes to its reader, timed by this read's arrival."""
        if answer.get_code() != 200 or len(answer.body) == self.read_body or self.stream is None:
            return
        at = (kernel_time(ancillary) if self.kernel_stamps else None) or time.monotonic()
        self.stream.feed(bytes(answer.body[self.read_body :]), at)
        self.read_body = len(answer.body)

    def fail(self, reason: str) -> None:
        """Ends the connection; the request on it, if any, is recorded without a response."""
        if self.busy:
            self.busy = False
            self.dispatcher.failed(self.intended, self.sent, self.index, reason, self.stream)
        self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            self.dispatcher.pools[self.origin].closed(self)
            with contextlib.suppress(OSError):
                self.sock.close()


class Pool:
    """The connections to one origin; idle ones are reused most recently used first."""

    def __init__(self, dispatcher: Dispatcher, origin: tuple[str, str, int]) -> None:
        self.dispatcher = dispatcher
        self.origin = origin
        self.idle: list[Connection] = []
        self.members: set[Connection] = set()
        self.size = 0  # open or opening
        self.opening = 0
        self.opened = 0
        self.peak = 0
        self.queued = 0
        self.freed = gevent.event.Event()

    def open(self) -> Connection:
        self.size += 1
        self.opened += 1
        self.peak = max(self.peak, self.size)
        try:
            connection = Connection(self.dispatcher, self.origin)
        except BaseException:
            self.size -= 1
            raise
        self.members.add(connection)
        return connection

    def warm(self, count: int) -> None:
        for _ in range(count - self.size):
            self.release(self.open())

    def idle_connection(self) -> Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if connection.open and time.monotonic() - connection.last_used < IDLE_MAX_S:
                return connection
            connection.close()
        return None

    def may_grow(self, late_s: float) -> bool:
        """A request finding every connection busy gets a new one, below the pool's limit. When the
        dispatcher is behind its timeline (short of CPU, or catching up), connections open one at a
        time: each costs CPU (a TLS handshake, a reader), and opening hundreds at once would put it
        further behind."""
        return self.size < MAX_CONNECTIONS and (late_s <= GROW_LATE_S or self.opening == 0)

    def wait_idle(self) -> Connection:
        """An idle connection as soon as one is free; the request is counted as having waited."""
        self.queued += 1
        deadline = time.monotonic() + float(PLAN["timeout_s"])
        while True:
            connection = self.idle_connection()
            if connection is not None:
                return connection
            if self.size == 0 or time.monotonic() >= deadline:
                return self.open()
            self.freed.clear()
            self.freed.wait(timeout=max(0.0, deadline - time.monotonic()))

    def release(self, connection: Connection) -> None:
        connection.last_used = time.monotonic()
        self.idle.append(connection)
        self.freed.set()

    def closed(self, connection: Connection) -> None:
        if connection in self.members:
            self.members.discard(connection)
            self.size -= 1
        if connection in self.idle:
            self.idle.remove(connection)


def _origin(url: str) -> tuple[tuple[str, str, int], str]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname or "", port), path or "/"


class Dispatcher:
    """This process's share of the open-loop timeline: each request leaves at its intended time."""

    schedule: Schedule
    recorder: Recorder

    def __init__(self, environment: Any, connections: int) -> None:
        self.environment = environment
        self.clock = Clock()
        self.routes = [_origin(t["url"]) for t in TARGETS]
        self.pools = {origin: Pool(self, origin) for origin, _ in self.routes}
        self.connections = connections
        self.rendered: dict[int, tuple[str, bytes]] = {}
        self.contexts = [{"tenant": t["tenant"], "via": t["via"]} for t in TARGETS]

    def payload(self, index: int) -> bytes:
        """The request's bytes, rendered once per target and token."""
        target = TARGETS[index]
        token = bearer_token(target)
        cached = self.rendered.get(index)
        if cached is not None and cached[0] == token:
            return cached[1]
        body: bytes = target["body"].encode()
        head = (
            f"{target['method']} {self.routes[index][1]} HTTP/1.1\r\nHost: {target['host']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "")
            + "\r\n"
        )
        rendered = head.encode() + body
        self.rendered[index] = (token, rendered)
        return rendered

    def start(self, schedule: Schedule, recorder: Recorder) -> None:
        self.schedule, self.recorder = schedule, recorder

    def warm(self) -> None:
        """Opens the first connections before the timeline starts (TLS handshakes take a while)."""
        for pool in self.pools.values():
            # Without a connection now, the first requests find out and are recorded as errors.
            with contextlib.suppress(OSError):
                pool.warm(self.connections)

    def run(self) -> None:
        gevent.spawn(self._watchdog)
        t0 = self.recorder.t0_mono
        while True:
            slot = self.schedule.take()
            if slot is None:
                return
            intended = t0 + slot
            self.clock.until(intended)
            index = STATE["mix"].next()
            payload = self.payload(index)
            STATE["in_flight"] = STATE.get("in_flight", 0) + 1
            pool = self.pools[self.routes[index][0]]
            connection = pool.idle_connection()
            if connection is None:
                # Answers may have arrived that no reader has taken yet: let them free their connections.
                gevent.sleep(0)
                connection = pool.idle_connection()
            if connection is None and pool.may_grow(time.monotonic() - intended):
                # Connecting (a TLS handshake) must not hold back the requests due after this one.
                gevent.spawn(self._send_on_new, pool, payload, intended, index)
                continue
            try:
                connection = connection or pool.wait_idle()
            except OSError as exc:
                self.failed(intended, time.monotonic(), index, f"no response: cannot connect ({exc})")
                continue
            connection.send(payload, intended, index)

    def _send_on_new(self, pool: Pool, payload: bytes, intended: float, index: int) -> None:
        pool.opening += 1
        try:
            connection = pool.open()
        except OSError as exc:
            self.failed(intended, time.monotonic(), index, f"no response: cannot connect ({exc})")
            return
        finally:
            pool.opening -= 1
        connection.send(payload, intended, index)

    def _watchdog(self) -> None:
        """Ends the connections whose request has waited longer than the plan's timeout (the process
        ends with the run, and this with it)."""
        timeout = float(PLAN["timeout_s"])
        while True:
            gevent.sleep(min(0.5, timeout / 4))
            now = time.monotonic()
            for pool in self.pools.values():
                for connection in [c for c in pool.members if c.busy and now - c.sent >= timeout]:
                    connection.fail("no response: timed out")

    def answered(
        self, connection: Connection, status: int, content: bytes, done: float, rate_limit_header: bool = False
    ) -> None:
        target = TARGETS[connection.index]
        body = None
        if status == 200 and target["expect"] is not None:
            try:
                body = json.loads(content)
            except ValueError:
                body = None
        outcome, reason = classify(target, status, content, body, rate_limit_header)
        stream = connection.stream
        if outcome == OK and stream is not None:
            outcome, reason = stream.verdict()
        self._record(
            connection.intended, connection.sent, done, status, outcome, connection.index, reason, content, stream
        )
        self.pools[connection.origin].release(connection)

    def failed(self, intended: float, sent: float, index: int, reason: str, stream: ChatStream | None = None) -> None:
        self._record(intended, sent, time.monotonic(), 0, CONNECTION, index, reason, b"", stream)

    def _record(
        self,
        intended: float,
        sent: float,
        done: float,
        status: int,
        outcome: int,
        index: int,
        reason: str,
        content: bytes,
        stream: ChatStream | None = None,
    ) -> None:
        STATE["in_flight"] -= 1
        self.recorder.add(intended, sent, done, status, outcome, index, stream)
        target = TARGETS[index]
        self.environment.events.request.fire(
            request_type=target["method"],
            name=target["label"],
            response_time=(done - intended) * 1000,
            response_length=len(content),
            exception=Failed(reason) if outcome != OK else None,
            context=self.contexts[index],
        )

    def figures(self) -> dict[str, float]:
        pools = self.pools.values()
        return {
            "connections_opened": sum(p.opened for p in pools),
            "connections_peak": sum(p.peak for p in pools),
            "queued": sum(p.queued for p in pools),
        }


class TimelineUser(User):
    """Open loop: the one user of a Locust process; it dispatches the process's share of the timeline."""

    abstract = not OPEN
    wait_time = constant(0.5)

    @task
    def serve(self) -> None:
        dispatcher: Dispatcher | None = STATE.get("dispatcher")
        if dispatcher is None or dispatcher.schedule.over:
            return  # the timeline is over; the shape stops the run
        dispatcher.run()


class ModelUser(FastHttpUser):
    """Closed loop: a simulated client that paces itself and waits for each answer before the next."""

    abstract = OPEN
    host = PLAN["token"]["base_url"]
    ssl_context_factory = staticmethod(_mesh_tls) if PLAN.get("tls") else None
    network_timeout = float(PLAN["timeout_s"])
    connection_timeout = float(PLAN["timeout_s"])

    def on_start(self) -> None:
        self.last_start = time.monotonic()

    def wait_time(self) -> float:
        stage = stage_at(time.monotonic() - STATE["recorder"].t0_mono)
        if stage is None or stage["rate"] <= 0:
            return 1.0
        interval = float(stage["users"]) / float(stage["rate"])
        return max(0.0, self.last_start + interval - time.monotonic())

    @task
    def request(self) -> None:
        recorder: Recorder = STATE["recorder"]
        if stage_at(time.monotonic() - recorder.t0_mono) is None:
            gevent.sleep(0.5)  # the stages are over; the shape stops the run
            return
        self.last_start = time.monotonic()
        index = STATE["mix"].next()
        target = TARGETS[index]
        headers = {"Host": target["host"], "Content-Type": "application/json"}
        token = bearer_token(target)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        sent = time.monotonic()
        STATE["in_flight"] = STATE.get("in_flight", 0) + 1
        try:
            self._send(target, index, headers, sent, recorder)
        except Exception:
            # Not an HTTP answer (e.g. a TLS setup failure): recorded as a request without a response,
            # so it counts as an error instead of vanishing from the run; Locust logs the exception.
            recorder.add(sent, sent, time.monotonic(), 0, CONNECTION, index)
            raise
        finally:
            STATE["in_flight"] -= 1

    def _send(
        self, target: dict[str, Any], index: int, headers: dict[str, str], sent: float, recorder: Recorder
    ) -> None:
        with self.client.request(
            target["method"],
            target["url"],
            name=target["label"],
            data=target["body"],
            headers=headers,
            catch_response=True,
            context={"tenant": target["tenant"], "via": target["via"]},
        ) as response:
            done = time.monotonic()
            status = int(response.status_code or 0)
            content = response.content or b""
            try:
                body = json.loads(content) if status == 200 else None
            except ValueError:
                body = None
            outcome, reason = classify(target, status, content, body)
            if outcome == OK:
                response.success()
            else:
                response.failure(reason)
        recorder.add(sent, sent, done, status, outcome, index)


class ProfileShape(LoadTestShape):
    """Closed loop: the plan's stages' users; open loop: one dispatching user per Locust process. The
    run stops END_GRACE_S after the last stage, so workers that started their timeline a little
    after the master still finish theirs."""

    def tick(self) -> tuple[int, float] | None:
        offset = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if offset >= TOTAL_S + END_GRACE_S:
            return None
        stage = stage_at(min(offset, TOTAL_S - 1e-6))
        if stage is None:
            return None
        users = PROCESSES if OPEN else int(stage["users"])
        return users, float(max(users, 1))


def _identity(environment: Any) -> tuple[int, int]:
    runner = environment.runner
    workers = int(PLAN.get("workers") or 0)
    if isinstance(runner, WorkerRunner):
        return max(0, int(runner.worker_index)), max(1, workers)
    return 0, 1


def _on_test_start(environment: Any, **kwargs: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        _write_json("started.json", {"t0_mono": time.monotonic(), "t0_wall": time.time()})
        return
    index, count = _identity(environment)
    STATE["tokens"] = Tokens(environment)
    STATE["tokens"].start()
    STATE["mix"] = Mix(index)
    dispatcher = None
    if OPEN:
        dispatcher = Dispatcher(environment, math.ceil(int(STAGES[0]["users"]) / count))
        dispatcher.warm()  # before the timeline's origin: connecting is not part of the load
    recorder = Recorder()
    STATE["recorder"] = recorder
    # Everything alive now (Locust, gevent, the plan) lives to the end: the collector need not walk
    # it again and again while the timeline runs.
    gc.freeze()
    if OPEN:
        _short_slices()
    if PLAN.get("realtime"):
        _realtime(True)
    if dispatcher is not None:
        schedule = Schedule(1.0 / count, index, int(PLAN["seed"]))
        STATE["schedule"] = schedule
        dispatcher.start(schedule, recorder)
        STATE["dispatcher"] = dispatcher
    if not isinstance(environment.runner, WorkerRunner):
        _write_json("started.json", {"t0_mono": recorder.t0_mono, "t0_wall": recorder.t0_wall})


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
SHORT_SLICE_NS = 100_000


def _short_slices() -> None:
    """Asks the kernel's fair scheduler (EEVDF, Linux 6.12 and later) for short time slices for this
    process's main thread: the same share of CPU in short turns, so a wake-up for a request due is
    not held behind a CPU-bound neighbour's whole slice. Older kernels ignore it; elsewhere it is
    skipped."""
    number = SCHED_SETATTR.get(os.uname().machine)
    if number is None:
        return
    attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr), sched_policy=os.SCHED_OTHER, sched_runtime=SHORT_SLICE_NS)
    attr.sched_nice = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).syscall(number, 0, ctypes.byref(attr), 0)


def _realtime(on: bool) -> None:
    """Benchmarks on a shared machine: the lowest real-time priority for this process's main thread
    (the gevent loop) while the timeline runs, so its wake-ups do not queue behind other work.
    Without the privilege it says so in the log and runs as it is."""
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError) as exc:
        print(f"inferbox: real-time priority not available ({exc}); running without", file=sys.stderr)


def _on_test_stop(environment: Any, **kwargs: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message("inferbox_finish")  # to every worker
        _await_final_reports()
        return
    _finish(environment)


def _finish(environment: Any) -> None:
    """This process's records are complete: count the timeline; a worker sends the rest to the master."""
    recorder: Recorder | None = STATE.get("recorder")
    if recorder is None or STATE.get("finished"):
        return
    deadline = time.monotonic() + float(PLAN["timeout_s"])
    while STATE.get("in_flight", 0) and time.monotonic() < deadline:
        gevent.sleep(0.02)
    STATE["finished"] = True
    if PLAN.get("realtime"):
        _realtime(False)
    recorder.scheduled = STATE["schedule"].drain() if OPEN else None
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message("inferbox_final", _worker_part(environment, recorder))


def _on_finish_message(environment: Any, msg: Any, **kwargs: Any) -> None:
    gevent.spawn(_finish, environment)


def _generator() -> dict[str, float]:
    """This process's own figures: CPU seconds since the test started and, in open loop, its pool's."""
    recorder: Recorder | None = STATE.get("recorder")
    dispatcher: Dispatcher | None = STATE.get("dispatcher")
    cpu = time.process_time() - recorder.cpu0 if recorder is not None else 0.0
    return {"cpu_s": round(cpu, 3), **(dispatcher.figures() if dispatcher is not None else {})}


def _worker_part(environment: Any, recorder: Recorder) -> dict[str, Any]:
    return {
        "worker": _identity(environment)[0],
        "t0_mono": recorder.t0_mono,
        "t0_wall": recorder.t0_wall,
        "scheduled": recorder.scheduled,
        "generator": _generator(),
        "rows": recorder.unshipped(),
    }


def _await_final_reports() -> None:
    """On the master: waits (bounded) until every worker has sent its last rows."""
    expected = int(PLAN.get("workers") or 0)
    deadline = time.monotonic() + FINAL_REPORT_TIMEOUT_S
    while len(STATE.get("final", set())) < expected and time.monotonic() < deadline:
        gevent.sleep(0.05)


def _on_final_message(environment: Any, msg: Any, **kwargs: Any) -> None:
    STATE.setdefault("final", set()).add(msg.node_id)
    _on_worker_report(msg.node_id, {"inferbox": msg.data})


def _on_report_to_master(client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
    recorder: Recorder | None = STATE.get("recorder")
    if recorder is None:
        return
    data["inferbox"] = _worker_part(STATE["environment"], recorder)


def _on_worker_report(client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
    part = data.get("inferbox")
    if not part:
        return
    workers: dict[str, dict[str, Any]] = STATE.setdefault("workers", {})
    entry = workers.setdefault(
        client_id,
        {"worker": part["worker"], "t0_mono": part["t0_mono"], "t0_wall": part["t0_wall"], "scheduled": None},
    )
    if part["scheduled"] is not None:
        entry["scheduled"] = part["scheduled"]
    if part.get("generator") is not None:
        entry["generator"] = part["generator"]
    columns = entry.setdefault("columns", {name: array.array(code) for name, code in COLUMNS})
    for name, _ in COLUMNS:
        columns[name].extend(part["rows"][name])


def _on_init(environment: Any, **kwargs: Any) -> None:
    STATE["environment"] = environment
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("inferbox_final", _on_final_message)
    elif isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("inferbox_finish", _on_finish_message)


def _on_quit(exit_code: int, **kwargs: Any) -> None:
    environment = STATE.get("environment")
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    parts: list[dict[str, Any]] = []
    if isinstance(environment.runner, MasterRunner):
        final = STATE.get("final", set())
        workers = STATE.get("workers", {})
        parts = sorted(({**part, "final": cid in final} for cid, part in workers.items()), key=lambda p: p["worker"])
    elif "recorder" in STATE:
        recorder: Recorder = STATE["recorder"]
        parts = [
            {
                "worker": 0,
                "t0_mono": recorder.t0_mono,
                "t0_wall": recorder.t0_wall,
                "scheduled": recorder.scheduled,
                "generator": _generator(),
                "columns": recorder.columns,
            }
        ]
    _write_samples(parts)


# Registered here rather than with decorators: Locust's event hooks carry no types.
for _hook, _listener in (
    (events.test_start, _on_test_start),
    (events.test_stop, _on_test_stop),
    (events.report_to_master, _on_report_to_master),
    (events.worker_report, _on_worker_report),
    (events.init, _on_init),
    (events.quit, _on_quit),
):
    _hook.add_listener(_listener)  # type: ignore[no-untyped-call]


def _write_json(name: str, body: dict[str, Any]) -> None:
    folder = PLAN["output_dir"]
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle)
    os.replace(tmp, os.path.join(folder, name))


def _write_samples(parts: list[dict[str, Any]]) -> None:
    """samples.bin: per worker, each column's raw values in COLUMNS order; samples.json says where."""
    folder = PLAN["output_dir"]
    os.makedirs(folder, exist_ok=True)
    meta: dict[str, Any] = {"columns": [list(c) for c in COLUMNS], "byteorder": sys.byteorder, "workers": []}
    with open(os.path.join(folder, "samples.bin"), "wb") as out:
        for part in parts:
            columns = part["columns"]
            count = len(columns["done"])
            meta["workers"].append(
                {
                    "worker": part["worker"],
                    "t0_mono": part["t0_mono"],
                    "t0_wall": part["t0_wall"],
                    "scheduled": part["scheduled"],
                    "final": part.get("final", True),  # False: a worker's last rows never arrived
                    "generator": part.get("generator"),  # CPU seconds; open loop: connections, queued
                    "count": count,
                    "offset": out.tell(),
                }
            )
            for name, _ in COLUMNS:
                columns[name][:count].tofile(out)
    _write_json("samples.json", meta)
