"""The reaper removes a dead run's private platform folder, and only such a folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from inferbox.embedded.reaper import PRIVATE_MARKER, is_private_state_dir, private_state_dir, reap

NO_NETNS = "ib-no-such-instance-"


def test_a_private_folder_is_removed_with_its_secrets() -> None:
    folder = private_state_dir()
    try:
        assert folder.stat().st_mode & 0o077 == 0, "only its owner may read a run's private folder"
        (folder / "secrets" / "jwt-server-keys").mkdir(parents=True)
        (folder / "secrets" / "jwt-server-keys" / "key.pem").write_text("private key")
        (folder / "credentials.json").write_text("{}")
        assert is_private_state_dir(folder)
        reap(folder, NO_NETNS)
        assert not folder.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_folder_without_the_marker_stays() -> None:
    """A kept platform's folder (``inferbox up``) is never the reaper's to delete."""
    folder = Path(tempfile.mkdtemp(prefix="inferbox-"))
    try:
        (folder / "credentials.json").write_text("{}")
        (folder / "state.json").write_text("{}")
        reap(folder, NO_NETNS)
        assert (folder / "credentials.json").exists()
        assert not (folder / "state.json").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_marked_folder_outside_the_temp_directory_stays(tmp_path: Path) -> None:
    folder = tmp_path / "inferbox-elsewhere"
    folder.mkdir()
    (folder / PRIVATE_MARKER).write_text("1\n")
    assert folder.resolve().parent != Path(tempfile.gettempdir()).resolve()
    reap(folder, NO_NETNS)
    assert folder.exists()


def test_a_folder_with_another_prefix_stays() -> None:
    folder = Path(tempfile.mkdtemp(prefix="someone-else-"))
    try:
        (folder / PRIVATE_MARKER).write_text("1\n")
        reap(folder, NO_NETNS)
        assert folder.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
