"""Pod-wide rules that no single field can check. Runs before any host is touched.

Every rule reports ``Problem(field.path, "what is wrong (what would be valid)")``; all problems are
collected so the user fixes the spec in one pass.
"""

from __future__ import annotations

from deploy.addressing import plan_addresses
from deploy.errors import Problem, SpecError
from deploy.nodes import collapse_generated, expand_nodes
from deploy.spec import PodSpec
from deploy.validate_common import node_paths
from deploy.validate_fabric import (
    fabric_transport,
    fabric_vlans,
    interface_names,
    switch_attachments,
    unique_names,
)
from deploy.validate_storage import disk_budgets, enclosure_drives, host_identities, namespace_holders, target_servers
from deploy.validate_vllm import (
    gpu_counts,
    host_paths,
    install_settings,
    lmcache_settings,
    model_files,
)
from deploy.validate_vllm import project_name as project_name
from deploy.validate_vllm import warnings as warnings
from deploy.validate_vllm import wheel_project as wheel_project
from deploy.validate_vllm import wheelhouse_problems as wheelhouse_problems
from deploy.wording import natural_key


def check_pod(spec: PodSpec) -> list[Problem]:
    """Every pod-wide problem of a structurally valid spec (empty list: the spec is usable)."""
    try:
        nodes = expand_nodes(spec.nodes)
    except SpecError as exc:
        return exc.problems
    node_path = node_paths(spec, nodes)
    problems: list[Problem] = []
    rules = (
        unique_names,
        switch_attachments,
        enclosure_drives,
        namespace_holders,
        host_identities,
        gpu_counts,
        disk_budgets,
        lmcache_settings,
        fabric_vlans,
        fabric_transport,
        install_settings,
        target_servers,
        interface_names,
        host_paths,
        model_files,
    )
    for rule in rules:
        problems.extend(rule(spec, nodes, node_path))
    problems.extend(Problem(p, m) for p, m in plan_addresses(spec, nodes).problems)
    return in_order(collapse_generated(problems))


def in_order(problems: list[Problem]) -> list[Problem]:
    """Without repeats, by path in numeric order (nodes[2] before nodes[10], gpu2 before gpu10)."""
    return sorted(set(problems), key=lambda p: (natural_key(p.path), p.message))
