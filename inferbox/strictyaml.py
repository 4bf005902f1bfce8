"""YAML reading as strict as Kubernetes': a key written twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a second ``authorization:`` would quietly
replace the first. The API server's strict decoding refuses such an object instead ("mapping key
... already defined at line ..."); every file inferbox reads (manifests, the conformance profile, the
versions file, mutants) goes through this loader so a duplicate is refused with its line.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

MERGE_TAG = "tag:yaml.org,2002:merge"
# libyaml's parser when PyYAML was built with it (the wheels are): the same documents and marks, and
# several times faster; the checks below run in the constructor, which is Python either way.
try:
    from yaml import CSafeLoader as _Base
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _Base  # type: ignore[assignment]


class DuplicateKeyError(ConstructorError):
    """A mapping that sets the same key twice; ``problem_mark`` is the second occurrence."""

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(
            None,
            None,
            f"mapping key {key!r} already defined at line {first.line + 1}",
            again,
        )
        self.key = key
        self.first_line = first.line + 1
        self.line = again.line + 1


class StrictLoader(_Base):
    """A safe loader that refuses duplicate mapping keys (merge keys ``<<`` excepted)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader itself reports it below
            if first is not None:
                raise DuplicateKeyError(str(key), first.start_mark, key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """One YAML document (None when empty); duplicate keys raise DuplicateKeyError."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader


def load_all(text: str) -> list[Any]:
    """Every document of a multi-document YAML text; duplicate keys raise DuplicateKeyError."""
    return list(yaml.load_all(text, Loader=StrictLoader))


def explain(exc: yaml.YAMLError, source: str, syntax_fix: str = "fix the YAML syntax") -> tuple[str, str]:
    """(problem, fix) for an error of this loader or of YAML syntax, naming ``source``, line and column."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if isinstance(exc, DuplicateKeyError):
        return (
            f"{source}{where}: {exc.problem} (Kubernetes' strict decoding refuses duplicate keys)",
            "remove one of the two; a reader that keeps the last one would silently drop the first",
        )
    return f"{source}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}", syntax_fix
