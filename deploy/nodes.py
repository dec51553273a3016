"""Expansion of the compact ``nodes.generate`` form into explicit nodes."""

from __future__ import annotations

import re

from netaddr import IPAddress
from pydantic import ValidationError

from deploy.errors import Problem, SpecError
from deploy.pydantic_errors import field_path, problems_from_validation
from deploy.spec import Node, NodeGenerator, NodeList
from deploy.wording import name_list


def generated_node_fields(gen: NodeGenerator, n: int) -> dict:
    """The fields of node number ``n`` (1-based) of a generator, before overrides."""
    fields: dict = {
        "name": gen.name.format(n=n),
        "ssh": {
            "address": str(IPAddress(gen.ssh_address) + (n - 1) * gen.ssh_address_step),
            "port": gen.ssh_port + (n - 1) * gen.ssh_port_step,
            "user": gen.ssh_user,
        },
        "fabric_interface": gen.fabric_interface,
        "rdma": gen.rdma,
        "gpus": gen.gpus,
    }
    if gen.ssh_key:
        fields["ssh"]["key"] = gen.ssh_key
    if gen.ssh_known_hosts_file:
        fields["ssh"]["known_hosts_file"] = gen.ssh_known_hosts_file
    if gen.switch:
        fields["switch"] = gen.switch
    if gen.switch_port:
        fields["switch_port"] = gen.switch_port.format(n=gen.switch_port_start + n - 1)
    return fields


_GENERATED = re.compile(r"^nodes\.generate\[([^\]]+)\](?:\.(.+))?$")
# A generated node's field -> the generator's field that gives it.
_GENERATOR_FIELD = {
    "ssh": "ssh_address",
    "ssh.address": "ssh_address",
    "ssh.port": "ssh_port",
    "ssh.user": "ssh_user",
    "ssh.key": "ssh_key",
    "ssh.known_hosts_file": "ssh_known_hosts_file",
    **{f: f for f in ("name", "fabric_interface", "rdma", "switch", "switch_port", "gpus")},
}


def collapse_generated(problems: list[Problem]) -> list[Problem]:
    """One problem, counted, for the same problem on several generated nodes: it has one cause, the generator.

    ``nodes.generate[gpu01].gpus: m`` ... ``nodes.generate[gpu24].gpus: m`` become
    ``nodes.generate.gpus: 24 nodes (gpu01, ... and 18 more): m``; a field the generator does not set keeps its
    name in the message.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        m = _GENERATED.match(p.path)
        if m:
            groups.setdefault((m.group(2) or "", p.message), []).append(m.group(1))
    out: list[Problem] = []
    done: set[tuple[str, str]] = set()
    for p in problems:
        m = _GENERATED.match(p.path)
        key = (m.group(2) or "", p.message) if m else None
        if key is None or len(set(groups[key])) < 2:
            out.append(p)
            continue
        if key in done:
            continue
        done.add(key)
        rest, message = key
        names = groups[key]
        counted = f"{len(set(names))} nodes ({name_list(names)})"
        if rest in _GENERATOR_FIELD:
            out.append(Problem(f"nodes.generate.{_GENERATOR_FIELD[rest]}", f"{counted}: {message}"))
        else:
            out.append(Problem("nodes.generate", f"{counted}: {rest + ': ' if rest else ''}{message}"))
    return out


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def expand_nodes(nodes: list[Node] | NodeList) -> list[Node]:
    """Explicit nodes in spec order; raises SpecError naming the generator field that is wrong."""
    if isinstance(nodes, list):
        return nodes
    gen = nodes.generate
    names = [gen.name.format(n=n) for n in range(1, gen.count + 1)]
    problems = [
        Problem(
            field_path(("nodes", "overrides", name)),
            f"no generated node has this name (generated: {names[0]}..{names[-1]})",
        )
        for name in nodes.overrides
        if name not in names
    ]
    expanded: list[Node] = []
    for n, name in enumerate(names, start=1):
        fields = _merge(generated_node_fields(gen, n), nodes.overrides.get(name, {}))
        try:
            expanded.append(Node.model_validate(fields))
        except ValidationError as exc:
            prefix = f"nodes.overrides.{name}" if name in nodes.overrides else f"nodes.generate[{name}]"
            problems.extend(problems_from_validation(exc, prefix=prefix, model=Node))
    if problems:
        raise SpecError(collapse_generated(problems))
    return expanded
