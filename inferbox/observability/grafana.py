"""Checks against Grafana's HTTP API (Grafana 10/12): dashboards listed, Prometheus datasource healthy."""

from __future__ import annotations

import httpx


def missing_dashboards(grafana: httpx.Client, wanted: dict[str, str]) -> dict[str, str]:
    """The dashboards of ``wanted`` (uid -> file) that ``GET /api/search`` does not list."""
    response = grafana.get("/api/search", params={"type": "dash-db", "limit": 5000})
    if response.status_code != 200:
        raise AssertionError(f"GET /api/search: {response.status_code} {response.text[:200]}")
    found = {str(d.get("uid")) for d in response.json()}
    return {uid: name for uid, name in wanted.items() if uid not in found}


def prometheus_datasource_problem(grafana: httpx.Client) -> str | None:
    """None when the default Prometheus datasource answers its health check; otherwise why not."""
    response = grafana.get("/api/datasources")
    if response.status_code != 200:
        return f"GET /api/datasources: {response.status_code} {response.text[:200]}"
    sources = [s for s in response.json() if s.get("type") == "prometheus"]
    if not sources:
        return "Grafana has no Prometheus datasource"
    default = next((s for s in sources if s.get("isDefault")), sources[0])
    health = grafana.get(f"/api/datasources/uid/{default['uid']}/health")
    body = health.json() if "json" in health.headers.get("content-type", "") else {}
    if health.status_code != 200 or body.get("status") != "OK":
        return f"Prometheus datasource {default.get('name')} is not healthy: {health.status_code} {health.text[:200]}"
    return None
