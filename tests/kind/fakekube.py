"""A small in-process Kubernetes API for the installer's tests: discovery, get, list (label
selectors), server-side apply (create or merge, dry run), pod logs, /version.

It plays the controllers too, just enough for waits: an object of a kind with a readiness notion
(Deployment, CRD, Gateway, InferenceService...) reports ready after a configurable number of
reads, or never. It can also play an admission webhook that is not serving yet. Served on
127.0.0.1 only, on a free port, by a thread of the test process.
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

from inferbox.kind import catalog
from inferbox.kind.kube import KubeApi

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
CRD_VERSIONS = ("v1", "v1beta1", "v1alpha1", "v1alpha2", "v1alpha3")
CLUSTER_SCOPED_CRDS = {
    "GatewayClass",
    "ClusterServingRuntime",
    "ClusterStorageContainer",
    "ClusterIssuer",
    "ClusterDomainClaim",
}

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace ("" when cluster-scoped), name


def crd_object(kind: catalog.CrdKind) -> dict[str, Any]:
    """A minimal CRD for a catalog kind, served at every version the tests use."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name},
        "spec": {
            "group": kind.group,
            "names": {"kind": kind.kind, "plural": kind.plural},
            "scope": "Cluster" if kind.kind in CLUSTER_SCOPED_CRDS else "Namespaced",
            "versions": [{"name": v, "served": True, "storage": v == "v1"} for v in CRD_VERSIONS],
        },
    }


def _merge(base: Any, patch: Any) -> Any:
    """Server-side apply, simplified: maps merge, everything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base.get(key), value)
        return out
    return copy.deepcopy(patch)


@dataclass
class Webhook:
    """An admission webhook that fails ``failures`` times (or forever with -1), then admits."""

    group: str
    failures: int
    rejects: bool = False  # answers, but denies (a wrong probe)


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
                if spec.get("group") == group and any(v["name"] == version for v in spec.get("versions", [])):
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

    def apply(self, body: dict[str, Any], dry_run: bool) -> tuple[int, dict[str, Any]]:
        group = body["apiVersion"].rpartition("/")[0]
        for hook in self.webhooks:
            if hook.group == group:
                if hook.rejects:
                    return 400, _status(400, "BadRequest", f'admission webhook "{group}" denied the request: bad probe')
                if hook.failures != 0:
                    hook.failures -= 1 if hook.failures > 0 else 0
                    message = f'Internal error occurred: failed calling webhook "{group}": connect: connection refused'
                    return 500, _status(500, "InternalError", message)
        meta = body["metadata"]
        key = (body["apiVersion"], body["kind"], meta.get("namespace", ""), meta["name"])
        with self.lock:
            current = self.objects.get(key)
            merged = _merge(current or {}, body)
            merged["metadata"].setdefault("generation", 1)
            if current is not None and merged.get("spec") != current.get("spec"):
                merged["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
            if not dry_run:
                self.applied.append(copy.deepcopy(body))
                if current != merged:
                    self.changes[key] = self.changes.get(key, 0) + 1
                self.objects[key] = merged
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

    def _serve(self, handler: Any, method: str, body: Any) -> None:  # noqa: C901 - one branch per kind of request served
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
        status, result = self.apply(body, dry_run=query.get("dryRun") == "All")
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
