"""Envoy Gateway's EnvoyPatchPolicy, applied to the embedded gateway's own generated resources.

Envoy Gateway 1.4.2 (internal/xds/translator/jsonpatch.go, internal/utils/jsonpatch) applies a
policy after the whole translation: each generated xDS resource it names is turned into JSON with
protobuf field names (snake_case, ``Any`` inlined with ``@type``), a ``jsonPath`` (RFC 9535) selects
the places to patch, which become JSON pointers, ``path`` is appended to each, and the RFC 6902
operation is applied with ``add`` creating missing parents. Policies run in ascending ``priority``;
a patch whose resource does not exist, or that fails, is skipped and reported on the policy's
status (Programmed=False, reason ResourceNotFound or Invalid) while the other patches still apply.
Nothing happens unless the controller's configuration enables EnvoyPatchPolicy.

The embedded gateway names its resources as Envoy Gateway does (the listener
``<namespace>/<gateway>/<listener>``, its HTTP connection manager in ``default_filter_chain``, jwt_authn
providers ``<route>/<provider>``), so the same policy lands on the same fields. It interprets
patches of the Listener; other resource types, adding whole resources and JSONPath constructs
beyond the subset below are refused by name.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
OPS = ("add", "remove", "replace", "move", "copy", "test")


@dataclass(frozen=True)
class JsonPatch:
    type: str
    name: str
    op: str
    path: str | None
    json_path: str | None
    from_: str | None
    value: Any


@dataclass(frozen=True)
class PatchPolicy:
    ref: str  # namespace/name
    source: str
    priority: int
    patches: tuple[JsonPatch, ...]


@dataclass
class PolicyStatus:
    """What Envoy Gateway writes on an EnvoyPatchPolicy: Accepted/Programmed, reason and message."""

    policy: str
    condition: str = "Programmed"
    status: bool = True
    reason: str = "Programmed"
    messages: list[str] = field(default_factory=list)

    def line(self) -> str:
        state = "True" if self.status else "False"
        detail = f": {'; '.join(self.messages)}" if self.messages else ""
        return f"EnvoyPatchPolicy {self.policy}: {self.condition}={state}, reason {self.reason}{detail}"


class PatchError(Exception):
    """One patch could not be applied (Envoy Gateway: reason Invalid)."""


# -- JSONPath (the subset Envoy Gateway's tests use: names, indexes, wildcards, equality filters) --
_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_@][\w@-]*)
      |\.(?P<dotstar>\*)
      |\[(?P<quoted>'[^']*'|"[^"]*")\]
      |\[(?P<index>-?\d+)\]
      |\[(?P<star>\*)\]
      |\[\?\(?\s*@(?P<fpath>(?:\.[A-Za-z_][\w-]*)+)\s*(?P<fop>==|!=)\s*(?P<fval>'[^']*'|"[^"]*"|-?\d+|true|false)\s*\)?\]
    """,
    re.VERBOSE,
)


def _steps(expression: str) -> list[tuple[str, Any]]:
    if not expression.startswith("$"):
        raise PatchError(f"jsonPath {expression!r} must start with $")
    steps: list[tuple[str, Any]] = []
    position = 1
    while position < len(expression):
        found = _STEP.match(expression, position)
        if not found:
            raise PatchError(
                f"jsonPath {expression!r}: {expression[position:]!r} is outside the JSONPath subset the embedded "
                "target interprets (names, ['quoted'], [n], .*, [*], [?(@.field=='value')])"
            )
        groups = found.groupdict()
        if groups["name"] is not None:
            steps.append(("child", groups["name"]))
        elif groups["quoted"] is not None:
            steps.append(("child", groups["quoted"][1:-1]))
        elif groups["index"] is not None:
            steps.append(("index", int(groups["index"])))
        elif groups["dotstar"] is not None or groups["star"] is not None:
            steps.append(("all", None))
        else:
            literal = json.loads(groups["fval"].replace("'", '"') if groups["fval"][0] == "'" else groups["fval"])
            steps.append(("filter", (groups["fpath"][1:].split("."), groups["fop"], literal)))
        position = found.end()
    return steps


