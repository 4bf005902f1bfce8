"""The processor's configuration: what AI Gateway's controller writes into its filter-config Secret
(``filterapi.Config``), as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Rule:
    name: str  # the value of the selected-route header
    headers: tuple[tuple[str, str], ...]  # any one matching selects the rule
    owned_by: str
    created: int
    backend_system: str = "openai"  # gen_ai.system.name of its backends (OpenAI schema)


@dataclass(frozen=True)
class FilterConfig:
    metadata_namespace: str
    model_header: str
    selected_route_header: str
    original_path_header: str
    costs: tuple[tuple[str, str], ...]  # (metadata key, InputToken|OutputToken|TotalToken)
    rules: tuple[Rule, ...]

    def route(self, headers: dict[str, str]) -> Rule | None:
        """The first rule one of whose headers the request carries with that exact value."""
        for rule in self.rules:
            if any(headers.get(name) == value for name, value in rule.headers):
                return rule
        return None

    def declared_models(self) -> list[tuple[str, str, int]]:
        """(model, owned by, created) of every rule's model-header value (GET /v1/models)."""
        return [
            (value, rule.owned_by, rule.created)
            for rule in self.rules
            for name, value in rule.headers
            if name == self.model_header
        ]


def parse_config(data: dict[str, Any]) -> FilterConfig:
    return FilterConfig(
        metadata_namespace=str(data["metadataNamespace"]),
        model_header=str(data["modelNameHeaderKey"]),
        selected_route_header=str(data["selectedRouteHeaderKey"]),
        original_path_header=str(data["originalPathHeaderKey"]),
        costs=tuple((str(c["metadataKey"]), str(c["type"])) for c in data.get("llmRequestCosts") or []),
        rules=tuple(
            Rule(
                name=str(r["name"]),
                headers=tuple((str(h["name"]).lower(), str(h["value"])) for h in r.get("headers") or []),
                owned_by=str(r.get("modelsOwnedBy", "")),
                created=int(r.get("modelsCreatedAt", 0)),
            )
            for r in data.get("rules") or []
        ),
    )


def load_config(path: Path) -> FilterConfig:
    return parse_config(json.loads(path.read_text(encoding="utf-8")))
