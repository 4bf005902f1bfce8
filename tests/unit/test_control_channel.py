"""The kept platform's control channel answers callers that arrive together, also while its
accepting thread is slow to run (a loaded machine)."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

from inferbox.embedded import control
from inferbox.embedded.socket_dir import connect_unix


def test_a_caller_waits_for_a_full_backlog_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued = []
    for _ in range(8):  # fill the backlog: a non-blocking connect past it fails with EAGAIN at once
        waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        waiting.setblocking(False)
        try:
            waiting.connect(str(path))
        except BlockingIOError:
            waiting.close()
            break
        queued.append(waiting)
    else:
        raise AssertionError("the backlog never filled")

    def accept_later() -> None:
        threading.Event().wait(0.3)  # the server gets a CPU only a little later
        listener.settimeout(5)
        with contextlib.suppress(OSError):
            for _ in range(len(queued) + 1):
                listener.accept()[0].close()

    accepting = threading.Thread(target=accept_later, daemon=True)
    accepting.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as caller:
        caller.settimeout(5)
        connect_unix(caller, path)
    accepting.join(5)
    for sock in queued:
        sock.close()
    listener.close()


def test_the_channel_queues_more_callers_than_run_side_by_side() -> None:
    assert control._ChannelServer.request_queue_size >= 64