def _filter_holds(item: Any, spec: tuple[list[str], str, Any]) -> bool:
    keys, op, literal = spec
    value: Any = item
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return bool(value == literal) if op == "==" else bool(value != literal)


def _children(node: Any) -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [(str(k), v) for k, v in node.items()]
    if isinstance(node, list):
        return [(str(i), v) for i, v in enumerate(node)]
    return []


def json_path_pointers(document: Any, expression: str) -> list[str]:
    """The JSON pointers (RFC 6901) of every node ``expression`` selects; none is an error."""
    found: list[tuple[list[str], Any]] = [([], document)]
    for kind, arg in _steps(expression):
        following: list[tuple[list[str], Any]] = []
        for tokens, node in found:
            if kind == "child" and isinstance(node, dict) and arg in node:
                following.append(([*tokens, arg], node[arg]))
            elif kind == "index" and isinstance(node, list) and -len(node) <= arg < len(node):
                following.append(([*tokens, str(arg % len(node))], node[arg]))
            elif kind == "all":
                following.extend(([*tokens, k], v) for k, v in _children(node))
            elif kind == "filter":
                following.extend(([*tokens, k], v) for k, v in _children(node) if _filter_holds(v, arg))
        found = following
    if not found:
        raise PatchError(f"jsonPath {expression!r} selects nothing")
    return ["".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens) for tokens, _ in found]


# -- JSON Patch (RFC 6902; add creates missing parents, as Envoy Gateway configures it) ------------
def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"path {pointer!r} is not a JSON pointer (it must start with /)")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], part: str, for_insert: bool) -> int:
    if part == "-" and for_insert:
        return len(container)
    if not part.isdigit():
        raise PatchError(f"{part!r} is not an index of a list")
    index = int(part)
    if index > len(container) or (index == len(container) and not for_insert):
        raise PatchError(f"index {index} is out of range")
    return index


def _parent(document: Any, tokens: list[str], create: bool) -> Any:
    node = document
    for position, token in enumerate(tokens[:-1]):
        if isinstance(node, dict):
            if token not in node:
                if not create:
                    raise PatchError(f"/{'/'.join(tokens[: position + 1])} does not exist")
                following = tokens[position + 1]
                node[token] = [] if following == "-" or following.isdigit() else {}
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, False)]
        else:
            raise PatchError(f"/{'/'.join(tokens[:position])} is not an object or a list")
    return node


def _get(document: Any, pointer: str) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return document
    parent = _parent(document, tokens, create=False)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise PatchError(f"{pointer} does not exist")


def _add(document: Any, pointer: str, value: Any) -> None:
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError("replacing the whole resource is not interpreted by the embedded target")
    parent = _parent(document, tokens, create=True)
    if isinstance(parent, dict):
        parent[tokens[-1]] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], True), copy.deepcopy(value))
    else:
        raise PatchError(f"the parent of {pointer} is not an object or a list")


def _remove(document: Any, pointer: str) -> Any:
    tokens = _tokens(pointer)
    value = _get(document, pointer)
    parent = _parent(document, tokens, create=False)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1], False)]
    return value


def apply_operation(document: Any, patch: JsonPatch, pointer: str) -> None:
    """One RFC 6902 operation on ``document``, in place."""
    if patch.op == "add":
        _add(document, pointer, patch.value)
    elif patch.op == "remove":
        _remove(document, pointer)
    elif patch.op == "replace":
        _get(document, pointer)
        _remove(document, pointer)
        _add(document, pointer, patch.value)
    elif patch.op == "test":
        if _get(document, pointer) != patch.value:
            raise PatchError(f"test failed at {pointer}")
    elif patch.op == "copy":
        _add(document, pointer, _get(document, patch.from_ or ""))
    else:  # move
        _add(document, pointer, _remove(document, patch.from_ or ""))


def pointers(document: Any, patch: JsonPatch) -> list[str]:
    """Where a patch applies: each node its jsonPath selects, with ``path`` appended; else ``path``."""
    if patch.json_path:
        return [p + (patch.path or "") for p in json_path_pointers(document, patch.json_path)]
    return [patch.path or ""]


