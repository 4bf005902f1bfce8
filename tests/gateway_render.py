"""Renders the embedded gateway's bootstrap for unit tests, every Service at one fixed endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferbox.embedded.gateway_config import (
    GatewayInputs,
    GatewayPorts,
    Revisions,
    render_gateway,
    route_config_name,
    service_backends,
)
from inferbox.embedded.gateway_plan import GatewayPlan
from inferbox.embedded.xds_files import EdsFiles, RoutesFile


def render_bootstrap(
    plan: GatewayPlan,
    ports: GatewayPorts,
    xds_dir: Path,
    host_netns: str | None = None,
    endpoint: tuple[str, int] = ("127.0.0.1", 18099),
    revisions: Revisions | None = None,
    rds: bool = False,
) -> dict[str, Any]:
    """The bootstrap, with the endpoint (and route) files Envoy reads beside it written as the embedded
    gateway writes them, so ``envoy --mode validate`` can load it."""
    services = {name: [endpoint] for name in service_backends(plan)}
    config = render_gateway(GatewayInputs(plan, ports, xds_dir, services, host_netns, revisions=revisions, rds=rds))
    eds = EdsFiles(xds_dir)
    for cluster in config.eds_clusters:
        eds.ensure(cluster)
    if rds:
        RoutesFile(xds_dir, route_config_name(plan)).write(config.routes)
    return config.bootstrap


def gateway_hcm(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The HTTP connection manager of the gateway's listener (Envoy Gateway: in default_filter_chain)."""
    listener = bootstrap["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["default_filter_chain"]["filters"][0]["typed_config"]
    return hcm
