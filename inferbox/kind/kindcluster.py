"""The Kind cluster: its checked-in config, and finding or deleting it with the ``kind`` CLI.

inferbox drives the ``kind`` and ``kubectl`` found on PATH rather than pytest-kind, which downloads
kind v0.17.0 and kubectl v1.25 at run time: too old for the pinned node image (kind pins node images
per release) and for Knative's Kubernetes floor, and a download a CI machine may not allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbox.errors import InferboxError
from inferbox.kind.commands import CommandRunner, run_checked

KIND_CONFIG = Path(__file__).with_name("cluster.yaml")
DEFAULT_CLUSTER_NAME = "inference-in-a-box"
GATEWAY_NODE_PORT = 30080


def context_for(cluster_name: str) -> str:
    """The kube context ``kind create cluster`` writes for a cluster."""
    return f"kind-{cluster_name}"


@dataclass(frozen=True)
class KindConfig:
    path: Path
    body: dict[str, Any]

    @property
    def node_count(self) -> int:
        return len(self.body.get("nodes") or [{}])

    def port_mappings(self) -> dict[int, int]:
        """NodePort -> the 127.0.0.1 port published for it, over every node."""
        return {
            int(m["containerPort"]): int(m["hostPort"])
            for node in self.body.get("nodes") or []
            for m in node.get("extraPortMappings") or []
        }

    def host_port(self, node_port: int) -> int:
        """The 127.0.0.1 port that reaches ``node_port`` on the control plane."""
        for node in self.body.get("nodes") or []:
            for mapping in node.get("extraPortMappings") or []:
                if int(mapping.get("containerPort", 0)) == node_port:
                    return int(mapping["hostPort"])
        raise InferboxError(
            f"{self.path} maps no host port to NodePort {node_port}",
            f"add an extraPortMappings entry with containerPort: {node_port} on the control-plane node",
        )


def load_kind_config(path: Path = KIND_CONFIG) -> KindConfig:
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict) or body.get("kind") != "Cluster":
        raise InferboxError(
            f"{path} is not a Kind cluster config", "it needs kind: Cluster and apiVersion kind.x-k8s.io/v1alpha4"
        )
    return KindConfig(path, body)


def cluster_exists(runner: CommandRunner, name: str) -> bool:
    return name in run_checked(runner, ["kind", "get", "clusters"], 60).stdout.split()


def delete_cluster(runner: CommandRunner, name: str, timeout_s: float = 300) -> None:
    run_checked(runner, ["kind", "delete", "cluster", "--name", name], timeout_s)
