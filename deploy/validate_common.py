"""What the pod-wide rules share: where a node is written in the spec, and values given twice."""

from __future__ import annotations

import re
from collections import defaultdict

from deploy.spec import Node, PodSpec
from deploy.wording import natural_key


def is_generated(path: str) -> bool:
    return path.startswith("nodes.generate[")


def written_first(path: str) -> tuple:
    """Sort key: a field the spec writes out (an override, an explicit node) before a generated one."""
    return (is_generated(path), natural_key(path))


def node_paths(spec: PodSpec, nodes: list[Node]) -> dict[str, str]:
    if isinstance(spec.nodes, list):
        return {n.name: f"nodes[{i}]" for i, n in enumerate(nodes)}
    overridden = spec.nodes.overrides
    return {n.name: f"nodes.overrides.{n.name}" if n.name in overridden else f"nodes.generate[{n.name}]" for n in nodes}


def duplicates(items: list[tuple[str, object]]) -> dict[object, list[str]]:
    """Group paths by value, keeping only values that occur more than once."""
    seen: dict[object, list[str]] = defaultdict(list)
    for path, value in items:
        seen[value].append(path)
    return {v: paths for v, paths in seen.items() if len(paths) > 1}


def device_of(path: str) -> str:
    """``node gpu01`` for a node's field path, else the path without its last key."""
    match = re.match(r"nodes\.(?:generate\[|overrides\.)([^\].]+)", path)
    return f"node {match.group(1)}" if match else path.rsplit(".", 1)[0]
