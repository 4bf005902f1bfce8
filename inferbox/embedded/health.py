"""Health probes for pods, sent from inside the pod's network place, and named waits."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from inferbox.embedded.netns import connect_in_netns
from inferbox.embedded.network import Pod
from inferbox.errors import PlatformError


class _PodConnection(http.client.HTTPConnection):
    def __init__(self, pod: Pod, port: int, timeout: float, host: str | None = None) -> None:
        super().__init__(host or pod.ip, port, timeout=timeout)
        self._pod = pod

    def connect(self) -> None:
        if self._pod.netns_path:
            self.sock = connect_in_netns(self._pod.netns_path, self.host, self.port, self.timeout)
        else:
            self.sock = socket.create_connection((self.host, self.port), self.timeout)


def pod_http_status(pod: Pod, port: int, path: str, timeout: float = 1.0, host: str | None = None) -> int:
    """Status of GET ``path`` on a pod's port, connecting from the pod's own network place
    (to ``host`` inside it, e.g. 127.0.0.1 for a server bound to the pod's loopback)."""
    conn = _PodConnection(pod, port, timeout, host)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


class _StillWaiting(Exception):
    pass


def wait_until(
    what: str,
    ready: Callable[[], bool],
    timeout_s: float,
    still_possible: Callable[[], str | None] = lambda: None,
    fix: str = "",
    poll_s: float = 0.03,
) -> float:
    """Polls ``ready`` (with tenacity) until it is true; returns the seconds it took.

    ``still_possible`` returns a reason when waiting longer is pointless (the process died), so a
    failure is reported at once instead of at the deadline.
    """
    start = time.monotonic()

    def attempt() -> None:
        try:
            if ready():
                return
        except (OSError, http.client.HTTPException, httpx.HTTPError):
            pass
        reason = still_possible()
        if reason:
            raise PlatformError(f"{what} will not become ready: {reason}", fix)
        raise _StillWaiting

    try:
        Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(poll_s),
            retry=retry_if_exception_type(_StillWaiting),
            reraise=True,
        )(attempt)
    except _StillWaiting:
        raise PlatformError(f"{what} did not become ready within {timeout_s:.0f}s", fix) from None
    return time.monotonic() - start
