"""A platform's Unix sockets fit sun_path however deep its state folder is."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from inferbox.embedded.socket_dir import ensure_socket_dir, remove_socket_dir, socket_dir_for
from inferbox.errors import PlatformError


def test_a_deep_state_folder_gets_sockets_that_bind(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8)
    folder = ensure_socket_dir(deep)
    try:
        path = folder / "ai-gateway-extproc.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))  # raises when the path does not fit
        assert folder.stat().st_mode & 0o777 == 0o700
    finally:
        remove_socket_dir(deep)
    assert not folder.exists()


def test_the_same_state_folder_finds_the_same_sockets(tmp_path: Path) -> None:
    assert socket_dir_for(tmp_path / "x") == socket_dir_for(tmp_path / "x" / ".." / "x")
    assert socket_dir_for(tmp_path / "x") != socket_dir_for(tmp_path / "y")


def test_a_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    folder = socket_dir_for(tmp_path)
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)  # noqa: S103 -- the case under test: a folder others can enter
    try:
        with pytest.raises(PlatformError, match="not a private folder"):
            ensure_socket_dir(tmp_path)
    finally:
        folder.rmdir()
