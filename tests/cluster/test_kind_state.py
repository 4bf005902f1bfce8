"""The JWT material the installer generates, keeps, restores and publishes as Secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from inferbox.cluster.kube import KubeApi
from inferbox.cluster.state import ClusterState, ensure_jwt_material, jwt_secrets
from inferbox.cluster.validation import check_object
from inferbox.jwtserver.clients import ClientRegistry, read_credentials
from inferbox.jwtserver.keystore import KeyStore
from tests.cluster.fakekube import FakeCluster, namespace

TENANTS = ["tenant-a", "tenant-b", "tenant-c"]


def test_material_is_generated_once_then_kept(tmp_path: Path) -> None:
    state = ClusterState(tmp_path / "s")
    assert ensure_jwt_material(state, None, TENANTS) == "generated"
    kid = KeyStore(state.keys_dir).active().kid
    assert ensure_jwt_material(state, None, TENANTS) == "kept"
    assert KeyStore(state.keys_dir).active().kid == kid
    assert oct(state.root.stat().st_mode & 0o777) == "0o700"
    credentials = read_credentials(state.credentials_file)
    assert set(credentials) == set(TENANTS)
    registry = ClientRegistry(state.clients_file)
    assert registry.authenticate(credentials["tenant-a"].client_id, credentials["tenant-a"].client_secret) is not None


def test_secrets_carry_the_jwt_servers_file_layout_and_validate(tmp_path: Path) -> None:
    state = ClusterState(tmp_path / "s")
    ensure_jwt_material(state, None, TENANTS)
    keys, clients, credentials = jwt_secrets(state)
    kid = KeyStore(state.keys_dir).active().kid
    assert set(keys["data"]) == {"keys.json", f"{kid}.pem"}
    assert json.loads(base64.b64decode(keys["data"]["keys.json"]))["active"] == kid
    assert set(clients["data"]) == {"clients.json"}
    assert set(credentials["data"]) == {"credentials.json"}
    for secret in (keys, clients, credentials):
        assert check_object(secret, "v1.32.5", None) == []  # built-in kinds need no upstream data
        assert secret["metadata"]["namespace"] == "inference-system"


def test_material_is_restored_from_the_cluster_when_the_local_copy_is_gone(
    tmp_path: Path, fake_cluster: FakeCluster, fake_api: KubeApi
) -> None:
    first = ClusterState(tmp_path / "first")
    ensure_jwt_material(first, None, TENANTS)
    fake_cluster.put(namespace("inference-system"))
    for secret in jwt_secrets(first):
        fake_api.apply(secret)
    second = ClusterState(tmp_path / "second")
    assert ensure_jwt_material(second, fake_api, TENANTS) == "restored from the cluster"
    assert KeyStore(second.keys_dir).active().kid == KeyStore(first.keys_dir).active().kid
    assert read_credentials(second.credentials_file) == read_credentials(first.credentials_file)
