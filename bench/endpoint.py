"""An HTTP endpoint whose answer times are known: the ground truth the load generator is measured against.

``python -m bench.endpoint --port P --delay-ms 20 [--stall-every 100 --stall-ms 1000] --report FILE``

Every request is answered ``delay`` after its last byte reached this machine's kernel (the socket's
receive timestamp, so a late wake-up of this process does not move the schedule), with a timerfd
waking the loop at the exact release time. With ``--stall-every N`` the endpoint also freezes: the
arrival of every N-th request starts a freeze of ``stall`` during which no response leaves; the
responses due in it all leave when it ends. On SIGTERM it writes a report: the requests it saw, the
freezes (monotonic times) and how late its own releases were, which bounds its share of any error.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import signal
import socket
import struct
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import h11

from bench.timerfd import TimerFd

SO_TIMESTAMPNS = 35  # Linux; the receive timestamp arrives as SCM_TIMESTAMPNS, same number
# The loop wakes this long before a release and spins the rest: a wake-up is not instant, and what
# is late here is in every client's error.
SPIN_S = 0.0003
BODY = b"{}"


class WallToMonotonic:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, read in a tight bracket and again every second (as in
    inferbox/load/locustfile.py: a preemption between two clock reads must not shift timestamps)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.read_at = -1e9

    def monotonic(self, wall: float) -> float:
        if time.monotonic() - self.read_at > 1.0:
            best = (1.0, 0.0)
            for _ in range(5):
                before = time.time()
                mono = time.monotonic()
                after = time.time()
                best = min(best, (after - before, (before + after) / 2 - mono))
                if best[0] < 20e-6:
                    break
            self.offset, self.read_at = best[1], time.monotonic()
        return wall - self.offset


WALL = WallToMonotonic()


def kernel_arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The monotonic time the newest segment read reached the kernel (its CLOCK_REALTIME receive
    timestamp); now, without one or when it is not from the last second."""
    now = time.monotonic()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            arrived = WALL.monotonic(seconds + nanos / 1e9)
            return arrived if 0.0 <= now - arrived < 1.0 else now
    return now


@dataclass
class Connection:
    sock: socket.socket
    http: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    open: bool = True
    answer: bytes = b""


@dataclass
class Schedule:
    delay_s: float
    stall_every: int = 0
    stall_s: float = 0.0
    arrivals: int = 0
    freezes: list[tuple[float, float]] = field(default_factory=list)

    def arrive(self, at: float) -> float:
        """Counts an arrival (possibly starting a freeze); returns its release time before freezes."""
        self.arrivals += 1
        if self.stall_every and self.arrivals % self.stall_every == 0:
            start = at
            if self.freezes and self.freezes[-1][1] > at:  # overlapping freezes merge
                start = self.freezes.pop()[0]
            self.freezes.append((start, at + self.stall_s))
        return at + self.delay_s

    def frozen_until(self, now: float) -> float | None:
        if self.freezes and self.freezes[-1][0] <= now < self.freezes[-1][1]:
            return self.freezes[-1][1]
        return None


