"""What a failed test says, for people: the assertion message on top, then the whole traceback.

pytest's long traceback opens every frame with the function's arguments (``platform =
EmbeddedTarget(state={...})``): a fixture's repr can run to pages before the line that failed. The
traceback kept here is pytest's own rendering of each frame without that argument dump, complete
(neither head nor tail cut off).
"""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Any

# pytest renders its traceback entries only onto a TerminalWriter (no public text API per entry).
from _pytest._io import TerminalWriter

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(test_id: str) -> str:
    """A file name for a test id (as the cluster targets name their failure evidence folders)."""
    return SAFE_NAME.sub("_", test_id)[:150]


def _terminal_text(repr_: Any) -> str:
    out = io.StringIO()
    writer = TerminalWriter(file=out)
    writer.hasmarkup = False
    repr_.toterminal(writer)
    return out.getvalue().strip("\n")


def _entry_text(entry: Any) -> str:
    """One frame as pytest prints it, without the function-arguments block."""
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type) and hasattr(entry, "reprfuncargs"):
        entry = dataclasses.replace(entry, reprfuncargs=None)
    return _terminal_text(entry) if hasattr(entry, "toterminal") else str(entry)


def _traceback_text(reprtraceback: Any) -> str:
    entries = getattr(reprtraceback, "reprentries", None)
    if entries is None:
        return str(reprtraceback)
    parts = [_entry_text(e) for e in entries]
    extra = getattr(reprtraceback, "extraline", None)
    if extra:
        parts.append(str(extra))
    return "\n\n".join(p for p in parts if p)


def describe_failure(longrepr: Any) -> tuple[str, str]:
    """(message, traceback) of a failed or errored phase's ``longrepr``."""
    if longrepr is None:
        return "", ""
    if isinstance(longrepr, str):  # pytest.fail(..., pytrace=False), and errors inferbox words itself
        return longrepr.strip(), ""
    if isinstance(longrepr, tuple):  # (path, line, reason): a skip
        return str(longrepr[2]), ""
    crash = getattr(longrepr, "reprcrash", None)
    message = str(getattr(crash, "message", "")).strip()
    chain = getattr(longrepr, "chain", None)
    if chain:
        blocks = []
        for reprtraceback, _crash, description in chain:
            blocks.append(_traceback_text(reprtraceback))
            if description:
                blocks.append(str(description).strip())
        traceback = "\n\n".join(blocks)
    elif hasattr(longrepr, "reprtraceback"):
        traceback = _traceback_text(longrepr.reprtraceback)
    else:  # a collection error and other reprs of their own kind
        traceback = str(longrepr)
    if not message:
        lines = [line for line in traceback.splitlines() if line.startswith("E ")]
        message = "\n".join(line[2:].strip() for line in lines) or traceback.strip().splitlines()[-1:][0]
    return message, traceback.strip()
