"""Runs an embedded platform until SIGTERM or SIGINT: the process behind ``inferbox up``.

Writes state.json when every component is ready, or error.json if the platform cannot start.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from inferbox.embedded.control import ControlServer, control_socket
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.embedded.socket_dir import ensure_socket_dir
from inferbox.errors import InferboxError


def main() -> None:
    parser = argparse.ArgumentParser(prog="inferbox-embedded-daemon")
    parser.add_argument("--manifests", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--log-dir", required=True, type=Path)
    parser.add_argument("--gateway-port", type=int, default=0)
    parser.add_argument("--admin-port", type=int, default=0)
    parser.add_argument("--network", default="auto")
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    error_file = args.state_dir / "error.json"
    error_file.unlink(missing_ok=True)
    try:
        # Reading the manifests is part of starting: a bad manifest is reported like any other cause.
        platform = EmbeddedPlatform(
            EmbeddedOptions(
                args.manifests.resolve(),
                args.state_dir,
                args.log_dir,
                args.gateway_port,
                args.admin_port,
                args.network,
            )
        )
        platform.start()
    except InferboxError as exc:
        error_file.write_text(json.dumps({"problem": exc.problem, "fix": exc.fix}))
        print(f"inferbox: {exc}", file=sys.stderr)  # the log says it too
        raise SystemExit(1) from exc
    except Exception as exc:
        error_file.write_text(json.dumps({"problem": f"{type(exc).__name__}: {exc}", "fix": ""}))
        raise
    # Live replica state and bound changes for targets in other processes (pytest --keep-platform).
    ensure_socket_dir(args.state_dir)
    control = ControlServer(platform.control(), control_socket(args.state_dir)).start()
    try:
        platform.write_state()
        stop.wait()
    finally:
        control.stop()
        platform.stop()
        (args.state_dir / "state.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
