"""A small in-process Kubernetes API for the installer's tests: discovery, get, list (label
selectors), server-side apply (dry run included), pod logs, /version.

It is as strict as a real API server where the installer's logic depends on it:

- custom resources are served only at the versions their CRD serves (``crd_object``: the
  catalogue's served versions and scope, which the tests compare with the real CRDs where those
  are on the machine), and an applied object is validated as the API server would: against the
  pinned releases' real schemas when ``scripts/upstream-schemas`` has fetched them (or against the
  small CRDs of our own tests, ``tests/cluster/schemas``, when a test sets ``data``), otherwise
  against the catalogue only (kind, served version, scope, metadata). A field the schema does not
  declare, a wrong type or a list entry without its key is answered with HTTP 500 "failed to
  create typed patch object" (server-side apply's conversion), any other violation with HTTP 422
  "is invalid" and the causes; built-in kinds likewise against Kubernetes' schema;
- a namespaced object needs its namespace (404 otherwise);
- server-side apply tracks which field manager owns which fields: a field the manager applied
  before and leaves out now is removed, unless another manager owns it too;
- an admission webhook can be "not serving yet" (500 "failed calling webhook") or deny (its code).

It plays the controllers too, just enough for waits: an object of a kind with a readiness notion
(Deployment, CRD, Gateway, InferenceService...) reports ready after a configurable number of
reads, or never. Served on 127.0.0.1 only, on a free port, by a thread of the test process.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from inferbox.cluster import catalog, upstream, validation
from inferbox.cluster.kube import APPLY_PATCH, KubeApi
from inferbox.cluster.versions import load_versions

# (apiVersion, kind) -> (plural, namespaced) of the built-in kinds the installer touches.
BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Event"): ("events", True),
    ("v1", "ResourceQuota"): ("resourcequotas", True),
    ("v1", "LimitRange"): ("limitranges", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
}
KUBERNETES = "v1.32.5"
# The pinned releases' schemas, when they are on this machine (None: the catalogue only).
PINNED = upstream.find(load_versions(environ={}))

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace ("" when cluster-scoped), name
Path = tuple[str, ...]  # a field of an object, as its keys from the top


def crd_object(kind: catalog.CrdKind) -> dict[str, Any]:
    """The CRD of a catalogue kind as the pinned release defines it: its scope and the versions it
    serves (the first marked as storage, which the installer never looks at). Objects of the kind
    are validated against the real schemas all the same when they are on the machine
    (``FakeCluster.data``)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name},
        "spec": {
            "group": kind.group,
            "names": {"kind": kind.kind, "plural": kind.plural},
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [{"name": v, "served": True, "storage": i == 0} for i, v in enumerate(kind.served)],
        },
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


