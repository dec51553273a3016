"""Imports run one way: CLI → orchestration → roles → operations/facts → plan → spec.

Read from the source (nothing is imported or run): every ``import`` of ``deploy`` and ``roles``, at module
level or inside a function, except those under ``if TYPE_CHECKING``, and every ``import_module("name")`` with a
literal name. A module imports only its own layer or the layers below it, and no chain of imports leads back to
where it started. A driver package (``deploy/switches/<kind>/``, ``deploy/targets/<kind>/``) spans layers by
module: its spec model with the spec, its rendering with the plan, what runs on hosts and its driver with the
roles (a driver may import a role, never the other way round).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A module belongs to the layer of the longest prefix that names it, ``*`` standing for one
# name (a new module of deploy that is not listed belongs to the bottom layer, so it may import nothing above
# the spec until placed).
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
            "deploy.spec_base",
            "deploy.spec_fabric",
            "deploy.spec_kinds",
            "deploy.spec_nodes",
            "deploy.spec_vllm",
            "deploy.spec_types",
            "deploy.spec_text",
            "deploy.spec_names",
            "deploy.spec_paths",
            "deploy.spec_values",
            "deploy.switches.*.spec",
            "deploy.targets.*.spec",
            "deploy.nodes",
            "deploy.addressing",
            "deploy.assignment",
            "deploy.capacity",
            "deploy.sizing",
            "deploy.validate",
            "deploy.validate_common",
            "deploy.validate_fabric",
            "deploy.validate_storage",
            "deploy.validate_vllm",
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
            "deploy.switches.*",
            "deploy.switches.*.render",
            "deploy.targets",
            "deploy.targets.*",
            "deploy.targets.section",
            "deploy.targets.sheet",
        ),
    ),
    ("operations", ("deploy.facts", "deploy.operations", "deploy.hostdata")),
    (
        "roles",
        (
            "roles",
            "deploy.switches.*.apply",
            "deploy.switches.*.driver",
            "deploy.targets.*.driver",
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


def _names(module: str, prefix: str) -> bool:
    """``prefix`` names ``module`` or a package holding it (``*`` matches any one name)."""
    parts, want = module.split("."), prefix.split(".")
    return len(parts) >= len(want) and all(w in ("*", p) for w, p in zip(want, parts, strict=False))


def layer_of(module: str) -> str | None:
    best: tuple[tuple[int, int], str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            rank = (prefix.count(".") + 1, -prefix.count("*"))  # longer first, then the one without wildcards
            if _names(module, prefix) and (best is None or rank > best[0]):
                best = (rank, layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _import_module_call(node: ast.AST) -> str | None:
    """The literal module name of an ``importlib.import_module("a.b")`` or ``import_module("a.b")`` call."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    arg = node.args[0]
    if name == "import_module" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


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
        if literal := _import_module_call(node):
            names = [literal]
        elif isinstance(node, ast.Import):
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


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every chain of imports leading back to where it started, found by one depth-first walk."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


GRAPH = import_graph()


def test_every_module_has_a_layer() -> None:
    assert [m for m in GRAPH if layer_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    here = RANK[layer_of(module) or "cli"]
    upward = sorted(f"{m} ({layer_of(m)})" for m in GRAPH[module] if RANK[layer_of(m) or "cli"] > here)
    assert upward == [], f"{module} ({layer_of(module)}) imports upwards"


def test_no_import_cycles() -> None:
    assert cycles_in(GRAPH) == []


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


def test_an_import_module_cycle_fails(tmp_path: Path) -> None:
    """A circle closed by ``importlib.import_module`` (a driver loading a role that imports it back) is seen."""
    (tmp_path / "deploy" / "targets").mkdir(parents=True)
    (tmp_path / "roles").mkdir()
    (tmp_path / "deploy" / "targets" / "__init__.py").write_text(
        "import importlib\n\ndef deploy():\n    importlib.import_module('roles.target').run()\n"
    )
    (tmp_path / "roles" / "target.py").write_text(
        "from importlib import import_module\nfrom deploy.targets import deploy\n"
        "def again():\n    import_module('deploy.targets')\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        graph = import_graph()
    finally:
        ROOT = saved
    assert graph == {"deploy.targets": {"roles.target"}, "roles.target": {"deploy.targets"}}
    assert cycles_in(graph) == [["deploy.targets", "roles.target", "deploy.targets"]]
    assert layer_of("roles.target") == "roles" and layer_of("deploy.targets") == "plan"


def test_driver_packages_span_layers_by_module() -> None:
    """A kind's spec model sits with the spec, its rendering with the plan, its driver with the roles."""
    assert layer_of("deploy.switches.linux_bridge.spec") == "spec"
    assert layer_of("deploy.targets.linux_nvmet.spec") == "spec"
    assert layer_of("deploy.switches.cumulus_nvue.render") == "plan"
    assert layer_of("deploy.targets.sheet") == "plan"
    assert layer_of("deploy.switches.cumulus_nvue.apply") == "roles"
    assert layer_of("deploy.targets.linux_nvmet.driver") == "roles"
