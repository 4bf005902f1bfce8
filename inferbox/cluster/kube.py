"""A small typed client for the Kubernetes API: read, server-side apply (also as a dry run), list,
pod logs. Every kind is addressed as ``apiVersion`` + ``kind``; paths come from API discovery.

The official ``kubernetes`` package loads the kubeconfig (certificates, tokens, exec plugins and
their refresh); requests go through httpx. Its own generic-call API changed shape between the
client versions we allow (30 to 37), and server-side apply of arbitrary kinds needs a content type
its typed methods do not choose reliably, so the few REST calls we need are made here directly.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx

from inferbox.errors import InferboxError

FIELD_MANAGER = "inferbox"
# Release YAML of upstream components is applied under its own manager, so that the objects we and
# upstream both touch (Knative's config-domain) keep each owner's keys on every re-run.
UPSTREAM_FIELD_MANAGER = "inferbox-upstream"


class KubeError(Exception):
    """The API server refused a request (or could not be reached)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class KubeApi:
    """One cluster, as one base URL with a way to authenticate each request."""

    def __init__(
        self,
        base_url: str,
        auth_headers: Callable[[], Mapping[str, str]] = dict,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 30.0,
        context: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.context = context
        self._auth_headers = auth_headers
        self._http = httpx.Client(base_url=self.base_url, verify=verify, timeout=timeout_s)
        self._discovery: dict[str, dict[str, Resource]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, context: str | None = None, kubeconfig: str | None = None) -> KubeApi:
        from kubernetes import client as kclient
        from kubernetes import config as kconfig
        from kubernetes.config.config_exception import ConfigException

        cfg = kclient.Configuration()
        try:
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]  # the package ships no types
                config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
            )
        except (ConfigException, FileNotFoundError) as exc:
            raise InferboxError(
                f"cannot load kube context {context or '(current)'}: {exc}",
                "check `kubectl config get-contexts`; pass --kube-context NAME",
            ) from exc
        verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if not cfg.verify_ssl:  # the kubeconfig says insecure-skip-tls-verify
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            verify.load_cert_chain(cfg.cert_file, cfg.key_file)

        def headers() -> dict[str, str]:
            # Called per request: the client's refresh hook renews exec/OIDC tokens here. The key
            # the token is stored under differs between client versions; auth_settings() hides it.
            settings = cast(dict[str, dict[str, Any]], cfg.auth_settings())
            return {
                str(s["key"]): str(s["value"]) for s in settings.values() if s.get("in") == "header" and s.get("value")
            }

        return cls(cfg.host, headers, verify, context=context or "")

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        headers = {"Accept": "application/json", **self._auth_headers()}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        try:
            return self._http.request(method, path, params=params, headers=headers, content=content)
        except httpx.HTTPError as exc:
            raise KubeError(0, f"{method} {self.base_url}{path}: {exc}", "Unreachable") from exc

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            status = response.json()
            message, reason = str(status.get("message", "")), str(status.get("reason", ""))
        except ValueError:
            message, reason = response.text[:500], ""
        raise KubeError(response.status_code, message, reason)

    # -- discovery ------------------------------------------------------------------------------
    def resource(self, api_version: str, kind: str) -> Resource:
        """Plural and scope of a kind, from discovery (re-read once when the kind is new)."""
        for refresh in (False, True):
            with self._lock:
                known = self._discovery.get(api_version)
            if known is None or refresh:
                known = self._discover(api_version)
            if kind in known:
                return known[kind]
        raise KubeError(404, f"the server has no kind {kind} in {api_version}", "NotFound")

    def _discover(self, api_version: str) -> dict[str, Resource]:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        response = self._request("GET", path)
        if response.status_code == 404:
            found: dict[str, Resource] = {}
        else:
            self._raise_for(response)
            found = {
                r["kind"]: Resource(api_version, r["kind"], r["name"], bool(r["namespaced"]))
                for r in response.json().get("resources", [])
                if "/" not in r["name"]
            }
        with self._lock:
            self._discovery[api_version] = found
        return found

    def path(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        res = self.resource(api_version, kind)
        root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if res.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        elif res.namespaced and name:
            raise KubeError(400, f"{kind} {name} is namespaced: give it a namespace", "BadRequest")
        root += f"/{res.plural}"
        return f"{root}/{name}" if name else root

    # -- reads ----------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it (or its kind) does not exist."""
        try:
            path = self.path(api_version, kind, namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        response = self._request("GET", path)
        if response.status_code == 404:
            return None
        self._raise_for(response)
        body: dict[str, Any] = response.json()
        return body

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        res = self.resource(api_version, kind)
        path = self.path(api_version, kind, namespace if res.namespaced else None)
        response = self._request("GET", path, params={"labelSelector": selector} if selector else None)
        if response.status_code == 404:
            return []
        self._raise_for(response)
        items: list[dict[str, Any]] = response.json().get("items", [])
        return items

    def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int = 500, previous: bool = False) -> str:
        params = {"container": container, "tailLines": str(tail_lines)}
        if previous:
            params["previous"] = "true"
        response = self._request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params=params)
        self._raise_for(response)
        return response.text

    def server_version(self) -> str:
        response = self._request("GET", "/version")
        self._raise_for(response)
        return str(response.json().get("gitVersion", "unknown"))

    # -- writes ---------------------------------------------------------------------------------
    def apply(
        self, body: Mapping[str, Any], field_manager: str = FIELD_MANAGER, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply (creates or converges; ``force`` takes over fields from other managers)."""
        meta = body.get("metadata") or {}
        path = self.path(str(body["apiVersion"]), str(body["kind"]), meta.get("namespace"), meta["name"])
        # Strict: the API server refuses a field the schema does not declare instead of dropping it
        # with a warning (its default), so a misspelt field can never be silently ignored.
        params = {"fieldManager": field_manager, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        response = self._request("PATCH", path, params=params, body=dict(body), content_type=APPLY_PATCH)
        self._raise_for(response)
        result: dict[str, Any] = response.json()
        return result

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, grace_s: int | None = None
    ) -> bool:
        """Deletes an object (``grace_s``: its termination grace period; 0 kills a pod at once).
        False when it did not exist."""
        path = self.path(api_version, kind, namespace, name)
        params = {"gracePeriodSeconds": str(grace_s)} if grace_s is not None else None
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            **({"gracePeriodSeconds": grace_s} if grace_s is not None else {}),
        }
        response = self._request("DELETE", path, params=params, body=body)
        if response.status_code == 404:
            return False
        self._raise_for(response)
        return True


APPLY_PATCH = "application/apply-patch+yaml"


def ref(body: Mapping[str, Any]) -> str:
    """``Kind namespace/name`` of an object body, for messages."""
    meta = body.get("metadata") or {}
    where = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
    return f"{body.get('kind')} {where}"


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of ``kind`` (Ready, Available, ...), or None."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    return None


def is_true(obj: Mapping[str, Any] | None, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and str(cond.get("status")) == "True"


# What the API server says when it could not reach an admission webhook (as opposed to a webhook
# that answered and denied: "admission webhook ... denied the request", which waiting cannot fix).
WEBHOOK_UNREACHABLE = (
    "failed calling webhook",
    "no endpoints available for service",
    "connection refused",
    "context deadline exceeded",
    "i/o timeout",
)


def webhook_not_ready(error: KubeError) -> bool:
    """An admission webhook that is not serving yet, or the API server itself busy: retry.

    Only these answers are transient: no answer at all (0), 429 (throttled), 502/503/504, and a 500
    whose message says a webhook could not be called. Any other 500 is a refusal: server-side
    apply's "failed to create typed patch object" (an unknown field, a wrong type, a list entry
    without its key) and a webhook's own denial come back as 500 too, and must fail at once.
    """
    text = error.message.lower()
    if "denied the request" in text:
        return False
    if error.status in (0, 429, 502, 503, 504):
        return True
    return error.status == 500 and any(marker in text for marker in WEBHOOK_UNREACHABLE)
