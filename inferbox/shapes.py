"""Field-level shapes of Kubernetes objects, and a checker that names the first unknown field.

A shape is a nested description of the fields an object may carry:

- a ``dict`` maps field names to shapes (any other field is unknown);
- a one-element ``list`` describes every item of a list;
- ``str``, ``int``, ``float``, ``bool`` are scalars (``int`` also accepts a numeric string where
  Kubernetes does; ``float`` is any JSON number, as OpenAPI's ``number``);
- ``OneOf`` restricts a scalar to listed values;
- ``StringMap`` is a free-form string-to-string map (labels, annotations, data);
- ``MapOf`` is a map with free-form keys whose values all follow one shape;
- ``float`` is a number (an integer is accepted too);
- ``Whole`` accepts any value that the interpreter uses as a whole (a JSON Patch value, a Lua
  script's data), so no field inside it can be ignored;
- ``Noted`` accepts anything: the field is meaningful only on a real cluster (an image name, a
  probe) and the checker's caller may report it as not interpreted. Security-relevant fields are
  never ``Noted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]


@dataclass(frozen=True)
class StringMap:
    pass


@dataclass(frozen=True)
class Noted:
    why: str


@dataclass(frozen=True)
class MapOf:
    value: Shape


@dataclass(frozen=True)
class Whole:
    what: str


Shape = Union[dict[str, "Shape"], list["Shape"], type, OneOf, StringMap, Noted, "MapOf", Whole]


@dataclass(frozen=True)
class ShapeViolation:
    path: str
    message: str
    allowed: tuple[str, ...] = ()


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# Complex on purpose: one case per kind of shape.
def check_shape(value: Any, shape: Shape, path: str = "") -> ShapeViolation | None:  # noqa: C901
    """The first place where ``value`` does not fit ``shape``, or None."""
    if isinstance(shape, Noted | Whole):
        return None
    if isinstance(shape, StringMap):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            return ShapeViolation(path, "must be a map of strings")
        return None
    if isinstance(shape, MapOf):
        if not isinstance(value, dict):
            return ShapeViolation(path, f"must be a mapping, found {type(value).__name__}")
        for key, item in value.items():
            problem = check_shape(item, shape.value, _join(path, str(key)))
            if problem:
                return problem
        return None
    if isinstance(shape, OneOf):
        if value not in shape.values:
            return ShapeViolation(path, f"value {value!r} is not one of {', '.join(shape.values)}")
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return ShapeViolation(path, f"must be a mapping, found {type(value).__name__}")
        for key, item in value.items():
            if key not in shape:
                return ShapeViolation(_join(path, key), "is not a known field", tuple(sorted(shape)))
            problem = check_shape(item, shape[key], _join(path, key))
            if problem:
                return problem
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return ShapeViolation(path, f"must be a list, found {type(value).__name__}")
        for index, item in enumerate(value):
            problem = check_shape(item, shape[0], _join(path, index))
            if problem:
                return problem
        return None
    if shape is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            return ShapeViolation(path, f"must be an integer, found {type(value).__name__}")
        return None
    if shape is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ShapeViolation(path, f"must be a number, found {type(value).__name__}")
        return None
    if shape is bool:
        return None if isinstance(value, bool) else ShapeViolation(path, "must be true or false")
    if shape is str:
        return None if isinstance(value, str) else ShapeViolation(path, "must be a string")
    raise TypeError(f"bad shape at {path}: {shape!r}")


def noted_fields(value: Any, shape: Shape, path: str = "") -> list[tuple[str, str]]:
    """Every field present in ``value`` that the shape marks as Noted, with the reason."""
    found: list[tuple[str, str]] = []
    if isinstance(shape, Noted):
        return [(path, shape.why)]
    if isinstance(shape, dict) and isinstance(value, dict):
        for key, item in value.items():
            if key in shape:
                found.extend(noted_fields(item, shape[key], _join(path, key)))
    elif isinstance(shape, list) and isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(noted_fields(item, shape[0], _join(path, index)))
    elif isinstance(shape, MapOf) and isinstance(value, dict):
        for key, item in value.items():
            found.extend(noted_fields(item, shape.value, _join(path, str(key))))
    return found
