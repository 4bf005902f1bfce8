"""The mesh's pieces without processes: Istio and NetworkPolicy semantics, the independent evaluator,
sidecar bootstraps (validated by Envoy itself), nftables scripts, quotas, certificates, the subset."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from inferbox.embedded import netpol
from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.embedded.mesh_plan import PodMeta, mtls_mode, plan_sidecar
from inferbox.embedded.quota import QuotaExceeded, QuotaLedger, quantity
from inferbox.embedded.sidecar import SidecarFiles, SidecarPorts, render_sidecar
from inferbox.embedded.subset import check_supported
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet, parse_documents
from inferbox.mesh import Outcome, SourcePlace, Transport, Workload, classify_http
from inferbox.pki import MeshPKI
from inferbox.policy.evaluator import Request, expected
from inferbox.policy.matrix import Cell, report

TENANT_A = Workload("tenant-a", "sklearn-iris-0", "sklearn-iris", "default", "198.18.0.9", (("http", 8080),), {})
GATEWAY = SourcePlace(
    "istio-system",
    {"app": "istio-ingressgateway", "istio": "ingressgateway"},
    "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway",
)
OUTSIDE = SourcePlace("inferbox-outside", {"app": "inferbox-probe"}, None)
OWN = SourcePlace("tenant-a", {"app": "inferbox-probe"}, "spiffe://cluster.local/ns/tenant-a/sa/inferbox-probe")
OTHER = SourcePlace("tenant-b", {"app": "inferbox-probe"}, "spiffe://cluster.local/ns/tenant-b/sa/inferbox-probe")


def claims(tenant: str, aud: str = "inference-gateway") -> dict[str, Any]:
    return {"iss": "inference-in-a-box", "aud": aud, "sub": f"{tenant}-client", "tenant": tenant}


def with_objects(manifests: ManifestSet, text: str, drop: frozenset[tuple[str, str, str]] = frozenset()) -> ManifestSet:
    kept = tuple(o for o in manifests if (o.kind, o.namespace or "", o.name) not in drop)
    return ManifestSet(manifests.root, kept + tuple(parse_documents(text, "test.yaml")))


# -- the evaluator on the shipped manifests --------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "transport", "token", "outcome"),
    [
        (GATEWAY, Transport.MESH, claims("tenant-a"), Outcome.ANSWERED),
        (GATEWAY, Transport.MESH, claims("tenant-c"), Outcome.AUTHZ_DENIED),
        (GATEWAY, Transport.MESH, None, Outcome.AUTHZ_DENIED),
        (GATEWAY, Transport.MESH, claims("tenant-a", aud="other"), Outcome.AUTHN_DENIED),
        (GATEWAY, Transport.PLAINTEXT, claims("tenant-a"), Outcome.TRANSPORT_REFUSED),
        (GATEWAY, Transport.FOREIGN_CA, claims("tenant-a"), Outcome.TRANSPORT_REFUSED),
        (OWN, Transport.MESH, claims("tenant-a"), Outcome.ANSWERED),
        (OTHER, Transport.MESH, claims("tenant-b"), Outcome.NETWORK_DENIED),
        (OUTSIDE, Transport.MESH, claims("tenant-a"), Outcome.NETWORK_DENIED),
    ],
)
def test_the_evaluator_reads_the_shipped_policies(
    manifests: ManifestSet, source: SourcePlace, transport: Transport, token: dict[str, Any] | None, outcome: Outcome
) -> None:
    verdict = expected(manifests, source, TENANT_A, Request("GET", "/v1/models/sklearn-iris", 8080, transport, token))
    assert verdict.outcome is outcome, verdict.why


def test_a_header_keyed_policy_lets_a_spoofed_header_through(manifests: ManifestSet) -> None:
    policy = copy.deepcopy(manifests.get("AuthorizationPolicy", "tenant-isolation", "tenant-a").body)  # type: ignore[union-attr]
    policy["spec"]["rules"][0]["when"][0]["key"] = "request.headers[x-jwt-tenant]"
    mutated = with_objects(
        manifests, yaml.safe_dump(policy), frozenset({("AuthorizationPolicy", "tenant-a", "tenant-isolation")})
    )
    facts = Request("GET", "/", 8080, Transport.MESH, claims("tenant-c"), {"x-jwt-tenant": "tenant-a"})
    assert expected(mutated, GATEWAY, TENANT_A, facts).outcome is Outcome.ANSWERED
    assert expected(manifests, GATEWAY, TENANT_A, facts).outcome is Outcome.AUTHZ_DENIED


def test_without_network_policy_the_outside_reaches_the_sidecar(manifests: ManifestSet) -> None:
    drop = {
        ("NetworkPolicy", "tenant-a", "default-deny-ingress"),
        ("NetworkPolicy", "tenant-a", "allow-platform-ingress"),
    }
    mutated = ManifestSet(
        manifests.root, tuple(o for o in manifests if (o.kind, o.namespace or "", o.name) not in drop)
    )
    facts = Request("GET", "/", 8080, Transport.MESH, claims("tenant-a"))
    assert expected(mutated, OUTSIDE, TENANT_A, facts).outcome is Outcome.TRANSPORT_REFUSED


# -- Istio semantics of the embedded translation ---------------------------------------------------
def test_peer_authentication_precedence(manifests: ManifestSet) -> None:
    pod = PodMeta("tenant-a", "p", "default", {"app": "x"})
    assert mtls_mode(manifests, pod) == "STRICT"
    namespace_level = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ns, namespace: tenant-a}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: workload, namespace: tenant-a}
spec: {selector: {matchLabels: {app: x}}, mtls: {mode: DISABLE}}
"""
    both = with_objects(manifests, namespace_level)
    assert mtls_mode(both, pod) == "DISABLE"
    assert mtls_mode(both, PodMeta("tenant-a", "q", "default", {"app": "y"})) == "PERMISSIVE"
    assert mtls_mode(both, PodMeta("tenant-c", "q", "default", {})) == "STRICT"


