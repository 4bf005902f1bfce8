"""Where a platform's Unix sockets live: a short folder of their own, named after the state folder.

A Unix socket's path must fit ``sun_path`` (108 bytes on Linux), and a state folder can be deeper
than that allows (a per-user ``XDG_STATE_HOME`` under a test's temporary folder, a long home path).
The socket folder sits in the temporary directory under a name derived from the state folder's
path, so every process that knows the state folder (the CLI, a test run, the reaper) finds the same
sockets without any record of them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from inferbox.errors import PlatformError

PREFIX = "ib-sock-"
CONNECT_BUSY_S = 30.0  # how long a busy server (its backlog full) is waited for


def socket_dir_for(state_dir: Path) -> Path:
    """The socket folder of the platform kept in ``state_dir`` (whether it exists or not)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"{PREFIX}{os.getuid()}-{digest}"


def ensure_socket_dir(state_dir: Path) -> Path:
    """Creates the socket folder, readable by this user only; refuses one that someone else made."""
    folder = socket_dir_for(state_dir)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PlatformError(
                f"the socket folder {folder} exists but is not a private folder of this user",
                f"remove {folder} (another user or program made it) and start again",
            ) from None
    return folder


def remove_socket_dir(state_dir: Path) -> None:
    """Removes the socket folder (after the processes serving on its sockets have stopped)."""
    folder = socket_dir_for(state_dir)
    if folder.is_dir() and not folder.is_symlink() and folder.lstat().st_uid == os.getuid():
        shutil.rmtree(folder, ignore_errors=True)


def connect_unix(sock: socket.socket, path: Path | str) -> None:
    """Connects to a Unix socket; a full backlog is waited out, bounded. A Unix socket does not queue
    callers past its backlog: with a timeout set, connect fails at once (EAGAIN) while the server's
    accepting thread waits for a CPU."""
    for attempt in Retrying(
        retry=retry_if_exception_type(BlockingIOError),
        stop=stop_after_delay(CONNECT_BUSY_S),
        wait=wait_fixed(0.05),
        reraise=True,
    ):
        with attempt:
            sock.connect(str(path))
