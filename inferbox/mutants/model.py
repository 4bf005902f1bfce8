"""Mutant definitions (mutants/*.yaml) and applying them to a copy of the manifests.

A mutant is a named list of patches to manifest objects (JSON-pointer ``add``/``replace``/``remove``,
``delete`` an object, ``create`` one), text substitutions in files under manifests/ that are not
Kubernetes objects (``substitute``: the Grafana dashboards' JSON), and/or target knobs, plus the
test ids that must fail on it. A mutant may name the targets it applies to (``targets``: default
all), for checks only some targets can run (Grafana, Kiali). Mutants never touch the profile.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferbox import strictyaml
from inferbox.data import data_path
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, dump_objects, load_manifests, parse_documents

DEFAULT_MUTANT_DIR = data_path("mutants")
OPS = {"add", "replace", "remove", "delete", "create", "substitute"}
TARGETS = ("embedded", "kind", "existing")


@dataclass(frozen=True)
class Patch:
    op: str
    target: dict[str, str] | None
    path: str = ""
    value: Any = None


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str
    patches: tuple[Patch, ...]
    kills: tuple[str, ...]
    knobs: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    targets: tuple[str, ...] = TARGETS
    # Run by the nightly mutant run only: its killers take minutes each (a chaos experiment under
    # load on a platform of its own), too long for every `make test`.
    nightly: bool = False


def load_mutants(directory: Path = DEFAULT_MUTANT_DIR) -> list[Mutant]:  # noqa: C901 - one check per field, each with its message
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = strictyaml.load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ManifestError(*strictyaml.explain(exc, str(path))) from exc
        if not isinstance(data, dict) or data.get("kind") != "MutantSet":
            raise ManifestError(f"{path}: not a MutantSet", "start the file with kind: MutantSet")
        for entry in data.get("mutants") or []:
            name = entry.get("name")
            if not name or name in seen:
                raise ManifestError(
                    f"{path}: mutant without a name or defined twice: {name!r}", "give each a unique name"
                )
            seen.add(name)
            patches = []
            for raw in entry.get("patches") or []:
                if raw.get("op") not in OPS:
                    raise ManifestError(
                        f"{path}: mutant {name}: unknown op {raw.get('op')!r}", f"use one of {sorted(OPS)}"
                    )
                if raw["op"] == "substitute":
                    if not all(isinstance(raw.get(k), str) and raw.get(k) for k in ("file", "old", "new")):
                        raise ManifestError(
                            f"{path}: mutant {name}: a substitute patch needs file, old and new", "add them"
                        )
                    patches.append(Patch("substitute", None, raw["file"], {"old": raw["old"], "new": raw["new"]}))
                    continue
                patches.append(Patch(raw["op"], raw.get("target"), raw.get("path", ""), raw.get("value")))
            if not entry.get("kills"):
                raise ManifestError(f"{path}: mutant {name} names no test that must kill it", "list them under kills")
            if not patches and not entry.get("knobs"):
                raise ManifestError(f"{path}: mutant {name} changes nothing", "add patches or knobs")
            targets = tuple(entry.get("targets") or TARGETS)
            if set(targets) - set(TARGETS):
                raise ManifestError(
                    f"{path}: mutant {name}: unknown target(s) {sorted(set(targets) - set(TARGETS))}",
                    f"use some of {list(TARGETS)}",
                )
            nightly = entry.get("nightly", False)
            if not isinstance(nightly, bool):
                raise ManifestError(
                    f"{path}: mutant {name}: nightly is {nightly!r}", "write nightly: true or leave it out"
                )
            mutants.append(
                Mutant(
                    name,
                    str(entry.get("breaks", "")),
                    tuple(patches),
                    tuple(entry["kills"]),
                    dict(entry.get("knobs") or {}),
                    str(path.name),
                    targets,
                    nightly,
                )
            )
    return mutants


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_pointer(doc: dict[str, Any], op: str, path: str, value: Any = None) -> None:
    *parents, last = _pointer(path)
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        if op == "add":
            node.append(value) if last == "-" else node.insert(int(last), value)
        elif op == "replace":
            node[int(last)] = value
        else:
            del node[int(last)]
        return
    if op in ("replace", "remove") and last not in node:
        raise KeyError(last)
    if op == "remove":
        del node[last]
    else:
        node[last] = value


def _matches(obj: K8sObject, target: dict[str, str]) -> bool:
    return obj.kind == target["kind"] and obj.name == target["name"] and obj.namespace == target.get("namespace")


def _substitute(mutant: Mutant, out_dir: Path, patch: Patch) -> None:
    target = (out_dir / patch.path).resolve()
    if out_dir.resolve() not in target.parents or not target.is_file():
        raise ManifestError(f"mutant {mutant.name}: no file {patch.path} under the manifests", "fix the file path")
    text = target.read_text(encoding="utf-8")
    if patch.value["old"] not in text:
        raise ManifestError(
            f"mutant {mutant.name}: {patch.path} does not contain {patch.value['old']!r}", "fix the mutant's old text"
        )
    target.write_text(text.replace(patch.value["old"], patch.value["new"]), encoding="utf-8")


def mutate(mutant: Mutant, source_dir: Path, out_dir: Path) -> Path:
    """Writes the manifests with ``mutant`` applied into ``out_dir``; returns it."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(source_dir, out_dir)
    manifests = load_manifests(out_dir)
    by_file: dict[str, list[K8sObject]] = {}
    for obj in manifests:
        by_file.setdefault(obj.source, []).append(obj)
    created: list[dict[str, Any]] = []
    touched: set[str] = set()
    for patch in mutant.patches:
        if patch.op == "create":
            created.append(copy.deepcopy(patch.value))
            continue
        if patch.op == "substitute":
            _substitute(mutant, out_dir, patch)
            continue
        assert patch.target is not None
        hits = [(f, i) for f, objs in by_file.items() for i, o in enumerate(objs) if _matches(o, patch.target)]
        if not hits:
            raise ManifestError(
                f"mutant {mutant.name}: no object {patch.target} in the manifests", "fix the mutant's target"
            )
        file, index = hits[0]
        obj = by_file[file][index]
        touched.add(file)
        if patch.op == "delete":
            by_file[file].pop(index)
            continue
        body = copy.deepcopy(obj.body)
        try:
            apply_pointer(body, patch.op, patch.path, copy.deepcopy(patch.value))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ManifestError(
                f"mutant {mutant.name}: cannot {patch.op} {patch.path} on {obj.ref}: {exc}",
                "fix the mutant's path",
            ) from exc
        by_file[file][index] = parse_documents(yaml.safe_dump(body), file)[0]
    for file in touched:
        if by_file[file]:
            (out_dir / file).write_text(dump_objects(by_file[file]))
        else:
            (out_dir / file).unlink()  # an empty manifest file is refused, as an emptied one should be
    if created:
        (out_dir / "mutant-added.yaml").write_text(yaml.safe_dump_all(created, sort_keys=False))
    load_manifests(out_dir)  # the mutated set must still load
    return out_dir
