"""Knative's activator on the embedded target: the data path of a revision that has no ready replica.

While a revision has no ready replica (and, with a target burst capacity, while its spare capacity
is too small), the gateway's endpoints for that revision point here. A request is then:

- held, not failed: the activator tells the autoscaler at once (a "poke", so scale-from-zero does not
  wait for the next tick) and waits until a replica of the revision is ready;
- bounded: at most ``capacity`` requests are held per revision; one more gets 503 at once, and a
  request held longer than ``timeout_s`` gets 504, both with a body starting "activator: " that
  says which limit was hit (the gateway's own route timeout is longer, so the client sees why);
- forwarded to the least busy ready replica, over mutual TLS with the activator's own mesh identity
  (``spiffe://<td>/ns/knative-serving/sa/activator``, which the tenants' AuthorizationPolicies
  admit), verifying the replica's identity, and carrying the client's token.

It is an asyncio HTTP/1.1 proxy (``h11``) on its own thread, with one listening socket per revision
(Knative's activator tells revisions apart by headers the ingress sets; a port per revision keeps
the gateway's configuration free of them). Sockets are created inside the activator pod's network
namespace, so its traffic leaves from that pod's address, as the NetworkPolicies expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import h11

from inferbox.embedded.netns import socket_in_netns

HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",  # set again from the buffered body
}
MAX_BODY = 16 * 1024 * 1024  # bytes of a request or response body the activator buffers
READ_CHUNK = 65536
CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Upstream:
    """A ready replica of a revision, as the activator reaches it."""

    name: str
    address: tuple[str, int]
    identity: str | None  # the SPIFFE ID its sidecar must present; None: plaintext (no sidecar)


@dataclass
class Held:
    """A request the activator held: when it arrived and when it was forwarded (monotonic)."""

    revision: str
    arrived: float
    forwarded: float | None = None
    status: int | None = None


@dataclass
class _Gate:
    held: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)


class ActivatorError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Activator:
    def __init__(
        self,
        upstreams: Callable[[str], list[Upstream]],
        poke: Callable[[str, int], None],
        tls: ssl.SSLContext | None,
        netns_path: str | None,
        capacity: Callable[[str], int],
        timeout_s: float,
        drop_held: bool = False,
    ) -> None:
        self._upstreams = upstreams
        self._poke = poke
        self._tls = tls
        self._netns = netns_path
        self._capacity = capacity
        self.timeout_s = timeout_s
        # A deliberately broken activator (the serving.activatorDropsHeldRequests knob): it answers
        # 503 instead of holding a request while the revision has no replica.
        self._drop_held = drop_held
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="activator", daemon=True)
        self._gates: dict[str, _Gate] = {}
        self._pools: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]]] = {}
        self._in_flight: dict[str, int] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self.history: list[Held] = []  # held requests, most recent last (bounded)

    def drop_held_requests(self, drop: bool) -> None:
        """Sets the deliberately broken behaviour of the ``serving.activatorDropsHeldRequests`` knob."""
        self._drop_held = drop

    # -- lifecycle (called from the control plane's thread) -----------------------------------
    def start(self, listeners: dict[str, socket.socket]) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(listeners), self._loop)
        future.result(timeout=10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def replicas_changed(self, revision: str) -> None:
        """Wakes the requests held for ``revision`` (a replica became ready, or went away)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._wake, revision)

    def held(self, revision: str) -> int:
        gate = self._gates.get(revision)
        return gate.held if gate else 0

    # -- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def _listen(self, listeners: dict[str, socket.socket]) -> None:
        for revision, sock in listeners.items():
            self._gates[revision] = _Gate()
            server = await asyncio.start_server(self._server_for(revision), sock=sock, limit=READ_CHUNK)
            self._servers.append(server)

    def _server_for(
        self, revision: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(revision, reader, writer)

        return serve

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for pool in self._pools.values():
            for _, writer, _ in pool:
                writer.close()
        self._pools.clear()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _wake(self, revision: str) -> None:
        gate = self._gates.get(revision)
        if gate is not None:
            gate.event.set()
            gate.event = asyncio.Event()

    # -- downstream: the gateway ---------------------------------------------------------------
    async def _serve(self, revision: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=READ_CHUNK)
        try:
            while True:
                request = await _read_message(conn, reader, h11.Request)
                if request is None:
                    return
                head, body = request
                assert isinstance(head, h11.Request)
                status, headers, payload = await self._handle(revision, head, body)
                await _write_message(conn, writer, h11.Response(status_code=status, headers=headers), payload)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, asyncio.IncompleteReadError, _TooLarge):
            return
        finally:
            writer.close()

    async def _handle(
        self, revision: str, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        record = Held(revision, time.monotonic())
        held = False
        try:
            upstreams = self._upstreams(revision)
            if not upstreams:
                held = True
                upstreams = await self._hold(revision, record)
            record.forwarded = time.monotonic()
            status, headers, payload = await self._forward(revision, upstreams, request, body)
        except ActivatorError as exc:
            status, headers, payload = (
                exc.status,
                [(b"content-type", b"text/plain")],
                f"activator: {exc.reason}\n".encode(),
            )
        record.status = status
        if held or record.forwarded is None:  # what it held, and what it could not forward
            self.history = [*self.history[-499:], record]
        return status, headers, payload

    async def _hold(self, revision: str, record: Held) -> list[Upstream]:
        gate = self._gates[revision]
        if gate.held >= self._capacity(revision):
            raise ActivatorError(503, f"{gate.held} requests already wait for a replica of {revision} (capacity)")
        gate.held += 1
        try:
            self._poke(revision, gate.held)
            if self._drop_held:
                raise ActivatorError(503, f"no ready replica of {revision}; request dropped")
            deadline = record.arrived + self.timeout_s
            while True:
                upstreams = self._upstreams(revision)
                if upstreams:
                    return upstreams
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ActivatorError(504, f"no replica of {revision} became ready within {self.timeout_s:.0f}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gate.event.wait(), remaining)
        finally:
            gate.held -= 1

    # -- upstream: the replicas ----------------------------------------------------------------
    async def _forward(
        self, revision: str, upstreams: list[Upstream], request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
        headers.append((b"content-length", str(len(body)).encode()))
        failures = []
        # Least busy first; every ready replica is tried once if connecting to one fails.
        for upstream in sorted(upstreams, key=lambda u: self._in_flight.get(u.name, 0)):
            self._in_flight[upstream.name] = self._in_flight.get(upstream.name, 0) + 1
            try:
                return await self._exchange(upstream, request.method, request.target, headers, body)
            except (OSError, ssl.SSLError, h11.ProtocolError, asyncio.IncompleteReadError, _Refused) as exc:
                failures.append(f"{upstream.name}: {exc}")
            finally:
                self._in_flight[upstream.name] -= 1
        raise ActivatorError(503, f"no replica of {revision} answered ({'; '.join(failures)})")

    async def _exchange(
        self, upstream: Upstream, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        pooled = self._pools.setdefault(upstream.name, [])
        # A kept-alive connection may have been closed by the replica meanwhile: retry once on a new one.
        for attempt in (0, 1):
            reused = bool(pooled) and attempt == 0
            reader, writer, conn = pooled.pop() if reused else await self._connect(upstream)
            try:
                await _write_message(conn, writer, h11.Request(method=method, target=target, headers=headers), body)
                message = await _read_message(conn, reader, h11.Response)
                if message is None:
                    raise ConnectionResetError("the replica closed the connection")
            except (OSError, h11.ProtocolError, asyncio.IncompleteReadError):
                writer.close()
                if reused:
                    continue
                raise
            head, payload = message
            assert isinstance(head, h11.Response)
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
                pooled.append((reader, writer, conn))
            else:
                writer.close()
            out = [(k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP]
            return head.status_code, out, payload
        raise ConnectionResetError("unreachable")

    async def _connect(self, upstream: Upstream) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]:
        host, port = upstream.address
        tls = self._tls if upstream.identity else None
        if self._netns:
            sock = socket_in_netns(self._netns)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(self._loop.sock_connect(sock, (host, port)), CONNECT_TIMEOUT_S)
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            opened = asyncio.open_connection(sock=sock, ssl=tls, server_hostname="" if tls else None, limit=READ_CHUNK)
        else:
            opened = asyncio.open_connection(host, port, ssl=tls, server_hostname="" if tls else None, limit=READ_CHUNK)
        reader, writer = await asyncio.wait_for(opened, CONNECT_TIMEOUT_S)
        if tls is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            peer = ssl_object.getpeercert() if ssl_object is not None else None
            uris = [value for kind, value in (peer or {}).get("subjectAltName", ()) if kind == "URI"]
            if upstream.identity not in uris:
                writer.close()
                raise _Refused(f"presented {uris or 'no identity'}, not {upstream.identity}")
        return reader, writer, h11.Connection(h11.CLIENT, max_incomplete_event_size=READ_CHUNK)


class _Refused(Exception):
    pass


class _TooLarge(Exception):
    pass


async def _read_message(
    conn: h11.Connection, reader: asyncio.StreamReader, head_type: type
) -> tuple[h11.Request | h11.Response, bytes] | None:
    """One whole request or response (head and body); None when the peer closed before one began."""
    head: h11.Request | h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(READ_CHUNK)
            if not data and head is None and conn.their_state in (h11.IDLE, h11.DONE):
                return None
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None if head is None else (head, bytes(body))
        if isinstance(event, head_type):
            head = event  # type: ignore[assignment]
        elif isinstance(event, h11.InformationalResponse):
            continue
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)


async def _write_message(
    conn: h11.Connection, writer: asyncio.StreamWriter, head: h11.Request | h11.Response, body: bytes
) -> None:
    writer.write(conn.send(head) or b"")
    if body:
        writer.write(conn.send(h11.Data(data=body)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


def activator_tls(cert: str, key: str, trust_bundle: str) -> ssl.SSLContext:
    """Client TLS with the activator's workload certificate, trusting the mesh's CA bundle only.
    Identities are SPIFFE URIs, not host names: the replica's is checked after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(trust_bundle)
    context.load_cert_chain(cert, key)
    return context


def listening_socket(netns_path: str | None, host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, inside ``netns_path`` when given."""
    sock = socket_in_netns(netns_path) if netns_path else socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.setblocking(False)
    return sock
