"""A test's recorded properties as JUnit ``<property>`` elements a CI dashboard can read.

The checks record structured values (``("figure", (name, value))``, marker lists); JUnit writes
``str(value)`` of each, which made ``value="('targets', 5)"``. Here every number becomes its own
property (``figure.cold_start_s.median`` = ``2.59``), anything else JSON.
"""

from __future__ import annotations

import json
from typing import Any


def _number_text(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.10g}"


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]] | None:
    """Dotted (name, text) pairs when ``value`` is a number or a mapping of numbers; else None."""
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    if isinstance(value, int | float):
        return [(prefix, _number_text(value))]
    if isinstance(value, dict) and value:
        pairs: list[tuple[str, str]] = []
        for key, inner in value.items():
            flat = _flatten(f"{prefix}.{key}", inner)
            if flat is None:
                return None
            pairs.extend(flat)
        return pairs
    return None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def junit_properties(user_properties: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The pairs JUnit should write for a test's ``user_properties`` (names and plain text)."""
    out: list[tuple[str, object]] = []
    for key, value in user_properties:
        if key == "figure" and isinstance(value, tuple) and len(value) == 2:
            name, figure = str(value[0]), value[1]
            if name.startswith("artifact:"):
                out.append(("artifact", str(figure)))
                continue
            out.extend(_flatten(f"figure.{name}", figure) or [(f"figure.{name}", _json(figure))])
        elif key in ("markers", "features") and isinstance(value, list | tuple):
            if value:
                out.append((key, " ".join(str(v) for v in value)))
        elif isinstance(value, str | int | float):
            out.append((key, value if isinstance(value, str) else _number_text(value)))
        else:
            out.append((key, _json(value)))
    return out
