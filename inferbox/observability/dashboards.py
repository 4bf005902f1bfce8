"""The Grafana dashboards shipped under manifests/ (``**/dashboards/*.json``) and their panels' PromQL.

Panel queries may use Grafana's built-in interval variables, which Prometheus cannot parse;
``concrete`` replaces them with the values Grafana would use for a given scrape interval.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferbox.errors import ManifestError


@dataclass(frozen=True)
class Panel:
    dashboard_uid: str
    dashboard_title: str
    file: str
    title: str
    exprs: tuple[str, ...]

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        return f"{self.dashboard_uid}/{slug}"


def dashboard_files(manifests_dir: Path) -> list[Path]:
    return sorted(p for p in Path(manifests_dir).rglob("*.json") if p.parent.name == "dashboards")


def load_dashboard(path: Path) -> dict[str, Any]:
    try:
        body: Any = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc}", "fix the dashboard's JSON") from exc
    if not isinstance(body, dict) or not body.get("uid") or not body.get("title"):
        raise ManifestError(f"{path}: a Grafana dashboard needs a uid and a title", "add them")
    return body


def _walk(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        if panel.get("type") == "row":
            out += _walk(panel.get("panels") or [])
        else:
            out.append(panel)
    return out


def panels(path: Path, root: Path | None = None) -> list[Panel]:
    body = load_dashboard(path)
    found = []
    for panel in _walk(body.get("panels") or []):
        exprs = tuple(t["expr"] for t in panel.get("targets") or [] if t.get("expr"))
        if exprs:
            found.append(
                Panel(
                    str(body["uid"]),
                    str(body["title"]),
                    str(path.relative_to(root)) if root else str(path),
                    str(panel.get("title", "")),
                    exprs,
                )
            )
    return found


def all_panels(manifests_dir: Path) -> list[Panel]:
    return [p for f in dashboard_files(manifests_dir) for p in panels(f, Path(manifests_dir))]


def concrete(expr: str, scrape_interval_s: float) -> str:
    """``expr`` with Grafana's interval variables replaced as Grafana would for this scrape interval."""
    rate_window = f"{int(max(60, 4 * scrape_interval_s))}s"
    for variable, value in (
        ("$__rate_interval", rate_window),
        ("${__rate_interval}", rate_window),
        ("$__interval", f"{int(max(1, scrape_interval_s))}s"),
        ("$__range_s", "3600"),
        ("$__range", "1h"),
    ):
        expr = expr.replace(variable, value)
    return expr
