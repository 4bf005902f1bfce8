"""Sockets opened inside a Linux network namespace.

A socket belongs to the network namespace it was created in. A short-lived thread enters the
namespace (``setns`` affects only the calling thread), creates the socket and leaves; the caller
then connects from any thread. Traffic therefore stays inside the namespace: the host's own
namespace never sends to a namespace address, so nothing can leave through the host's default
route. httpx clients use :class:`NetnsBackend` to run inside a namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from typing import Any

import httpcore
from httpcore._backends.sync import SyncStream

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


def enter_netns(netns_path: str) -> None:
    """Moves the calling thread (the whole process, when it has one thread) into a namespace."""
    target = os.open(netns_path, os.O_RDONLY)
    try:
        _setns(target)
    finally:
        os.close(target)


def socket_in_netns(netns_path: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new socket created inside the namespace at ``netns_path`` (e.g. /run/netns/NAME)."""
    result: dict[str, Any] = {}

    def worker() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            target = os.open(netns_path, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    result["sock"] = socket.socket(family, kind)
                finally:
                    _setns(own)
            finally:
                os.close(target)
                os.close(own)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=worker, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    sock: socket.socket = result["sock"]
    return sock


def connect_in_netns(netns_path: str, host: str, port: int, timeout: float | None = None) -> socket.socket:
    sock = socket_in_netns(netns_path)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class NetnsBackend(httpcore.NetworkBackend):
    """An httpcore network backend whose TCP connections originate inside one namespace."""

    def __init__(self, netns_path: str) -> None:
        self.netns_path = netns_path
        self._sync = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,  # noqa: ARG002 - httpcore's backend interface
        socket_options: Any = None,  # noqa: ARG002 - httpcore's backend interface
    ) -> httpcore.NetworkStream:
        sock = connect_in_netns(self.netns_path, host, port, timeout)
        return SyncStream(sock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return self._sync.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self._sync.sleep(seconds)
