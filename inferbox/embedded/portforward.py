"""A port-forward, like ``kubectl port-forward``: a listening socket on the host's 127.0.0.1 whose
connections are relayed to a pod's address, with the upstream socket opened inside the network
namespace the pod is reachable from (so the host's own namespace never sends to a pod address).
On the loopback network the upstream is simply 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from inferbox.embedded.netns import connect_in_netns

BUFFER = 65536


class PortForward:
    def __init__(self, name: str, target: tuple[str, int], netns_path: str | None, listen_port: int = 0) -> None:
        self.name = name
        self.target = target
        self.netns_path = netns_path
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"port-forward-{name}", daemon=True)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PortForward:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.close()
        self._thread.join(timeout=2)

    def _connect(self) -> socket.socket:
        if self.netns_path:
            return connect_in_netns(self.netns_path, self.target[0], self.target[1], timeout=5.0)
        return socket.create_connection(self.target, timeout=5.0)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = self._connect()
        except OSError:
            client.close()  # the client sees a closed connection, as with kubectl when the pod is gone
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        pair = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(pair), [], [], 1.0)
                for sock in readable:
                    data = sock.recv(BUFFER)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
