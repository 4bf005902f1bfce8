"""Cleans up after an owner that died without stopping its platform (kill -9, a crashed test run).

Started by the platform owner with a pipe on stdin, in its own session. When stdin reaches end of
file, which happens however the owner exits, it stops every registered process that is still the
process that was started (PID and kernel start time), deletes the instance's network namespaces and
removes the state file. After a clean shutdown there is nothing left and it simply exits.

Usage: python -m inferbox.embedded.reaper STATE_DIR NETNS_PREFIX
"""

from __future__ import annotations

import sys
from pathlib import Path

from inferbox.embedded.network import delete_netns, list_netns
from inferbox.embedded.processes import terminate


def reap(state_dir: Path, netns_prefix: str) -> int:
    """Stops leftover processes and namespaces; returns how many things it cleaned."""
    cleaned = 0
    registry = state_dir / "processes"
    if registry.exists():
        for line in registry.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                terminate(int(parts[0]), int(parts[1]), grace_s=3.0)
                cleaned += 1
        registry.unlink(missing_ok=True)
    for netns in list_netns(netns_prefix):
        delete_netns(netns)
        cleaned += 1
    (state_dir / "state.json").unlink(missing_ok=True)
    return cleaned


def main() -> None:
    state_dir, prefix = Path(sys.argv[1]), sys.argv[2]
    sys.stdin.buffer.read()  # blocks until the owner closes the pipe or dies
    reap(state_dir, prefix)


if __name__ == "__main__":
    main()
