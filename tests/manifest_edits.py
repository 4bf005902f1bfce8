"""Edited copies of a manifest set, for tests that check how one changed object is interpreted."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from inferbox.manifests import K8sObject, ManifestSet


def edited(manifests: ManifestSet, kind: str, name: str, edit: Callable[[dict[str, Any]], Any]) -> ManifestSet:
    """The set with ``edit`` applied to a deep copy of the body of each object of that kind and name."""
    objects = []
    for obj in manifests:
        if obj.kind == kind and obj.name == name:
            body = copy.deepcopy(obj.body)
            edit(body)
            obj = K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source)
        objects.append(obj)
    return ManifestSet(manifests.root, tuple(objects))