# -- policies -------------------------------------------------------------------------------------
def _patch(policy: K8sObject, index: int, raw: dict[str, Any]) -> JsonPatch:
    where = f"{policy.source}: {policy.ref}: jsonPatches[{index}]"
    operation = raw.get("operation") or {}
    op = operation.get("op")
    patch = JsonPatch(
        str(raw.get("type")),
        str(raw.get("name")),
        str(op),
        operation.get("path"),
        operation.get("jsonPath"),
        operation.get("from"),
        operation.get("value"),
    )
    if patch.type != LISTENER_TYPE:
        raise ManifestError(
            f"{where}: type {patch.type} is not interpreted by the embedded target",
            f"patch the Listener ({LISTENER_TYPE}), or run this manifest on a cluster (--platform kind/existing)",
        )
    if op not in OPS:
        raise ManifestError(f"{where}: operation.op {op!r} is not a JSON Patch operation", f"use one of {OPS}")
    if not patch.path and not patch.json_path:
        raise ManifestError(
            f"{where}: operation has neither path nor jsonPath (adding a whole resource)",
            "the embedded target patches the resources it generates; give a path or jsonPath",
        )
    needs_value, needs_from = op in ("add", "replace", "test"), op in ("move", "copy")
    if needs_value != ("value" in operation) or needs_from != ("from" in operation):
        raise ManifestError(
            f"{where}: op {op} {'needs' if needs_value else 'takes no'} value and "
            f"{'needs' if needs_from else 'takes no'} from",
            "Envoy Gateway refuses the operation otherwise",
        )
    if patch.json_path:
        try:
            _steps(patch.json_path)
        except PatchError as exc:
            raise ManifestError(f"{where}: {exc}", "use the subset, or run on a cluster") from exc
    return patch


def plan_patch_policies(
    manifests: ManifestSet, gateway: K8sObject, enabled: bool
) -> tuple[list[PatchPolicy], list[PolicyStatus]]:
    """The EnvoyPatchPolicies Envoy Gateway would apply to this Gateway, and the status of the others."""
    applied: list[PatchPolicy] = []
    statuses: list[PolicyStatus] = []
    for policy in manifests.of_kind("EnvoyPatchPolicy"):
        ref = f"{policy.namespace}/{policy.name}"
        patches = tuple(_patch(policy, i, raw) for i, raw in enumerate(policy.spec.get("jsonPatches") or ()))
        target = policy.spec.get("targetRef") or {}
        if not enabled:
            statuses.append(
                PolicyStatus(
                    ref,
                    "Accepted",
                    False,
                    "Disabled",
                    ["EnvoyPatchPolicy is disabled in the EnvoyGateway configuration"],
                )
            )
        elif (
            target.get("kind") != "Gateway"
            or target.get("name") != gateway.name
            or policy.namespace != gateway.namespace
        ):
            statuses.append(
                PolicyStatus(
                    ref,
                    "Accepted",
                    False,
                    "TargetNotFound",
                    [f"its targetRef must name Gateway {gateway.name} in the Gateway's namespace {gateway.namespace}"],
                )
            )
        else:
            applied.append(PatchPolicy(ref, policy.source, int(policy.spec.get("priority", 0)), patches))
    return sorted(applied, key=lambda p: p.priority), statuses


def apply_patch_policies(resources: dict[tuple[str, str], Any], policies: list[PatchPolicy]) -> list[PolicyStatus]:
    """Applies the policies in place to ``resources`` ((type, name) -> JSON); returns each one's status."""
    statuses = []
    for policy in policies:
        status = PolicyStatus(policy.ref)
        missing: list[str] = []
        for index, patch in enumerate(policy.patches):
            resource = resources.get((patch.type, patch.name))
            if resource is None:
                missing.append(f"{patch.type.rsplit('.', 1)[-1]}/{patch.name}")
                continue
            trial = copy.deepcopy(resource)
            try:
                for pointer in pointers(trial, patch):
                    apply_operation(trial, patch, pointer)
            except PatchError as exc:
                status.status, status.reason = False, "Invalid"
                status.messages.append(f"jsonPatches[{index}]: {exc}")
                continue
            resource.clear()
            resource.update(trial)
        if missing:
            status.status, status.reason = False, "ResourceNotFound"
            status.messages.append(f"unable to find xds resources: {', '.join(missing)}")
        statuses.append(status)
    return statuses
