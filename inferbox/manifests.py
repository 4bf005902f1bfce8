"""Loading manifests/: every Kubernetes object of the platform, with its source file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferbox import strictyaml
from inferbox.data import data_path
from inferbox.errors import ManifestError

DEFAULT_MANIFEST_DIR = data_path("manifests")

# Files under manifests/ that are not Kubernetes objects.
NON_OBJECT_FILES = {"versions.yaml"}


@dataclass(frozen=True)
class K8sObject:
    """One Kubernetes object as written in a manifest file."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    body: dict[str, Any] = field(compare=False, repr=False)
    source: str = field(compare=False, default="")

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def ref(self) -> str:
        """Human-readable identity used in error messages: Kind namespace/name."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec") or {}
        return spec if isinstance(spec, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.body.get("metadata") or {}).get("labels") or {})

    @property
    def annotations(self) -> dict[str, str]:
        return dict((self.body.get("metadata") or {}).get("annotations") or {})


@dataclass(frozen=True)
class ManifestSet:
    """All objects found under one manifests directory."""

    root: Path
    objects: tuple[K8sObject, ...]

    def __iter__(self) -> Iterator[K8sObject]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def of_kind(self, kind: str) -> list[K8sObject]:
        return [o for o in self.objects if o.kind == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> K8sObject | None:
        for obj in self.objects:
            if obj.kind == kind and obj.name == name and obj.namespace == namespace:
                return obj
        return None


def _object_from_document(doc: Any, source: str) -> K8sObject:
    if not isinstance(doc, dict):
        raise ManifestError(
            f"{source}: a YAML document is a {type(doc).__name__}, not a Kubernetes object",
            "each document must be a mapping with apiVersion, kind and metadata.name",
        )
    missing = [key for key in ("apiVersion", "kind") if not isinstance(doc.get(key), str) or not doc[key]]
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        missing.append("metadata.name")
    if missing:
        raise ManifestError(
            f"{source}: object is missing {', '.join(missing)}",
            "every object needs apiVersion, kind and metadata.name",
        )
    assert isinstance(metadata, dict)
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ManifestError(f"{source}: metadata.namespace must be a string", "quote it or fix its value")
    return K8sObject(
        api_version=doc["apiVersion"],
        kind=doc["kind"],
        name=metadata["name"],
        namespace=namespace,
        body=doc,
        source=source,
    )


def parse_documents(text: str, source: str) -> list[K8sObject]:
    """Objects in one multi-document YAML text; empty documents are skipped.

    As strict as the API server: a key set twice in one mapping is refused with its line."""
    try:
        documents = strictyaml.load_all(text)
    except yaml.YAMLError as exc:
        problem, fix = strictyaml.explain(
            exc,
            source,
            "fix the YAML syntax; `python -c 'import yaml,sys; yaml.safe_load_all(open(sys.argv[1]))' FILE` "
            "shows the same error",
        )
        raise ManifestError(problem, fix) from exc
    return [_object_from_document(doc, source) for doc in documents if doc is not None]


def manifest_files(root: Path) -> list[Path]:
    """The YAML files holding objects, in a stable order (platform first, then tenants)."""
    files = [p for p in sorted(root.rglob("*.yaml")) if p.name not in NON_OBJECT_FILES and p.is_file()]
    return sorted(files, key=lambda p: (0 if "platform" in p.parts else 1, str(p)))


def load_manifests(root: Path | str = DEFAULT_MANIFEST_DIR) -> ManifestSet:
    """Reads every object under ``root``; duplicate objects are an error."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(
            f"manifest directory {root} does not exist",
            "pass --manifests DIR pointing at a copy of inferbox's manifests/ folder",
        )
    objects: list[K8sObject] = []
    seen: dict[tuple[str, str, str | None], str] = {}
    for path in manifest_files(root):
        rel = str(path.relative_to(root))
        found = parse_documents(path.read_text(encoding="utf-8"), rel)
        if not found:
            # An emptied file would otherwise drop its objects without a word (a model answering 404).
            raise ManifestError(
                f"{rel}: the file holds no Kubernetes object (it is empty or only comments)",
                "restore its objects, or delete the file if the platform no longer needs them",
            )
        for obj in found:
            key = (obj.kind, obj.name, obj.namespace)
            if key in seen:
                raise ManifestError(
                    f"{rel}: {obj.ref} is defined twice (also in {seen[key]})",
                    "remove one of the two definitions",
                )
            seen[key] = rel
            objects.append(obj)
    if not objects:
        raise ManifestError(f"no Kubernetes objects found under {root}", "check the --manifests path")
    return ManifestSet(root=root, objects=tuple(objects))


def dump_objects(objects: Iterable[K8sObject]) -> str:
    """Objects as one multi-document YAML text (used when writing mutated manifests)."""
    return yaml.safe_dump_all([o.body for o in objects], sort_keys=False)