@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE", "DISABLE"])
def test_sidecar_bootstraps_are_valid_envoy_config(manifests: ManifestSet, tmp_path: Path, mode: str) -> None:
    deny = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: tenant-a}
spec:
  action: DENY
  rules:
    - to: [{operation: {paths: ["/admin*"], notMethods: [GET], ports: ["8080"]}}]
      from: [{source: {notNamespaces: [tenant-a], requestPrincipals: ["*"]}}]
      when: [{key: "request.auth.claims[groups]", notValues: [admins]}]
"""
    mutated = with_objects(manifests, deny)
    plan = plan_sidecar(mutated, PodMeta("tenant-a", "p", "default", {}))
    plan = type(plan)(mode, plan.jwt_rules, plan.deny, plan.allow)
    pki = MeshPKI(tmp_path, "cluster.local")
    cert = pki.issue("tenant-a", "default", "w")
    bootstrap = render_sidecar(
        "w",
        plan,
        SidecarPorts(("127.0.0.1", 18080), ("127.0.0.1", 18081), 18082),
        SidecarFiles(str(cert.cert), str(cert.key), str(pki.bundle_path)),
        lambda ns, name, port: [("127.0.0.1", 1)],
    )
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump(bootstrap))
    done = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    chains = bootstrap["static_resources"]["listeners"][0]["filter_chains"]
    assert [c["name"] for c in chains] == {
        "STRICT": ["mtls"],
        "PERMISSIVE": ["mtls", "plaintext"],
        "DISABLE": ["plaintext"],
    }[mode]


def test_an_uninterpretable_condition_is_named(manifests: ManifestSet) -> None:
    policy = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: odd, namespace: tenant-a}
spec:
  rules: [{when: [{key: destination.ip, values: ["1.2.3.4"]}]}]
"""
    with pytest.raises(ManifestError, match=r"destination\.ip"):
        plan_sidecar(with_objects(manifests, policy), PodMeta("tenant-a", "p", "default", {}))


def test_network_policy_fields_outside_the_subset_are_named(manifests: ManifestSet) -> None:
    obj = manifests.get("NetworkPolicy", "allow-platform-ingress", "tenant-a")
    assert obj is not None
    body = copy.deepcopy(obj.body)
    body["spec"]["egress"] = [{}]
    with pytest.raises(ManifestError, match=r"spec\.egress"):
        check_supported(K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source))


