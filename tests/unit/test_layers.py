"""Imports run one way: CLI → orchestration → roles → operations/facts → plan → spec.

Read from the source (nothing is imported or run): every ``import`` of ``deploy`` and ``roles``, at module
level or inside a function, except those under ``if TYPE_CHECKING``. A module imports only its own layer or
the layers below it, and no chain of imports leads back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A module belongs to the layer of the longest prefix that names it (a new module of deploy
# that is not listed belongs to the bottom layer, so it may import nothing above the spec until placed).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "spec",
        (
            "deploy",
            "deploy.errors",
            "deploy.host_status",
            "deploy.shipped",
            "deploy.names",
            "deploy.lmcache_keys",
            "deploy.compat",
            "deploy.pydantic_errors",
            "deploy.secrets",
            "deploy.spec",
            "deploy.nodes",
            "deploy.addressing",
            "deploy.assignment",
            "deploy.capacity",
            "deploy.sizing",
            "deploy.validate",
            "deploy.loader",
            "deploy.schema",
            "deploy.spec_edit",
            "deploy.reassignment",
        ),
    ),
    (
        "plan",
        (
            "deploy.plan",
            "deploy.plan_models",
            "deploy.plan_parts",
            "deploy.hosts",
            "deploy.nvme_settings",
            "deploy.release",
            "deploy.rollout",
            "deploy.podlock",
            "deploy.bench",
            "deploy.bench_job",
            "deploy.drill",
            "deploy.drill_plan",
            "deploy.drill_scripts",
            "deploy.drivers",
            "deploy.switches",
            "deploy.targets",
            "deploy.targets.section",
            "deploy.targets.sheet",
            "deploy.targets.data24",
        ),
    ),
    ("operations", ("deploy.facts", "deploy.operations", "deploy.hostdata")),
    (
        "roles",
        (
            "roles",
            "deploy.switches.cumulus_nvue_apply",
            "deploy.switches.linux_bridge_apply",
        ),
    ),
    (
        "orchestration",
        (
            "deploy.engine",
            "deploy.orchestrate",
            "deploy.pipeline",
            "deploy.statedir",
            "deploy.podlock_run",
            "deploy.verify_runner",
            "deploy.verify_suite",
            "deploy.bench_run",
            "deploy.drill_run",
            "deploy.podmap",
            "deploy.lab",
        ),
    ),
    ("cli", ("deploy.cli",)),
]
RANK = {layer: i for i, (layer, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node) for n in node.body}
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if id(child) not in skip:
                stack.append(child)
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for top in ("deploy", "roles") for p in (ROOT / top).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): imported(p, modules) for p in files}


GRAPH = import_graph()


def test_every_module_has_a_layer() -> None:
    assert [m for m in GRAPH if layer_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    here = RANK[layer_of(module) or "cli"]
    upward = sorted(f"{m} ({layer_of(m)})" for m in GRAPH[module] if RANK[layer_of(m) or "cli"] > here)
    assert upward == [], f"{module} ({layer_of(module)}) imports upwards"


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(GRAPH[module]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_walk_sees_lazy_and_upward_imports(tmp_path: Path) -> None:
    """The walker itself: an import inside a function counts, one under TYPE_CHECKING does not."""
    source = tmp_path / "deploy" / "plan.py"
    source.parent.mkdir()
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deploy.cli import app\n"
        "def f():\n    from deploy.engine import run_phase\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert imported(source, {"deploy.plan", "deploy.cli", "deploy.engine"}) == {"deploy.engine"}
    finally:
        ROOT = saved
