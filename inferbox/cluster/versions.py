"""The pinned versions of every upstream component, with the overrides a version-bump run uses.

Precedence, lowest first: ``manifests/versions.yaml``, a ``--versions FILE`` holding only the entries
to change, then environment variables ``INFERBOX_VERSION_<COMPONENT>[_<FIELD>]`` (upper case, ``-``
as ``_``; without a field the entry's ``version`` is meant). The ``kubernetes`` section is the
component ``kubernetes``: ``INFERBOX_VERSION_KUBERNETES_NODE_IMAGE`` sets its ``nodeImage``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferbox import strictyaml
from inferbox.errors import InferboxError
from inferbox.manifests import DEFAULT_MANIFEST_DIR

ENV_PREFIX = "INFERBOX_VERSION_"
KUBERNETES = "kubernetes"


class VersionsError(InferboxError):
    """A versions file or override that cannot be used."""


def _env_word(name: str) -> str:
    """``gateway-api`` -> ``GATEWAY_API``; ``nodeImage`` -> ``NODE_IMAGE``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").upper()


@dataclass(frozen=True)
class Versions:
    """Component name -> its fields (``version`` and, for some, ``chart``, ``channel``, ...)."""

    entries: Mapping[str, Mapping[str, str]]
    source: str
    overrides: tuple[str, ...] = field(default=())

    def get(self, component: str, name: str = "version") -> str:
        try:
            return self.entries[component][name]
        except KeyError:
            raise VersionsError(
                f"{self.source}: no {name!r} for component {component!r}",
                f"add `{component}: {{{name}: ...}}` to the versions file",
            ) from None

    def names(self) -> list[str]:
        """Every overridable entry as its environment variable."""
        out = []
        for component, fields in sorted(self.entries.items()):
            for name in fields:
                suffix = "" if name == "version" else f"_{_env_word(name)}"
                out.append(f"{ENV_PREFIX}{_env_word(component)}{suffix}")
        return out


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = strictyaml.load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VersionsError(f"versions file {path} does not exist", "pass an existing file to --versions") from None
    except yaml.YAMLError as exc:
        raise VersionsError(*strictyaml.explain(exc, str(path))) from exc
    if not isinstance(data, dict):
        raise VersionsError(f"{path}: expected a mapping with `components:`", "see manifests/versions.yaml")
    return data


def _entries(data: dict[str, Any], source: Path) -> dict[str, dict[str, str]]:
    """The file's kubernetes section and components as one flat component -> fields mapping."""
    entries: dict[str, dict[str, str]] = {}
    sections: dict[str, Any] = dict(data.get("components") or {})
    if data.get(KUBERNETES) is not None:
        sections[KUBERNETES] = data[KUBERNETES]
    for component, fields in sections.items():
        if not isinstance(fields, dict) or not all(isinstance(v, str | int | float) for v in fields.values()):
            raise VersionsError(
                f"{source}: component {component!r} must map field names to versions, found {fields!r}",
                f"write it as `{component}: {{version: X}}`",
            )
        entries[str(component)] = {str(k): str(v) for k, v in fields.items()}
    return entries


def _merge(
    base: dict[str, dict[str, str]], changes: dict[str, dict[str, str]], where: str
) -> dict[str, dict[str, str]]:
    merged = {c: dict(f) for c, f in base.items()}
    for component, fields in changes.items():
        if component not in merged:
            raise VersionsError(
                f"{where}: unknown component {component!r}",
                f"components of the pinned set: {', '.join(sorted(merged))}",
            )
        for name, value in fields.items():
            if name not in merged[component]:
                raise VersionsError(
                    f"{where}: component {component!r} has no field {name!r}",
                    f"its fields: {', '.join(merged[component])}",
                )
            merged[component][name] = value
    return merged


def _env_overrides(
    entries: dict[str, dict[str, str]], environ: Mapping[str, str]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    wanted = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    changes: dict[str, dict[str, str]] = {}
    applied: list[str] = []
    # Longest component names first, so GATEWAY_API_CHANNEL is gateway-api's channel.
    by_word = sorted(((_env_word(c), c) for c in entries), key=lambda p: -len(p[0]))
    for key, value in sorted(wanted.items()):
        rest = key.removeprefix(ENV_PREFIX)
        for word, component in by_word:
            if rest == word:
                changes.setdefault(component, {})["version"] = value
                break
            if rest.startswith(word + "_"):
                field_word = rest.removeprefix(word + "_")
                names = {_env_word(n): n for n in entries[component]}
                if field_word not in names:
                    raise VersionsError(
                        f"environment variable {key}: component {component!r} has no field matching {field_word}",
                        f"use one of: {', '.join(n for n in Versions(entries, '').names() if word in n)}",
                    )
                changes.setdefault(component, {})[names[field_word]] = value
                break
        else:
            raise VersionsError(
                f"environment variable {key} names no pinned component",
                f"valid names: {', '.join(Versions(entries, '').names())}",
            )
        applied.append(f"{key}={value}")
    return changes, applied


def load_versions(
    override_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    base_file: Path | None = None,
) -> Versions:
    """The pinned set with ``--versions FILE`` and environment overrides applied."""
    base_path = base_file or DEFAULT_MANIFEST_DIR / "versions.yaml"
    entries = _entries(_read_file(base_path), base_path)
    applied: list[str] = []
    if override_file is not None:
        entries = _merge(entries, _entries(_read_file(override_file), override_file), str(override_file))
        applied.append(f"--versions {override_file}")
    env_changes, env_applied = _env_overrides(entries, os.environ if environ is None else environ)
    entries = _merge(entries, env_changes, "environment")
    applied.extend(env_applied)
    return Versions(entries=entries, source=str(base_path), overrides=tuple(applied))