# Fields of an object that server-side apply never hands to a field manager.
UNOWNED: frozenset[Path] = frozenset(
    {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"), ("metadata", "managedFields")}
)


def leaves(value: Any, prefix: Path = ()) -> set[Path]:
    """The fields an applied configuration sets: every map key down to scalars and lists (a list is
    owned whole, as an atomic list is)."""
    if isinstance(value, dict) and value:
        out: set[Path] = set()
        for key, child in value.items():
            out |= leaves(child, (*prefix, str(key)))
        return out
    return {prefix} if prefix not in UNOWNED and prefix[:1] != ("status",) else set()


def _merge(base: Any, patch: Any) -> Any:
    """Maps merge, everything else is replaced (lists are atomic here)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base.get(key), value)
        return out
    return copy.deepcopy(patch)


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as validated: the status is the controllers' (a subresource), not the applier's."""
    return {k: v for k, v in obj.items() if k != "status"}


def _remove(obj: dict[str, Any], path: Path) -> None:
    """Deletes a field, and the maps it leaves empty."""
    node: Any = obj
    trail = []
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        trail.append((node, key))
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, key in reversed(trail):
        if parent[key] == {}:
            del parent[key]


@dataclass
class Webhook:
    """An admission webhook that fails ``failures`` times (or forever with -1), then admits."""

    group: str
    failures: int
    rejects: bool = False  # answers, but denies (a wrong probe)
    # The code a denying webhook answers with: 0 is none, which the API server turns into 403;
    # some webhooks deny with 500 (controller-runtime's admission.Errored).
    code: int = 0


@dataclass
class FakeCluster:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    reads: dict[Key, int] = field(default_factory=dict)
    changes: dict[Key, int] = field(default_factory=dict)
    ready_after: dict[str, int] = field(default_factory=dict)  # "Kind" or "Kind ns/name" -> reads
    never_ready: set[str] = field(default_factory=set)  # "Kind ns/name"
    webhooks: list[Webhook] = field(default_factory=list)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)  # bodies applied (not dry runs), in order
    authorizations: list[str] = field(default_factory=list)
    owners: dict[Key, dict[str, set[Path]]] = field(default_factory=dict)  # server-side apply ownership
    require_namespaces: bool = True
    # The schemas applied objects are validated against (None: custom resources by the catalogue).
    data: upstream.UpstreamData | None = PINNED
    deleted: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, namespace, name, grace
    lock: threading.RLock = field(default_factory=threading.RLock)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    # -- resources ------------------------------------------------------------------------------
    def resources(self, api_version: str) -> dict[str, tuple[str, bool]]:
        """kind -> (plural, namespaced) served at ``api_version``: built-ins, plus CRDs that exist."""
        found = {kind: info for (av, kind), info in BUILTIN.items() if av == api_version}
        group, _, version = api_version.rpartition("/")
        with self.lock:
            for (_av, kind, _, _), obj in self.objects.items():
                if kind != "CustomResourceDefinition":
                    continue
                spec = obj.get("spec") or {}
                served = [v["name"] for v in spec.get("versions", []) if v.get("served")]
                if spec.get("group") == group and version in served:
                    names = spec["names"]
                    found[names["kind"]] = (names["plural"], spec.get("scope") == "Namespaced")
        return found

    def _kind_for(self, api_version: str, plural: str) -> tuple[str, bool] | None:
        for kind, (name, namespaced) in self.resources(api_version).items():
            if name == plural:
                return kind, namespaced
        return None

    # -- objects --------------------------------------------------------------------------------
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Stores an object as a controller or test would create it (no admission)."""
        meta = body.setdefault("metadata", {})
        key = (body["apiVersion"], body["kind"], meta.get("namespace", ""), meta["name"])
        with self.lock:
            meta.setdefault("generation", 1)
            self.objects[key] = body
        return body

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get((api_version, kind, namespace, name))

    def find(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self.lock:
            for (_, k, ns, n), obj in self.objects.items():
                if (k, ns, n) == (kind, namespace, name):
                    return obj
        return None

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        with self.lock:
            return iter([o for (_, k, _, _), o in self.objects.items() if k == kind])

    def _admit(self, body: dict[str, Any], resource: str) -> tuple[int, dict[str, Any]] | None:
        """What the admission webhooks of the object's group say (None: admitted)."""
        group = body["apiVersion"].rpartition("/")[0]
        name = body["metadata"].get("name", "")
        for hook in self.webhooks:
            if hook.group != group:
                continue
            if hook.rejects:
                code = hook.code or 403
                denied = f'admission webhook "{group or "core"}.example" denied the request: bad probe'
                prefix = "Internal error occurred" if code == 500 else f'{resource} "{name}" is forbidden'
                reason = "InternalError" if code == 500 else "Forbidden"
                return code, _status(code, reason, f"{prefix}: {denied}")
            if hook.failures != 0:
                hook.failures -= 1 if hook.failures > 0 else 0
                message = f'Internal error occurred: failed calling webhook "{group}": connect: connection refused'
                return 500, _status(500, "InternalError", message)
        return None

    def _validate(self, body: dict[str, Any], resource: str) -> tuple[int, dict[str, Any]] | None:
        """The API server's checks of an applied object, with its status codes and wording."""
        meta = body.get("metadata") or {}
        name = meta.get("name", "")
        group, _, version = body["apiVersion"].rpartition("/")
        checked = validation.check(body, KUBERNETES, self.data)
        if not checked.problems:
            return None
        gvk = f"{body['apiVersion'] if group else '/' + version}, Kind={body['kind']}"
        where = f"{meta.get('namespace', '')}/{name}"
        first = checked.problems[0]
        if checked.typed or (group in validation.BUILTIN_GROUPS and "Additional properties" in first.message):
            # Server-side apply converts the patch to the schema's types first, and fails there.
            message = f"failed to create typed patch object ({where}; {gvk}): .{first.path}: {first.message}"
            return 500, {"kind": "Status", "status": "Failure", "code": 500, "reason": "", "message": message}
        qualified = f"{body['kind']}.{group}" if group else body["kind"]
        causes = [{"reason": "FieldValueInvalid", "message": p.message, "field": p.path} for p in checked.problems]
        listed = ", ".join(f"{p.path}: {p.message}" for p in checked.problems)
        status = _status(422, "Invalid", f'{qualified} "{name}" is invalid: [{listed}]')
        status["details"] = {"name": name, "group": group, "kind": resource, "causes": causes}
        return 422, status

    def apply(
        self, body: dict[str, Any], dry_run: bool, manager: str = "test", resource: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """Server-side apply of ``body`` by ``manager``: admission, validation, then the merge."""
        meta = body["metadata"]
        namespace = meta.get("namespace", "")
        if namespace and self.require_namespaces and self.get("v1", "Namespace", namespace) is None:
            return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
        key = (body["apiVersion"], body["kind"], namespace, meta["name"])
        with self.lock:
            current = self.objects.get(key)
            owners = {m: set(f) for m, f in self.owners.get(key, {}).items()}
            applied = leaves(body)
            merged = copy.deepcopy(current) if current is not None else {}
            # Fields this manager applied before and leaves out now are removed, unless shared.
            for path in owners.get(manager, set()) - applied:
                if not any(path in fields for other, fields in owners.items() if other != manager):
                    _remove(merged, path)
            merged = _merge(merged, body)
        # As the API server: a partial apply (only the fields one manager owns) is validated as the
        # object it makes together with the fields of the others, not on its own.
        refused = self._validate(_without_status(merged), resource or body["kind"].lower()) or self._admit(
            body, resource
        )
        if refused is not None:
            return refused
        with self.lock:
            for other in owners:
                owners[other] -= applied  # force: the applier takes the fields over
            owners[manager] = applied
            merged["metadata"].setdefault("generation", 1)
            if current is not None and merged.get("spec") != current.get("spec"):
                merged["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
            if not dry_run:
                self.applied.append(copy.deepcopy(body))
                if current != merged:
                    self.changes[key] = self.changes.get(key, 0) + 1
                self.objects[key] = merged
                self.owners[key] = owners
        return (201 if current is None else 200), merged

    # -- controllers ----------------------------------------------------------------------------
    def _ready_status(self, obj: dict[str, Any], ready: bool) -> dict[str, Any]:
        kind, spec = obj["kind"], obj.get("spec") or {}
        state = "True" if ready else "False"

        def cond(kind_: str, reason: str = "") -> dict[str, str]:
            return {"type": kind_, "status": state, "reason": reason or ("Ready" if ready else "NotReady")}

        if kind == "CustomResourceDefinition":
            return {"conditions": [cond("Established")]}
        if kind == "Deployment":
            want = int(spec.get("replicas", 1))
            have = want if ready else 0
            return {
                "observedGeneration": obj["metadata"].get("generation", 1),
                "replicas": want,
                "updatedReplicas": want,
                "availableReplicas": have,
                "readyReplicas": have,
                "conditions": [
                    cond("Available", "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable")
                ],
            }
        if kind == "StatefulSet":
            return {"readyReplicas": int(spec.get("replicas", 1)) if ready else 0}
        if kind == "DaemonSet":
            return {"desiredNumberScheduled": 3, "numberReady": 3 if ready else 0}
        if kind == "Node":
            return {"conditions": [cond("Ready")]}
        if kind in ("Gateway", "GatewayClass"):
            return {"conditions": [cond("Accepted"), cond("Programmed")]}
        if kind in ("HTTPRoute", "GRPCRoute"):
            return {
                "parents": [
                    {"parentRef": ref, "conditions": [cond("Accepted"), cond("ResolvedRefs")]}
                    for ref in spec.get("parentRefs") or []
                ]
            }
        if kind.endswith("Policy") and obj["apiVersion"].startswith("gateway.envoyproxy.io"):
            refs = spec.get("targetRefs") or [spec.get("targetRef")]
            return {"ancestors": [{"ancestorRef": r, "conditions": [cond("Accepted")]} for r in refs if r]}
        if kind in ("InferenceService", "Certificate"):
            status = {
                **dict(obj.get("status") or {}),
                "conditions": [cond("Ready", "" if ready else "RevisionMissing")],
            }
            if kind == "InferenceService" and ready and "components" not in status:
                # KServe records the revision it rolled out; a test may set its own components instead.
                revision = f"{obj['metadata']['name']}-predictor-{int(obj['metadata'].get('generation', 1)):05d}"
                status["components"] = {
                    "predictor": {"latestReadyRevision": revision, "latestRolledoutRevision": revision}
                }
            return status
        return dict(obj.get("status") or {})

    def observe(self, key: Key) -> dict[str, Any]:
        """A read: counts it, and lets the simulated controller update the status."""
        with self.lock:
            obj = self.objects[key]
            self.reads[key] = self.reads.get(key, 0) + 1
            _api_version, kind, namespace, name = key
            label = f"{kind} {namespace + '/' if namespace else ''}{name}"
            needed = self.ready_after.get(label, self.ready_after.get(kind, 0))
            ready = label not in self.never_ready and self.reads[key] > needed
            obj["status"] = self._ready_status(obj, ready)
            return copy.deepcopy(obj)

    # -- server ---------------------------------------------------------------------------------
    def start(self) -> str:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: Any, text: bool = False) -> None:
                data = body.encode() if text else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                cluster._serve(self, "GET", None)

            def do_DELETE(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                cluster._serve(self, "DELETE", json.loads(self.rfile.read(length) or b"{}"))

            def do_PATCH(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                if self.headers.get("Content-Type") != APPLY_PATCH:
                    self._send(415, _status(415, "UnsupportedMediaType", "only server-side apply is served"))
                    return
                cluster._serve(self, "PATCH", json.loads(self.rfile.read(length) or b"{}"))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True, name="fake-kube").start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def api(self) -> KubeApi:
        return KubeApi(self.url, context="fake")

    # Complex on purpose: one branch per API verb and path form.
    def _serve(self, handler: Any, method: str, body: Any) -> None:  # noqa: C901
        parsed = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        parts = [p for p in parsed.path.split("/") if p]
        self.requests.append((method, handler.path))
        self.authorizations.append(str(handler.headers.get("Authorization", "")))
        if parts == ["version"]:
            handler._send(200, {"gitVersion": "v1.32.5"})
            return
        if parts and parts[0] == "api":
            api_version, rest = parts[1], parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            handler._send(404, _status(404, "NotFound", "no such path"))
            return
        if not rest:  # discovery
            served = self.resources(api_version)
            if not served:
                handler._send(404, _status(404, "NotFound", f"no API {api_version}"))
                return
            resources = [
                {"name": p, "kind": k, "namespaced": n, "verbs": ["get", "list", "patch"]}
                for k, (p, n) in served.items()
            ]
            handler._send(200, {"kind": "APIResourceList", "groupVersion": api_version, "resources": resources})
            return
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        found = self._kind_for(api_version, rest[0])
        if found is None:
            handler._send(404, _status(404, "NotFound", f"the server could not find the requested resource {rest[0]}"))
            return
        kind, _ = found
        name = rest[1] if len(rest) > 1 else None
        if method == "GET" and name is None:
            handler._send(200, {"kind": f"{kind}List", "items": self._list(api_version, kind, namespace, query)})
            return
        if method == "GET" and len(rest) == 3 and rest[2] == "log":
            text = self.logs.get((namespace, name or "", query.get("container", "")), "log line\n")
            handler._send(200, text, text=True)
            return
        key = (api_version, kind, namespace, name or "")
        if method == "GET":
            with self.lock:
                if key not in self.objects:
                    handler._send(404, _status(404, "NotFound", f'{rest[0]} "{name}" not found'))
                    return
            handler._send(200, self.observe(key))
            return
        if method == "DELETE":
            self._delete(handler, key, query.get("gracePeriodSeconds", ""))
            return
        if "fieldManager" not in query:
            handler._send(422, _status(422, "Invalid", "PATCH is not supported without fieldManager"))
            return
        if (body.get("metadata") or {}).get("name") != name or body.get("kind") != kind:
            handler._send(400, _status(400, "BadRequest", "the name or kind of the object does not match the URL"))
            return
        status, result = self.apply(body, query.get("dryRun") == "All", query["fieldManager"], rest[0])
        handler._send(status, result)
        return

    def _delete(self, handler: Any, key: Key, grace: str) -> None:
        with self.lock:
            gone = self.objects.pop(key, None)
            self.deleted.append((key[1], key[2], key[3], grace))
        if gone is None:
            handler._send(404, _status(404, "NotFound", f'{key[1]} "{key[3]}" not found'))
        else:
            handler._send(200, gone)

    def _list(self, api_version: str, kind: str, namespace: str, query: dict[str, str]) -> list[dict[str, Any]]:
        wanted = dict(p.split("=", 1) for p in query.get("labelSelector", "").split(",") if "=" in p)
        out = []
        with self.lock:
            keys = [
                k for k in self.objects if k[0] == api_version and k[1] == kind and (not namespace or k[2] == namespace)
            ]
        for key in keys:
            obj = self.observe(key)
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                out.append(obj)
        return out


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}
