"""Mutual TLS inside the platform: tenant workloads accept only the mesh's own certificates.

Each refusal sits beside its allowed twin from the same caller (the same request over the mesh's
mutual TLS is answered), so a refusal for another reason cannot pass for the one checked. Callers
are those the network lets through (the gateway's hop and the model's own tenant), so what refuses
is the workload's sidecar, not a network policy.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from inferbox.contract import Capability, Feature, Platform
from inferbox.mesh import MeshClient, MeshSource, Outcome, Transport, Workload
from inferbox.topology import Model
from inferbox.waiting import eventually

from ._mesh import convergence_s, mesh_clients, workloads_of

pytestmark = [
    pytest.mark.usefixtures("models_held_warm"),
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.MESH_MTLS),
    pytest.mark.capability(Capability.MESH_PROBES),
]
__all__ = ["mesh_clients"]


def _callers(model: Model) -> list[MeshSource]:
    return [MeshSource.gateway(), MeshSource.in_tenant(model.tenant)]


def _refused_beside_twin(
    clients: dict[str, MeshClient], model: Model, workloads: list[Workload], token: str, transport: Transport
) -> None:
    failures = []
    for source in _callers(model):
        for workload in workloads:
            for _, port in workload.ports:
                client = clients[source.label]
                path = f"/v1/models/{model.name}"
                twin = client.request(workload, port, "GET", path, token=token)
                probe = client.request(workload, port, "GET", path, token=token, transport=transport)
                if not twin.answered:
                    failures.append(
                        f"{source.label} -> {workload.name}:{port} over mTLS was not answered: {twin.describe()}"
                    )
                if probe.outcome is not Outcome.TRANSPORT_REFUSED:
                    failures.append(f"{source.label} -> {workload.name}:{port} {transport.value}: {probe.describe()}")
    assert not failures, "\n".join(failures)


def test_plaintext_to_a_strict_workload_fails(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model, token_for: Callable[[str], str]
) -> None:
    assert platform.profile.require_mesh().mtls == "STRICT", "the profile promises STRICT mutual TLS"
    workloads = workloads_of(platform, model)
    eventually(
        lambda: _refused_beside_twin(mesh_clients, model, workloads, token_for(model.tenant), Transport.PLAINTEXT),
        timeout_s=convergence_s(platform),
        interval_s=0.5,
    )


def test_foreign_ca_client_certificates_are_refused(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model, token_for: Callable[[str], str]
) -> None:
    workloads = workloads_of(platform, model)
    eventually(
        lambda: _refused_beside_twin(mesh_clients, model, workloads, token_for(model.tenant), Transport.FOREIGN_CA),
        timeout_s=convergence_s(platform),
        interval_s=0.5,
    )


def _signed_by(cert: x509.Certificate, anchors: list[x509.Certificate]) -> bool:
    for anchor in anchors:
        if cert.issuer != anchor.subject:
            continue
        key = anchor.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                assert cert.signature_hash_algorithm is not None
                key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
            elif isinstance(key, rsa.RSAPublicKey):
                assert cert.signature_hash_algorithm is not None
                key.verify(
                    cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
                )
            else:
                continue
        except InvalidSignature:
            continue
        return True
    return False


def test_workload_certificates_carry_their_spiffe_id(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model
) -> None:
    """The presented chain: the leaf's only identity is spiffe://<trust domain>/ns/<ns>/sa/<sa>, it is
    valid now, and it is signed by the platform CA (through any intermediates presented)."""
    mesh = platform.profile.require_mesh()
    anchors = [x509.load_pem_x509_certificate(pem) for pem in platform.mesh_trust_anchors()]
    assert anchors, "the platform reports no mesh trust anchor"
    failures = []
    for workload in workloads_of(platform, model):
        for _, port in workload.ports:
            chain = [
                x509.load_der_x509_certificate(der) for der in mesh_clients["gateway"].peer_certificates(workload, port)
            ]
            assert chain, f"{workload.name}:{port} presented no certificate"
            leaf = chain[0]
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
            want = mesh.spiffe_id(workload.namespace, workload.service_account)
            if uris != [want]:
                failures.append(f"{workload.name}:{port} presents identities {uris}, expected [{want}]")
            now = dt.datetime.now(dt.UTC)
            if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
                failures.append(f"{workload.name}:{port} certificate is not valid now")
            # Walk up the presented chain; its top must be signed by a platform anchor.
            for child, parent in itertools.pairwise(chain):
                if not _signed_by(child, [parent]):
                    failures.append(f"{workload.name}:{port} chain is broken at {child.subject.rfc4514_string()}")
            if not _signed_by(chain[-1], anchors):
                failures.append(
                    f"{workload.name}:{port} certificate (issuer {chain[-1].issuer.rfc4514_string()}) "
                    "is not signed by the platform CA"
                )
    assert not failures, "\n".join(failures)
