"""Validating a custom resource against its CRD's structural schema, as the API server does.

In the order the API server works on a server-side apply:

1. the apply patch is converted to the schema's types (structured-merge-diff): a field the schema
   does not declare, a value of the wrong type, a list-map entry without its key or with a
   duplicate key fails here, and the API server answers HTTP 500 ("failed to create typed patch
   object");
2. ``null`` values are dropped and ``default``s filled in;
3. the object is validated (HTTP 422 "is invalid"): ``required``, ``enum``, ``pattern``,
   ``minimum``/``maximum``, lengths, item and property counts, ``format``, list sets, the value
   validations in ``allOf``/``anyOf``/``oneOf``/``not``, and the CEL rules of
   ``x-kubernetes-validations``.

Messages follow the API server's wording, so a test can compare them with what a cluster says.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inferbox.cluster import cel_rules

# Rule classes, so tests and reports can say which kind of rule an object broke.
UNKNOWN_FIELD = "unknown-field"
TYPE = "type"
LIST_MAP = "list-map-keys"
REQUIRED = "required"
ENUM = "enum"
PATTERN = "pattern"
RANGE = "range"
LENGTH = "length"
ITEMS = "items"
PROPERTIES = "properties"
FORMAT = "format"
LIST_SET = "list-set"
JUNCTOR = "one-of/any-of/all-of/not"
CEL = "cel"
# Classes the API server finds while converting a server-side apply patch (HTTP 500, not 422).
TYPED_CLASSES = frozenset({UNKNOWN_FIELD, TYPE, LIST_MAP})


@dataclass(frozen=True)
class Violation:
    path: str  # spec.rules[0].backendRefs[0].port
    rule: str  # one of the classes above
    message: str  # the API server's wording

    @property
    def typed(self) -> bool:
        return self.rule in TYPED_CLASSES

    def __str__(self) -> str:
        return f"{self.path or '(root)'}: {self.message} [{self.rule}]"


@dataclass
class Result:
    violations: list[Violation] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)  # CEL rules that could not be evaluated
    cel_evaluated: int = 0


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else f'"{_type_of(value)}"'


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_ok(value: Any, schema: Mapping[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    kind = schema.get("type")
    if kind is None:
        return True
    actual = _type_of(value)
    return actual == kind or (kind == "number" and actual == "integer")


# -- step 1: typed conversion (and pruning of nulls) ---------------------------------------------
# Complex on purpose: one case per OpenAPI type, as the API server converts them.
def _typed(value: Any, schema: Mapping[str, Any], path: str, out: list[Violation]) -> None:  # noqa: C901
    if value is None:
        return
    if not _type_ok(value, schema):
        expected = "int or string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")
        out.append(Violation(path, TYPE, f"expected {expected}, got {_type_of(value)} {_show(value)}"))
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if (path == "" and key in ("apiVersion", "kind", "metadata")) or _embedded_meta(schema, key):
                continue  # the API server checks these itself
            if key in properties:
                _typed(child, properties[key], _join(path, key), out)
            elif isinstance(extra, dict):
                _typed(child, extra, _join(path, key), out)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                out.append(Violation(_join(path, key), UNKNOWN_FIELD, "field not declared in schema"))
    elif isinstance(value, list):
        items = schema.get("items")
        for index, child in enumerate(value):
            if isinstance(items, dict):
                _typed(child, items, f"{path}[{index}]", out)
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(items, dict):
            _list_map_keys(value, schema, path, out)


def _embedded_meta(schema: Mapping[str, Any], key: str) -> bool:
    return bool(schema.get("x-kubernetes-embedded-resource")) and key in ("apiVersion", "kind", "metadata")


def _list_map_keys(items: list[Any], schema: Mapping[str, Any], path: str, out: list[Violation]) -> None:
    keys = list(schema.get("x-kubernetes-list-map-keys") or [])
    item_schema = schema.get("items") or {}
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        values = []
        for key in keys:
            if key in item:
                values.append(item[key])
            elif "default" in ((item_schema.get("properties") or {}).get(key) or {}):
                values.append(item_schema["properties"][key]["default"])
            else:
                out.append(
                    Violation(
                        f"{path}[{index}]",
                        LIST_MAP,
                        f'associative list with keys has an element that omits key field "{key}"',
                    )
                )
                break
        else:
            identity = tuple(json.dumps(v, sort_keys=True) for v in values)
            if identity in seen:
                shown = ",".join(f"{k}={json.dumps(v)}" for k, v in zip(keys, values, strict=True))
                out.append(Violation(path, LIST_MAP, f"duplicate entries for key [{shown}]"))
            seen[identity] = index


# -- step 2: nulls dropped, defaults filled in ---------------------------------------------------
def defaulted(value: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of ``value`` with nulls of non-nullable fields dropped and schema defaults applied."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        out = {}
        for key, child in value.items():
            child_schema = properties.get(key) or extra or {}
            if child is None and not child_schema.get("nullable"):
                continue
            out[key] = defaulted(child, child_schema)
        for key, child_schema in properties.items():
            if key not in out and "default" in child_schema:
                out[key] = defaulted(copy.deepcopy(child_schema["default"]), child_schema)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [defaulted(v, schema["items"]) for v in value]
    return value


# -- step 3: validation ---------------------------------------------------------------------------
_FORMATS: dict[str, Any] = {}


def _format_ok(name: str, value: str) -> bool | None:
    """True/False for the formats the API server checks; None for the ones it ignores."""
    try:
        if name == "date-time":
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif name == "date":
            dt.date.fromisoformat(value)
        elif name == "byte":
            base64.b64decode(value, validate=True)
        elif name == "ipv4":
            ipaddress.IPv4Address(value)
        elif name == "ipv6":
            ipaddress.IPv6Address(value)
        elif name == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif name == "uuid":
            uuid.UUID(value)
        elif name == "hostname":
            return bool(
                re.fullmatch(
                    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
                    value,
                )
            )
        else:
            return None
    except ValueError:
        return False
    return True


def _pattern_matches(pattern: str, value: str) -> bool:
    import re2  # Go's regexp is RE2; Python's re differs on some syntax

    return re2.search(pattern, value) is not None


class _Validator:
    def __init__(self) -> None:
        self.result = Result()

    def add(self, path: str, rule: str, message: str) -> None:
        self.result.violations.append(Violation(path, rule, message))

    def check(self, value: Any, schema: Mapping[str, Any], path: str, structural: bool = True) -> None:
        if value is None:
            return
        if structural and not _type_ok(value, schema):
            return  # already reported by the typed conversion
        self._scalar(value, schema, path)
        if isinstance(value, dict):
            self._object(value, schema, path, structural)
        elif isinstance(value, list):
            self._array(value, schema, path, structural)
        self._junctors(value, schema, path)
        if structural:
            self._cel(value, schema, path)

    # Complex on purpose: one case per scalar constraint (enum, pattern, format, bounds).
    def _scalar(self, value: Any, schema: Mapping[str, Any], path: str) -> None:  # noqa: C901
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(json.dumps(e) for e in schema["enum"])
            self.add(path, ENUM, f"Unsupported value: {_show(value)}: supported values: {supported}")
        if isinstance(value, str):
            if "pattern" in schema and not _pattern_matches(schema["pattern"], value):
                self.add(
                    path, PATTERN, f"Invalid value: {_show(value)}: {path} in body should match '{schema['pattern']}'"
                )
            length = len(value)
            if "maxLength" in schema and length > schema["maxLength"]:
                self.add(path, LENGTH, f"Too long: may not be more than {schema['maxLength']} bytes")
            if "minLength" in schema and length < schema["minLength"]:
                self.add(
                    path,
                    LENGTH,
                    f"Invalid value: {_show(value)}: {path} in body should be at least {schema['minLength']} chars",
                )
            if "format" in schema and _format_ok(schema["format"], value) is False:
                self.add(
                    path, FORMAT, f"Invalid value: {_show(value)}: {path} in body must be of type {schema['format']}"
                )
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "maximum" in schema:
                limit = schema["maximum"]
                if value > limit or (schema.get("exclusiveMaximum") and value == limit):
                    word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                    self.add(path, RANGE, f"Invalid value: {value}: {path} in body should be {word} {limit}")
            if "minimum" in schema:
                limit = schema["minimum"]
                if value < limit or (schema.get("exclusiveMinimum") and value == limit):
                    word = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
                    self.add(path, RANGE, f"Invalid value: {value}: {path} in body should be {word} {limit}")
            if "multipleOf" in schema and value % schema["multipleOf"] != 0:
                self.add(
                    path,
                    RANGE,
                    f"Invalid value: {value}: {path} in body should be a multiple of {schema['multipleOf']}",
                )

    def _object(self, value: dict[str, Any], schema: Mapping[str, Any], path: str, structural: bool) -> None:
        for key in schema.get("required") or []:
            if key not in value:
                self.add(_join(path, key), REQUIRED, "Required value")
        count = len(value)
        if "maxProperties" in schema and count > schema["maxProperties"]:
            self.add(path, PROPERTIES, f"Too many: {count}: must have at most {schema['maxProperties']} items")
        if "minProperties" in schema and count < schema["minProperties"]:
            self.add(
                path,
                PROPERTIES,
                f"Invalid value: {count}: {path} in body should have at least {schema['minProperties']} properties",
            )
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if key in properties:
                self.check(child, properties[key], _join(path, key), structural)
            elif isinstance(extra, dict):
                self.check(child, extra, _join(path, key), structural)

    def _array(self, value: list[Any], schema: Mapping[str, Any], path: str, structural: bool) -> None:
        count = len(value)
        if "maxItems" in schema and count > schema["maxItems"]:
            self.add(path, ITEMS, f"Too many: {count}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and count < schema["minItems"]:
            self.add(
                path, ITEMS, f"Invalid value: {count}: {path} in body should have at least {schema['minItems']} items"
            )
        if schema.get("x-kubernetes-list-type") == "set" or schema.get("uniqueItems"):
            seen = set()
            for index, item in enumerate(value):
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    self.add(f"{path}[{index}]", LIST_SET, f"Duplicate value: {_show(item)}")
                seen.add(key)
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.check(item, items, f"{path}[{index}]", structural)

    def _passes(self, value: Any, schema: Mapping[str, Any], path: str) -> bool:
        probe = _Validator()
        probe.check(value, schema, path, structural=False)
        return not probe.result.violations

    def _junctors(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        for sub in schema.get("allOf") or []:
            self.check(value, sub, path, structural=False)
        if "anyOf" in schema and not any(self._passes(value, s, path) for s in schema["anyOf"]):
            self.add(
                path, JUNCTOR, f"Invalid value: {_show(value)}: {path} in body must match at least one schema in anyOf"
            )
        if "oneOf" in schema:
            matching = sum(self._passes(value, s, path) for s in schema["oneOf"])
            if matching != 1:
                self.add(
                    path,
                    JUNCTOR,
                    f"Invalid value: {_show(value)}: {path} in body must match exactly one schema in oneOf",
                )
        if "not" in schema and self._passes(value, schema["not"], path):
            self.add(path, JUNCTOR, f"Invalid value: {_show(value)}: {path} in body must not match the schema in not")

    def _cel(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            text = str(rule.get("rule", ""))
            if "oldSelf" in text and not rule.get("optionalOldSelf"):
                continue  # a transition rule: the API server evaluates it on updates only
            outcome = cel_rules.evaluate(text, value)
            if outcome.unevaluated:
                self.result.unevaluated.append(f"{path or '(root)'}: {text!r}: {outcome.unevaluated}")
                continue
            self.result.cel_evaluated += 1
            if not outcome.passed:
                where = _join(path, str(rule["fieldPath"]).lstrip(".")) if rule.get("fieldPath") else path
                message = rule.get("message") or f"failed rule: {text}"
                if outcome.error not in ("", "false"):
                    message = f"{message} (evaluation error: {outcome.error})"
                self.add(where, CEL, f"Invalid value: {_show(value)}: {message}")


def validate(body: Mapping[str, Any], schema: Mapping[str, Any]) -> Result:
    """Every violation of ``schema`` (a CRD version's openAPIV3Schema) by the object ``body``."""
    typed: list[Violation] = []
    _typed(dict(body), schema, "", typed)
    validator = _Validator()
    validator.result.violations.extend(typed)
    # Root rules may read self.metadata; metadata's own fields are the API server's to check.
    validator.check(defaulted(dict(body), _without_meta(schema)), _without_meta(schema), "")
    return validator.result


def _without_meta(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The root schema without apiVersion/kind/metadata: the API server validates metadata itself."""
    out = dict(schema)
    out["properties"] = {
        k: v for k, v in (schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")
    }
    out["required"] = [k for k in schema.get("required") or [] if k not in ("apiVersion", "kind", "metadata")]
    return out
