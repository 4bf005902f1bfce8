"""The mesh's certificate authority on the embedded target (what istiod's CA does on a cluster).

One root CA per platform instance issues every workload a short-lived certificate whose only
identity is a SPIFFE URI SAN, spiffe://<trust domain>/ns/<namespace>/sa/<service account>, usable
for both ends of mutual TLS. Keys are ECDSA P-256 (fast to generate: a replica's sidecar gets its
certificate when the replica starts). Files live under the platform's state folder.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_LIFETIME = dt.timedelta(hours=24)  # Istio's default workload certificate lifetime


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class IssuedCert:
    cert: Path
    key: Path
    spiffe_id: str


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A root CA whose key and certificate are files in ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.cert_path = directory / f"{name}.pem"
        self.key_path = directory / f"{name}-key.pem"
        if not self.cert_path.exists():
            self._create()
        self.cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        self.key = loaded

    def _create(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "inferbox"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.name),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.key_path, _key_pem(key))
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    @property
    def pem(self) -> bytes:
        return self.cert_path.read_bytes()

    def issue(self, identity: str, out_dir: Path, name: str) -> IssuedCert:
        """A workload certificate for the SPIFFE ID ``identity`` (server and client auth)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "inferbox")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CERT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            # SPIFFE: the URI SAN is the identity; it is critical when the subject is empty of names.
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        issued = IssuedCert(out_dir / f"{name}.pem", out_dir / f"{name}-key.pem", identity)
        _write_private(issued.key, _key_pem(key))
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return issued


class MeshPKI:
    """The platform CA, the trust bundle every sidecar uses, and workload certificates.

    ``rogue_issuer`` (a target knob, for a mutant) makes a second, unrelated CA issue the workload
    certificates and adds it to the trust bundle: serving still works, but the certificates are not
    signed by the platform CA.
    """

    def __init__(self, directory: Path, trust_domain: str, rogue_issuer: bool = False) -> None:
        self.directory = directory
        self.trust_domain = trust_domain
        directory.mkdir(parents=True, exist_ok=True)
        self.root = CertificateAuthority(directory, "mesh-root-ca")
        self.issuer = CertificateAuthority(directory, "rogue-ca") if rogue_issuer else self.root
        self.bundle_path = directory / "trust-bundle.pem"
        bundle = self.root.pem + (self.issuer.pem if self.issuer is not self.root else b"")
        self.bundle_path.write_bytes(bundle)

    def spiffe_id(self, namespace: str, service_account: str) -> str:
        return spiffe_id(self.trust_domain, namespace, service_account)

    def issue(self, namespace: str, service_account: str, name: str) -> IssuedCert:
        return self.issuer.issue(self.spiffe_id(namespace, service_account), self.directory / "workloads", name)

    def foreign_ca(self) -> CertificateAuthority:
        """A CA nobody in the platform trusts (for checks that a foreign client certificate is refused)."""
        return CertificateAuthority(self.directory / "foreign", "foreign-ca")
