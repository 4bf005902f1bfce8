"""``kubectl port-forward`` to a Service, on 127.0.0.1 only, stopped by its PID."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from inferbox.errors import PlatformError

FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@dataclass
class PortForward:
    context: str
    namespace: str
    service: str
    port: int
    local_port: int = 0
    process: subprocess.Popen[str] | None = None
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def start(self, timeout_s: float = 30) -> PortForward:
        argv = [
            "kubectl", "--context", self.context, "--namespace", self.namespace, "port-forward",
            "--address", "127.0.0.1", f"service/{self.service}", f"{self.local_port or ''}:{self.port}",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        seen = []
        try:
            while time.monotonic() < deadline:
                if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = self.process.stdout.readline()
                if not line:
                    break
                seen.append(line.strip())
                match = FORWARDING.search(line)
                if match:
                    self.local_port = int(match.group(1))
                    # kubectl prints a line per connection: keep reading, or a full pipe stalls it.
                    threading.Thread(target=self._drain, daemon=True, name=f"port-forward-{self.service}").start()
                    return self
        finally:
            selector.close()
        self.stop()
        raise PlatformError(
            f"kubectl port-forward to service {self.namespace}/{self.service}:{self.port} did not start: "
            + (" | ".join(seen[-5:]) or "no output"),
            f"check it exists: kubectl --context {self.context} -n {self.namespace} get service {self.service}",
        )

    def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.recent.append(line.rstrip())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