# -- NetworkPolicy rules --------------------------------------------------------------------------
def test_nftables_rules_allow_exactly_the_policy_peers(manifests: ManifestSet) -> None:
    pods = [
        netpol.NetPod("tenant-a", "model", "198.18.0.10", {"serving.kserve.io/inferenceservice": "sklearn-iris"}),
        netpol.NetPod("tenant-a", "probe", "198.18.0.11", {"app": "inferbox-probe"}),
        netpol.NetPod("tenant-c", "probe-c", "198.18.0.12", {"app": "inferbox-probe"}),
        netpol.NetPod("istio-system", "gw", "198.18.0.2", {"app": "istio-ingressgateway", "istio": "ingressgateway"}),
        netpol.NetPod("inferbox-outside", "out", "198.18.0.13", {}),
    ]
    allowed = netpol.allowances(manifests, pods[0], pods)
    assert allowed is not None
    sources = {ip for a in allowed if a.sources for ip in a.sources}
    assert sources == {"198.18.0.10", "198.18.0.11", "198.18.0.2"}
    script = netpol.ruleset(allowed)
    assert "policy drop" in script
    assert "198.18.0.12" not in script
    assert "198.18.0.13" not in script
    assert netpol.allowances(manifests, pods[3], pods) is None  # istio-system has no policy: not isolated


# -- quotas, certificates, classification --------------------------------------------------------
def test_quantities() -> None:
    assert quantity("100m") * 10 == 1
    assert quantity("2Gi") == 2 * 2**30
    assert quantity("4") == 4
    with pytest.raises(ValueError, match="quantity"):
        quantity("ten")


def test_limit_range_max_refuses_a_container(manifests: ManifestSet) -> None:
    ledger = QuotaLedger(manifests)
    with pytest.raises(QuotaExceeded, match="maximum cpu"):
        ledger.admit("tenant-a", "big", [{"limits": {"cpu": "3"}}])
    ledger.admit("tenant-b", "small", [{}])  # LimitRange defaults fill in what the quota needs
    status = ledger.status("tenant-b")
    assert status is not None
    assert status[1]["pods"] == "1"
    assert status[1]["requests.cpu"] == "50m"


def test_workload_certificates_hold_only_the_spiffe_id(tmp_path: Path) -> None:
    pki = MeshPKI(tmp_path, "cluster.local")
    issued = pki.issue("tenant-c", "default", "w")
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/tenant-c/sa/default"]
    assert cert.issuer == pki.root.cert.subject
    rogue = MeshPKI(tmp_path / "r", "cluster.local", rogue_issuer=True).issue("tenant-c", "default", "w")
    assert x509.load_pem_x509_certificate(rogue.cert.read_bytes()).issuer != pki.root.cert.subject


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome"),
    [
        (403, "RBAC: access denied", {}, Outcome.AUTHZ_DENIED),
        (401, "Jwt is expired", {}, Outcome.AUTHN_DENIED),
        (403, "Audiences in Jwt are not allowed", {}, Outcome.AUTHN_DENIED),
        (200, "{}", {"content-type": "application/json"}, Outcome.ANSWERED),
        (503, "upstream connect error", {}, Outcome.ERROR),
    ],
)
def test_classification_of_sidecar_answers(status: int, body: str, headers: dict[str, str], outcome: Outcome) -> None:
    assert classify_http(status, body, headers) is outcome


def test_matrix_report_shows_both_tables_and_the_differences() -> None:
    cells = [Cell("tenant-a", "tenant-c/m:8080", "-", "A", "why"), Cell("gateway", "tenant-c/m:8080", "A", "A")]
    text = report(cells, "legend")
    assert text.count("tenant-a") >= 3
    assert "1 difference(s)" in text
    assert "expected -, observed A" in text


def test_the_profile_states_the_mesh_and_quota_promises(tmp_path: Path) -> None:
    from inferbox.errors import ProfileError
    from inferbox.profile import DEFAULT_PROFILE, load_profile

    profile = load_profile()
    mesh = profile.require_mesh()
    assert mesh.spiffe_id("tenant-a", "default") == "spiffe://cluster.local/ns/tenant-a/sa/default"
    assert mesh.callers["otherTenant"].connect is False
    assert mesh.callers["gateway"].answered is True
    assert profile.require_quota().max_pods_per_tenant >= 1
    data = yaml.safe_load(DEFAULT_PROFILE.read_text())
    del data["spec"]["mesh"]["callers"]["outsideMesh"]
    broken = tmp_path / "profile.yaml"
    broken.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="outsideMesh"):
        load_profile(broken)
