"""Reading Kiali's traffic graph (``/api/namespaces/graph``, Kiali 2.x JSON)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Edge:
    source_namespace: str
    source_workload: str
    target_namespace: str
    target_workload: str
    http_rate: float

    def __str__(self) -> str:
        return (
            f"{self.source_namespace}/{self.source_workload} -> {self.target_namespace}/{self.target_workload}"
            f" ({self.http_rate:g} req/s)"
        )


def workload_graph(kiali: httpx.Client, namespaces: list[str], duration: str = "10m") -> dict[str, Any]:
    response = kiali.get(
        "/api/namespaces/graph",
        params={
            "namespaces": ",".join(sorted(set(namespaces))),
            "graphType": "workload",
            "duration": duration,
            "queryTime": int(time.time()),
        },
    )
    if response.status_code != 200:
        raise AssertionError(f"GET /api/namespaces/graph: {response.status_code} {response.text[:200]}")
    graph: dict[str, Any] = response.json()
    return graph


def edges(graph: dict[str, Any]) -> list[Edge]:
    elements = graph.get("elements") or {}
    nodes = {n["data"]["id"]: n["data"] for n in elements.get("nodes") or []}
    found = []
    for raw in elements.get("edges") or []:
        data = raw["data"]
        src, dst = nodes.get(data["source"], {}), nodes.get(data["target"], {})
        rates = (data.get("traffic") or {}).get("rates") or {}
        found.append(
            Edge(
                str(src.get("namespace", "")),
                str(src.get("workload", "")),
                str(dst.get("namespace", "")),
                str(dst.get("workload", "")),
                float(rates.get("http", 0) or 0),
            )
        )
    return found


def traffic_edge(
    found: list[Edge], gateway_workload: re.Pattern[str], tenant: str, model_workload: re.Pattern[str]
) -> Edge | None:
    """The edge carrying traffic from a gateway-side workload to the model's workload, if any."""
    for edge in found:
        if (
            edge.target_namespace == tenant
            and model_workload.fullmatch(edge.target_workload)
            and gateway_workload.fullmatch(edge.source_workload)
            and edge.http_rate > 0
        ):
            return edge
    return None
