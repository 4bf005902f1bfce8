"""The gateway's view of revisions: one EDS cluster per revision, routes splitting a model's
traffic by the revisions' percentages, served from a file (filesystem RDS) so a promotion needs
no restart."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.embedded.gateway_config import (
    GatewayInputs,
    GatewayPorts,
    model_clusters,
    render_gateway,
    render_routes,
    route_config_name,
    service_backends,
)
from inferbox.embedded.gateway_plan import ModelBackend, plan_gateway
from inferbox.embedded.xds_files import EdsFiles, RoutesFile
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.serving_plan import plan_serving
from tests.gateway_render import gateway_hcm

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)
PLANS = plan_serving(MANIFESTS)


def revisions(promoted: bool = False):  # type: ignore[no-untyped-def]
    def split(backend: ModelBackend) -> list[tuple[ModelBackend, int]]:
        plan = PLANS[(backend.namespace, backend.name)]
        shares = plan.traffic(promoted)
        return [(ModelBackend(backend.namespace, backend.name, r.suffix), shares[r.suffix]) for r in plan.revisions]

    return split


def _iris_predict(routes: dict[str, Any]) -> dict[str, Any]:
    host = next(v for v in routes["virtual_hosts"] if v["domains"] == ["sklearn-iris.tenant-a.inference.example"])
    route = next(r for r in host["routes"] if r["match"] == {"path_separated_prefix": "/v1/models"})
    action: dict[str, Any] = route["route"]
    return action


def test_a_canary_model_splits_between_its_revision_clusters() -> None:
    plan = plan_gateway(MANIFESTS)
    action = _iris_predict(render_routes(plan, revisions()))
    weights = {c["name"]: c["weight"] for c in action["weighted_clusters"]["clusters"]}
    assert weights == {"isvc__tenant-a__sklearn-iris__00001": 80, "isvc__tenant-a__sklearn-iris__00002": 20}
    promoted = _iris_predict(render_routes(plan, revisions(promoted=True)))
    assert promoted["cluster"] == "isvc__tenant-a__sklearn-iris__00002"
    assert set(model_clusters(plan, revisions())) == {
        "isvc__tenant-a__sklearn-iris__00001",
        "isvc__tenant-a__sklearn-iris__00002",
        "isvc__tenant-c__pytorch-resnet__00001",
    }


def test_routes_come_from_a_watched_file_and_envoy_accepts_the_bootstrap(tmp_path: Path) -> None:
    plan = plan_gateway(MANIFESTS)
    services = {name: [("127.0.0.1", 18099)] for name in service_backends(plan)}
    ports = GatewayPorts(public=18080, admin=18081, pod_ip=None, pod_port=80)
    config = render_gateway(GatewayInputs(plan, ports, tmp_path / "xds", services, revisions=revisions(), rds=True))
    # What the embedded gateway writes beside its bootstrap: the routes (RDS) and empty endpoints (EDS).
    routes, eds = RoutesFile(tmp_path / "xds", route_config_name(plan)), EdsFiles(tmp_path / "xds")
    routes.write(config.routes)
    for cluster in config.eds_clusters:
        eds.ensure(cluster)
    bootstrap = config.bootstrap
    hcm = gateway_hcm(bootstrap)
    assert "route_config" not in hcm
    assert hcm["rds"]["config_source"]["path_config_source"]["path"] == str(routes.path)
    served = yaml.safe_load(routes.path.read_text())
    assert served["resources"][0]["@type"].endswith("RouteConfiguration")
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    assert clusters["isvc__tenant-a__sklearn-iris__00002"]["type"] == "EDS"
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
