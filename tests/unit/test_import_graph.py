"""The shape of ``inferbox/``: no import cycles, targets apart from each other, a contract that
depends on no implementation. Every import counts, also those inside functions."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "inferbox"
# What the contract may not depend on: targets and the servers the platform runs.
IMPLEMENTATIONS = (
    "inferbox.embedded",
    "inferbox.cluster",
    "inferbox.jwtserver",
    "inferbox.tracestore",
    "inferbox.modelserver",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> Iterator[str]:
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            if candidate in modules and candidate != name:
                yield candidate


def import_graph() -> nx.DiGraph[str]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        graph.add_edges_from((name, target) for target in _imports(path, set(files)))
    return graph


GRAPH = import_graph()


def _edges(source: str, target: str) -> list[str]:
    return sorted(
        f"{a} -> {b}"
        for a, b in GRAPH.edges
        if (a == source or a.startswith(source + ".")) and (b == target or b.startswith(target + "."))
    )


def test_there_is_no_import_cycle() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(GRAPH) if len(c) > 1]
    assert cycles == [], f"modules that import each other: {cycles}"


def test_the_cluster_targets_import_nothing_of_the_embedded_target() -> None:
    assert _edges("inferbox.cluster", "inferbox.embedded") == []


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_contract_depends_on_no_implementation(implementation: str) -> None:
    found = _edges("inferbox.contract", implementation) + _edges("inferbox.contract_types", implementation)
    reachable = [m for m in nx.descendants(GRAPH, "inferbox.contract") if m.startswith(implementation)]
    assert found == [], found
    assert reachable == [], f"the contract reaches {implementation} through {reachable}"


def test_the_graph_sees_the_imports_it_checks() -> None:
    """The checks above mean something only if the graph holds the package's real imports."""
    assert GRAPH.has_edge("inferbox.embedded.platform", "inferbox.embedded.deployer")
    assert GRAPH.has_edge("inferbox.cluster.target", "inferbox.targets")
    assert len(GRAPH) > 100
