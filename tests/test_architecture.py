"""The package structure holds: one-way dependencies, no import cycles, small service modules.

The dependency rules are import-linter contracts in pyproject.toml (layers: server > console >
search > features, independent of each other > backend; shipped code never imports fixtures,
tests or benchmarks). This test runs them, so a forbidden import fails ``make test``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("backend", "venues", "search", "crowdsource", "residents", "admin_console", "server")
FEATURES = ("venues", "search", "crowdsource", "residents", "admin_console")
MAX_SERVICE_LINES = 500


def test_import_contracts_are_kept() -> None:
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_modules() -> None:
    sys.path.insert(0, str(REPO))
    graph = grimp.build_graph(*SHIPPED)  # imports inside functions count too
    assert _cycles(graph) == []


def test_service_modules_are_short_enough_to_read_in_one_sitting() -> None:
    too_long = []
    for package in FEATURES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts or path.name in ("views.py", "schemas.py", "models.py"):
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_SERVICE_LINES:
                too_long.append(f"{path.relative_to(REPO)}: {lines}")
    assert too_long == []


def test_no_untyped_grab_bag_on_the_app_context() -> None:
    """Shared clients are typed fields or typed slots, never ``ctx.extras[...]``."""
    offenders = []
    for package in (*SHIPPED, "tests", "bench", "fixtures"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr == "extras":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