class Endpoint:
    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.loop = asyncio.get_running_loop()
        self.timer = TimerFd()
        self.pending: list[tuple[float, int, Connection]] = []
        self.sequence = 0
        self.armed_at = 0.0
        self.lateness = array("d")
        self.loop.add_reader(self.timer.fileno(), self._release_due)

    def listen(self, port: int) -> socket.socket:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1024)
        server.setblocking(False)
        self.loop.add_reader(server.fileno(), self._accept, server)
        return server

    def _accept(self, server: socket.socket) -> None:
        try:
            sock, _ = server.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        conn = Connection(sock)
        self.loop.add_reader(sock.fileno(), self._readable, conn)

    def _readable(self, conn: Connection) -> None:
        try:
            data, ancillary, _, _ = conn.sock.recvmsg(65536, 64)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self._close(conn)
            return
        arrival = kernel_arrival(ancillary)
        conn.http.receive_data(data)
        self._next_requests(conn, arrival)

    def _next_requests(self, conn: Connection, arrival: float) -> None:
        while conn.open:
            try:
                event = conn.http.next_event()
            except h11.RemoteProtocolError:
                self._close(conn)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.EndOfMessage):
                conn.answer = self._render(conn)  # ready before its time: the release only writes it
                self._queue(self.schedule.arrive(arrival), conn)
                return
            if isinstance(event, h11.ConnectionClosed):
                self._close(conn)
                return

    def _queue(self, release: float, conn: Connection) -> None:
        self.sequence += 1
        heapq.heappush(self.pending, (release, self.sequence, conn))
        self._arm()

    def _arm(self) -> None:
        if self.pending and self.pending[0][0] != self.armed_at:
            self.armed_at = self.pending[0][0]
            self.timer.arm(self.armed_at - SPIN_S)

    def _release_due(self) -> None:
        self.timer.clear()
        self.armed_at = 0.0
        if self.pending:
            release = self.pending[0][0]
            while time.monotonic() < release:  # woken SPIN_S early: the rest on the CPU
                pass
        now = time.monotonic()
        frozen = self.schedule.frozen_until(now)
        while self.pending and self.pending[0][0] <= now:
            release, _, conn = heapq.heappop(self.pending)
            if frozen is not None:
                heapq.heappush(self.pending, (frozen, self.sequence, conn))  # held to the freeze's end
                self.sequence += 1
                continue
            if conn.open:
                self._answer(conn)
                self.lateness.append(time.monotonic() - release)
        self._arm()

    @staticmethod
    def _render(conn: Connection) -> bytes:
        http = conn.http
        headers = [("content-type", "application/json"), ("content-length", str(len(BODY)))]
        out = http.send(h11.Response(status_code=200, headers=headers)) or b""
        return out + (http.send(h11.Data(data=BODY)) or b"") + (http.send(h11.EndOfMessage()) or b"")

    def _answer(self, conn: Connection) -> None:
        try:
            conn.sock.sendall(conn.answer)  # a few hundred bytes into an idle socket buffer: never blocks
        except OSError:
            self._close(conn)
            return
        if conn.http.our_state is h11.MUST_CLOSE:
            self._close(conn)
            return
        conn.http.start_next_cycle()
        self._next_requests(conn, time.monotonic())  # a request already buffered behind this one

    def _close(self, conn: Connection) -> None:
        if conn.open:
            conn.open = False
            self.loop.remove_reader(conn.sock.fileno())
            conn.sock.close()

    def report(self) -> dict[str, object]:
        late = sorted(self.lateness)

        def at(q: float) -> float:
            return round(late[max(0, int(len(late) * q / 100 + 0.999999) - 1)] * 1000, 4) if late else 0.0

        return {
            "delay_ms": self.schedule.delay_s * 1000,
            "stall_every": self.schedule.stall_every,
            "stall_ms": self.schedule.stall_s * 1000,
            "requests": self.schedule.arrivals,
            "answered": len(late),
            "freezes": [[round(a, 6), round(b, 6)] for a, b in self.schedule.freezes],
            "release_lateness_ms": {"p50": at(50), "p99": at(99), "max": at(100)},
        }


async def serve(port: int, schedule: Schedule, report: Path) -> None:
    endpoint = Endpoint(schedule)
    server = endpoint.listen(port)
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        endpoint.loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    server.close()
    report.write_text(json.dumps(endpoint.report(), indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--stall-every", type=int, default=0)
    parser.add_argument("--stall-ms", type=float, default=0.0)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--realtime", action="store_true", help="run at the lowest real-time priority if allowed")
    args = parser.parse_args()
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError as exc:
            print(f"real-time priority not available ({exc}); running without", flush=True)
    schedule = Schedule(args.delay_ms / 1000, args.stall_every, args.stall_ms / 1000)
    asyncio.run(serve(args.port, schedule, args.report))


if __name__ == "__main__":
    main()
