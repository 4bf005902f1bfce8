"""Figures a check measured, stored with its result in the run's report (the ``evidence`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class _Node(Protocol):
    user_properties: list[tuple[str, object]]


class Evidence:
    def __init__(self, node: _Node, folder: Path | None = None) -> None:
        self._node = node
        self._folder = folder

    def figure(self, name: str, value: Any) -> None:
        """A measured value (number, or a small mapping of numbers) under ``name``."""
        self._node.user_properties.append(("figure", (name, value)))

    def retries(self, count: int) -> None:
        """How many attempts an eventually-consistent check needed."""
        self._node.user_properties.append(("retries", count))

    def artifact(self, name: str, content: str | dict[str, Any] | list[Any]) -> Path | None:
        """Saves a file (text, or JSON for a mapping or list) in the run's report folder under
        ``artifacts/``; recorded with the test as figure ``artifact:<name>``. None without a report folder."""
        if self._folder is None:
            return None
        path = self._folder / "artifacts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2, sort_keys=True))
        self.figure(f"artifact:{name}", str(path.relative_to(self._folder)))
        return path
