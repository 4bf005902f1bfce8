"""Cleans up after an owner that died without stopping its platform (kill -9, a crashed test run).

Started by the platform owner with a pipe on stdin, in its own session. When stdin reaches end of
file, which happens however the owner exits, it stops every registered process that is still the
process that was started (PID and kernel start time), deletes the instance's network namespaces and
removes the state file. A run's private platform folder (signing key, client credentials), made by
``private_state_dir``, is removed as a whole; a kept platform's folder (``inferbox up``) stays. After
a clean shutdown there is nothing left and it simply exits.

Usage: python -m inferbox.embedded.reaper STATE_DIR NETNS_PREFIX
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from inferbox.embedded.network import delete_netns, list_netns
from inferbox.embedded.processes import terminate
from inferbox.embedded.socket_dir import remove_socket_dir, socket_dir_for

PRIVATE_PREFIX = "inferbox-"
# Written into a folder by the run that made it: only such folders are ever removed as a whole.
PRIVATE_MARKER = ".inferbox-private-run"


def private_state_dir() -> Path:
    """A new folder, readable by this user only, for one run's private platform (keys, credentials)."""
    folder = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
    (folder / PRIVATE_MARKER).write_text(f"{os.getpid()}\n")
    return folder


def is_private_state_dir(folder: Path) -> bool:
    """Made by ``private_state_dir``: in the temp directory, with its prefix and marker."""
    return (
        folder.name.startswith(PRIVATE_PREFIX)
        and folder.resolve().parent == Path(tempfile.gettempdir()).resolve()
        and (folder / PRIVATE_MARKER).is_file()
        and not (folder / PRIVATE_MARKER).is_symlink()
    )


def reap(state_dir: Path, netns_prefix: str) -> int:
    """Stops leftover processes and namespaces; returns how many things it cleaned."""
    cleaned = 0
    registry = state_dir / "processes"
    if registry.exists():
        for line in registry.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                terminate(int(parts[0]), float(parts[1]), grace_s=3.0)
                cleaned += 1
        registry.unlink(missing_ok=True)
    for netns in list_netns(netns_prefix):
        delete_netns(netns)
        cleaned += 1
    (state_dir / "state.json").unlink(missing_ok=True)
    if socket_dir_for(state_dir).exists():
        remove_socket_dir(state_dir)
        cleaned += 1
    if is_private_state_dir(state_dir):
        # The signing key and client credentials must not outlive the run that made them.
        shutil.rmtree(state_dir, ignore_errors=True)
        cleaned += 1
    return cleaned


def main() -> None:
    state_dir, prefix = Path(sys.argv[1]), sys.argv[2]
    sys.stdin.buffer.read()  # blocks until the owner closes the pipe or dies
    reap(state_dir, prefix)


if __name__ == "__main__":
    main()
