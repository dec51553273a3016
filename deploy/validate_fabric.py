"""Pod-wide rules of the fabric: unique names and endpoints, switch ports, VLANs, transports, interface names."""

from __future__ import annotations

from deploy.addressing import routed_switch
from deploy.errors import Problem
from deploy.spec import Node, PodSpec
from deploy.spec_types import ifname_problem
from deploy.validate_common import device_of, duplicates, is_generated, written_first
from deploy.wording import name_list, plural


def unique_names(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    for kind, names in (
        ("node", [n.name for n in nodes]),
        ("switch", [s.name for s in spec.switches]),
        ("enclosure", [e.name for e in spec.enclosures]),
    ):
        for name, count in {x: names.count(x) for x in names}.items():
            if count > 1:
                section = {"node": "nodes", "switch": "switches", "enclosure": "enclosures"}[kind]
                out.append(
                    Problem(
                        f"{section}.{name}", f"duplicate {kind} name {name!r} ({count} times; names must be unique)"
                    )
                )
    ssh = duplicates([(n.name, (n.ssh.address, n.ssh.port)) for n in nodes])
    for (addr, port), names in ssh.items():
        paths = [f"{np[n]}.ssh" for n in names]
        if all(is_generated(p) for p in paths):
            out.append(
                Problem(
                    "nodes.generate.ssh_address_step",
                    f"{len(names)} nodes share the SSH endpoint {addr}:{port} ({name_list(names)}; each node needs "
                    "its own: give ssh_address_step or ssh_port_step above 0)",
                )
            )
            continue
        out.append(
            Problem(
                min(paths, key=written_first),
                f"SSH endpoint {addr}:{port} is shared by {len(names)} nodes: {name_list(names)} "
                "(each node needs its own)",
            )
        )
    return out


def switch_attachments(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    names = {s.name: s for s in spec.switches}
    valid = ", ".join(names) or "none defined under switches"
    attachments: list[tuple[str, tuple[str, str]]] = []
    for n in nodes:
        if n.switch is not None:
            if n.switch not in names:
                out.append(Problem(f"{np[n.name]}.switch", f"unknown switch {n.switch!r} (valid: {valid})"))
            if n.switch_port is None:
                out.append(Problem(f"{np[n.name]}.switch_port", "required when switch is set (e.g. swp1)"))
            else:
                attachments.append((f"{np[n.name]}.switch_port", (n.switch, n.switch_port)))
    for ei, enc in enumerate(spec.enclosures):
        for ii, iom in enumerate(enc.ioms):
            for pi, port in enumerate(iom.ports):
                path = f"enclosures[{ei}].ioms[{ii}].ports[{pi}]"
                if port.switch is not None:
                    if port.switch not in names:
                        out.append(Problem(f"{path}.switch", f"unknown switch {port.switch!r} (valid: {valid})"))
                    if port.switch_port is None:
                        out.append(Problem(f"{path}.switch_port", "required when switch is set"))
                    else:
                        attachments.append((f"{path}.switch_port", (port.switch, port.switch_port)))
    out.extend(shared_ports(spec, duplicates(attachments)))
    for si, sw in enumerate(spec.switches):
        out.extend(sw.problems(f"switches[{si}]", spec))
    return out


def shared_ports(spec: PodSpec, shared: dict[object, list[str]]) -> list[Problem]:
    """One problem per switch port cabled to several devices; a generator's port without ``{n}`` says so."""
    out: list[Problem] = []
    gen = spec.nodes.generate if not isinstance(spec.nodes, list) else None
    for (sw, port), paths in shared.items():
        generated = [p for p in paths if is_generated(p)]
        if gen is not None and gen.switch_port and "{n" not in gen.switch_port and len(generated) > 1:
            out.append(
                Problem(
                    "nodes.generate.switch_port",
                    f"{len(generated)} nodes get the same port {gen.switch_port!r} on {sw} "
                    f"(use {{n}} for the node number, e.g. {gen.switch_port.rstrip('0123456789') + '{n}'!r})",
                )
            )
            if len(generated) == len(paths):
                continue
        devices = [device_of(p) for p in paths]
        out.append(
            Problem(
                min(paths, key=written_first),
                f"switch port {sw}/{port} is cabled to {len(paths)} devices: {name_list(devices)} "
                "(one device per port)",
            )
        )
    return out


def fabric_vlans(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    fab = spec.fabric
    out: list[Problem] = []
    if fab.vlan_mode == "per-node" and fab.node_vlans is not None:
        if fab.node_vlans.size < len(nodes):
            out.append(
                Problem(
                    "fabric.node_vlans",
                    f"range {fab.node_vlans.start}-{fab.node_vlans.end} has "
                    f"{plural(fab.node_vlans.size, 'VLAN')} for {plural(len(nodes), 'node')} "
                    f"(need end >= {fab.node_vlans.start + len(nodes) - 1})",
                )
            )
        if fab.node_vlans.start <= fab.storage_vlan <= fab.node_vlans.end:
            out.append(
                Problem(
                    "fabric.node_vlans", f"range contains the storage VLAN {fab.storage_vlan} (use a disjoint range)"
                )
            )
        if not routed_switch(spec):
            out.append(
                Problem(
                    "fabric.vlan_mode",
                    "per-node VLANs reach the storage VLAN through a switch SVI: "
                    "set routed: true on a switch (or use vlan_mode: shared)",
                )
            )
    return out


def fabric_transport(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    if spec.fabric.transport == "tcp":
        for ei, enc in enumerate(spec.enclosures):
            for ii, iom in enumerate(enc.ioms):
                for pi, port in enumerate(iom.ports):
                    if "tcp" not in port.transports:
                        out.append(
                            Problem(
                                f"enclosures[{ei}].ioms[{ii}].ports[{pi}].transports",
                                "fabric.transport is tcp but this portal offers only "
                                f"{', '.join(port.transports)} (add tcp)",
                            )
                        )
    return out


def interface_names(spec: PodSpec, nodes: list[Node], np: dict[str, str]) -> list[Problem]:
    """Interfaces kvpod creates are named <interface>.<vlan>: that name too must fit Linux's 15 bytes."""
    out: list[Problem] = []
    fab = spec.fabric
    per_node = fab.vlan_mode == "per-node" and fab.node_vlans is not None
    overrides = {} if isinstance(spec.nodes, list) else spec.nodes.overrides
    reported: set[str] = set()
    for i, n in enumerate(nodes):
        vlan = fab.node_vlans.start + i if per_node else fab.storage_vlan
        why = ifname_problem(f"{n.fabric_interface}.{vlan}")
        generated = not isinstance(spec.nodes, list) and "fabric_interface" not in overrides.get(n.name, {})
        path = "nodes.generate.fabric_interface" if generated else f"{np[n.name]}.fabric_interface"
        if why and path not in reported:  # once per field, not once per generated node
            reported.add(path)
            out.append(
                Problem(
                    path,
                    f"its VLAN interface {n.fabric_interface}.{vlan} is {why.split(' (')[0]} "
                    "(Linux allows 15: use a shorter name)",
                )
            )
    for ei, enc in enumerate(spec.enclosures):
        for ii, iom in enumerate(enc.ioms):
            for pi, port in enumerate(iom.ports):
                nic = port.nic()
                if nic and ifname_problem(f"{nic}.{fab.storage_vlan}"):
                    out.append(
                        Problem(
                            f"enclosures[{ei}].ioms[{ii}].ports[{pi}].interface",
                            f"its VLAN interface {nic}.{fab.storage_vlan} is longer than 15 bytes (use a shorter name)",
                        )
                    )
    bridges = {s.name for s in spec.switches if s.ports_are_interfaces}
    attached = [(f"{np[n.name]}.switch_port", n.switch, n.switch_port) for n in nodes]
    attached += [
        (f"enclosures[{ei}].ioms[{ii}].ports[{pi}].switch_port", port.switch, port.switch_port)
        for ei, enc in enumerate(spec.enclosures)
        for ii, iom in enumerate(enc.ioms)
        for pi, port in enumerate(iom.ports)
    ]
    for path, switch, port in attached:
        if switch in bridges and port is not None:
            why = ifname_problem(port)
            if why:
                out.append(Problem(path, f"a port of Linux bridge {switch} is an interface: {port!r} {why}"))
    return out
