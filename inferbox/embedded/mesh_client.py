"""Mesh clients on the embedded target: requests from a probe pod's network place, with its identity.

Connections start inside the probe's network namespace (``inferbox.embedded.netns``), never in the
host's. Each probe is done in three visible steps, so its result says how far it got: the TCP
connection (a NetworkPolicy drop times out), the TLS handshake with the source's certificate, and
the HTTP exchange (a STRICT sidecar closes a plaintext connection; with TLS 1.3 a refused client
certificate shows up as an alert on the first read).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import socket
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inferbox.embedded.netns import connect_in_netns
from inferbox.embedded.state import MeshState
from inferbox.errors import PlatformError
from inferbox.held_load import MAX_SECONDS, body_pieces
from inferbox.mesh import (
    MeshSource,
    Outcome,
    ProbeResult,
    SourceKind,
    SourcePlace,
    Transport,
    Workload,
    classify_http,
)
from inferbox.pki import CertificateAuthority, spiffe_id

# A connection inside one machine's bridge takes well under a millisecond; a second is a drop.
CONNECT_TIMEOUT_S = float(os.environ.get("INFERBOX_MESH_CONNECT_TIMEOUT", "1.0"))
READ_TIMEOUT_S = 10.0
_FOREIGN_LOCK = threading.Lock()  # the foreign CA's files are created once, whichever probe comes first
TRANSPORT_ERRORS = (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


class EmbeddedMeshClient:
    def __init__(self, mesh_state: MeshState, source: MeshSource, borrowed: tuple[str, str] | None = None) -> None:
        self.source = source
        key = source.tenant if source.kind is SourceKind.TENANT else source.kind.value
        probes = mesh_state.probes
        if key not in probes:
            raise PlatformError(
                f"the embedded platform has no probe pod for {source.label}",
                "a tenant's probe pod is refused when its quota leaves no room for it; see logs/events.log",
            )
        probe = probes[key]
        self.place = SourcePlace(probe.namespace, dict(probe.labels), probe.identity)
        self.netns_path: str | None = probe.netns_path
        self.cert: str | None = probe.cert
        self.key: str | None = probe.key
        self.bundle: str = mesh_state.trust_bundle
        self.trust_domain: str = mesh_state.trust_domain
        self.foreign_dir = Path(mesh_state.foreign_ca_dir)
        self._foreign: tuple[str, str] | None = None
        if borrowed is not None:
            self.cert, self.key = self._borrowed_cert(Path(mesh_state.root_ca), *borrowed)

    # -- connections -----------------------------------------------------------------------------
    def _connect(self, host: str, port: int) -> socket.socket:
        if self.netns_path:
            return connect_in_netns(self.netns_path, host, port, CONNECT_TIMEOUT_S)
        return socket.create_connection((host, port), CONNECT_TIMEOUT_S)

    def _borrowed_cert(self, root_ca: Path, namespace: str, account: str) -> tuple[str, str]:
        """Another workload's identity, issued by the platform CA itself: the place stays this
        source's, only the certificate it presents changes."""
        ca = CertificateAuthority(root_ca.parent, root_ca.name.removesuffix(".pem"))
        out = self.foreign_dir.parent / "borrowed"
        issued = ca.issue(spiffe_id(self.trust_domain, namespace, account), out, f"{namespace}-{account}")
        return str(issued.cert), str(issued.key)

    def _foreign_cert(self) -> tuple[str, str]:
        """A client certificate with a plausible identity (this source's, or the gateway's) from a
        CA the platform does not know."""
        namespace = self.source.tenant or "istio-system"
        account = "inferbox-probe" if self.source.tenant else "istio-ingressgateway"
        with _FOREIGN_LOCK:
            if self._foreign is None:
                ca = CertificateAuthority(self.foreign_dir, "foreign-ca")
                identity = spiffe_id(self.trust_domain, namespace, account)
                issued = ca.issue(identity, self.foreign_dir, f"client-{namespace}-{self.source.kind.value}")
                self._foreign = (str(issued.cert), str(issued.key))
            return self._foreign

    def _tls_context(self, transport: Transport, verify: bool = True) -> ssl.SSLContext | None:
        if transport is Transport.PLAINTEXT:
            return None
        if transport is Transport.MESH and self.cert is None:
            return None  # outside the mesh there is no identity: plain HTTP
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # mesh identities are URI SANs, not host names
        if verify:
            ctx.load_verify_locations(self.bundle)
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if transport is Transport.FOREIGN_CA:
            ctx.load_cert_chain(*self._foreign_cert())
        elif self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    # -- the contract ----------------------------------------------------------------------------
    def request(
        self,
        workload: Workload,
        port: int,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        transport: Transport = Transport.MESH,
    ) -> ProbeResult:
        all_headers = dict(headers or {})
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = "application/json"
        return self._exchange(workload, port, method, path, token, all_headers, [body] if body else [], transport)

    def slow_request(
        self,
        workload: Workload,
        port: int,
        path: str,
        *,
        token: str,
        json: Any,
        seconds: float,
        stop: threading.Event,
    ) -> ProbeResult:
        """A POST over the mesh whose JSON body goes out in pieces over about ``seconds`` (a caller on
        a slow link): the request is in flight at the workload all that time. ``stop`` cuts the
        pauses short (the body is then sent at once)."""
        body = jsonlib.dumps(json).encode()
        pieces = body_pieces(body)
        pause = min(seconds, MAX_SECONDS) / max(1, len(pieces) - 1)
        headers = {"Content-Type": "application/json"}
        return self._exchange(workload, port, "POST", path, token, headers, pieces, Transport.MESH, pause, stop)

    def _exchange(
        self,
        workload: Workload,
        port: int,
        method: str,
        path: str,
        token: str | None,
        headers: dict[str, str],
        pieces: Sequence[bytes],
        transport: Transport,
        pause: float = 0.0,
        stop: threading.Event | None = None,
    ) -> ProbeResult:
        try:
            sock = self._connect(workload.address, port)
        except (TimeoutError, OSError) as exc:
            return ProbeResult(Outcome.NETWORK_DENIED, detail=f"connect: {exc}")
        try:
            ctx = self._tls_context(transport)
            if transport is Transport.MESH and not workload.sidecar:
                ctx = None  # auto mTLS: plaintext to a workload without a sidecar
            if ctx is not None:
                try:
                    sock = ctx.wrap_socket(sock)
                except (*TRANSPORT_ERRORS, OSError) as exc:
                    return ProbeResult(Outcome.TRANSPORT_REFUSED, detail=f"TLS handshake: {exc}")
            sock.settimeout(READ_TIMEOUT_S)
            conn = http.client.HTTPConnection(workload.address, port, timeout=READ_TIMEOUT_S)
            conn.sock = sock
            all_headers = {"Host": f"{workload.model or workload.name}.{workload.namespace}", **headers}
            if token is not None:
                all_headers["Authorization"] = f"Bearer {token}"
            try:
                conn.putrequest(method, path, skip_host=True)
                for name, value in all_headers.items():
                    conn.putheader(name, value)
                if pieces or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(sum(len(p) for p in pieces)))
                conn.endheaders()
                for i, piece in enumerate(pieces):
                    if i and pause and stop is not None:
                        stop.wait(pause)  # the caller's upload speed, not synchronisation
                    conn.send(piece)
                response = conn.getresponse()
                text = response.read().decode(errors="replace")
            except TRANSPORT_ERRORS as exc:
                return ProbeResult(Outcome.TRANSPORT_REFUSED, detail=f"{type(exc).__name__}: {exc}")
            except TimeoutError as exc:
                return ProbeResult(Outcome.ERROR, detail=f"no answer within {READ_TIMEOUT_S}s: {exc}")
            response_headers = {k.lower(): v for k, v in response.getheaders()}
            outcome = classify_http(response.status, text, response_headers)
            return ProbeResult(outcome, response.status, text)
        finally:
            sock.close()

    def peer_certificates(self, workload: Workload, port: int) -> list[bytes]:
        sock = self._connect(workload.address, port)
        try:
            ctx = self._tls_context(Transport.MESH if self.cert else Transport.FOREIGN_CA, verify=False)
            assert ctx is not None
            with ctx.wrap_socket(sock) as tls:
                der = tls.getpeercert(binary_form=True)
        finally:
            sock.close()
        if not der:
            raise PlatformError(f"{workload.label}:{port} presented no certificate", "check its sidecar's log")
        # The platform CA signs workload certificates directly, so the leaf is the whole chain.
        return [der]

    def close(self) -> None:
        return None
