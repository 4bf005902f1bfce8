"""Figures a check measured, stored with its result in the run's report (the ``evidence`` fixture)."""

from __future__ import annotations

from typing import Any, Protocol


class _Node(Protocol):
    user_properties: list[tuple[str, object]]


class Evidence:
    def __init__(self, node: _Node) -> None:
        self._node = node

    def figure(self, name: str, value: Any) -> None:
        """A measured value (number, or a small mapping of numbers) under ``name``."""
        self._node.user_properties.append(("figure", (name, value)))

    def retries(self, count: int) -> None:
        """How many attempts an eventually-consistent check needed."""
        self._node.user_properties.append(("retries", count))
