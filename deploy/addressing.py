"""Deterministic fabric addressing with netaddr: target portals first, then nodes, then switch SVIs.

Explicit addresses in the spec are honoured (and checked by :mod:`deploy.validate`); the automatic ones
skip them. Pure functions: same spec in, same addresses out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from netaddr import IPAddress, IPNetwork

from deploy.spec import Node, PodSpec
from deploy.wording import name_list


@dataclass(frozen=True)
class NodeSegment:
    """Where one node sits on the fabric."""

    vlan: int
    subnet: IPNetwork
    address: IPAddress
    gateway: IPAddress | None  # per-node mode: the switch SVI routing to the storage subnet


@dataclass
class Addressing:
    storage_subnet: IPNetwork
    portals: dict[tuple[str, str, str], IPAddress] = field(default_factory=dict)  # (enclosure, iom, port)
    nodes: dict[str, NodeSegment] = field(default_factory=dict)
    storage_svi: IPAddress | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)


def usable_hosts(net: IPNetwork) -> Iterator[IPAddress]:
    """Host addresses of a subnet, excluding network and broadcast (IPv4 /31 and /32 have none)."""
    if net.version == 4 and net.prefixlen >= 31:
        return iter(())
    return (IPAddress(int(net.network) + i) for i in range(1, net.size - 1))


def is_usable(address: IPAddress, net: IPNetwork) -> str | None:
    """None when ``address`` may be a host of ``net``; else why not."""
    if address not in net:
        return f"{address} is outside the subnet {net.cidr}"
    if address == net.network:
        return f"{address} is the network address of {net.cidr} (not a host)"
    if net.version == 4 and address == net.broadcast:
        return f"{address} is the broadcast address of {net.cidr} (not a host)"
    return None


def routed_switch(spec: PodSpec) -> bool:
    return any(sw.routed for sw in spec.switches)


def plan_addresses(spec: PodSpec, nodes: list[Node]) -> Addressing:
    """Assign every portal, node and SVI address; problems are collected, not raised."""
    fab = spec.fabric
    storage = IPNetwork(fab.subnet)
    result = Addressing(storage_subnet=storage)
    taken: set[IPAddress] = set()

    portal_keys = [
        (enc.name, iom.name, port.name, port.address, f"enclosures[{ei}].ioms[{ii}].ports[{pi}].address")
        for ei, enc in enumerate(spec.enclosures)
        for ii, iom in enumerate(enc.ioms)
        for pi, port in enumerate(iom.ports)
    ]
    node_explicit = [(i, n) for i, n in enumerate(nodes) if n.fabric_address is not None]
    shared = fab.vlan_mode == "shared"

    def claim(addr: IPAddress, path: str, net: IPNetwork) -> bool:
        why = is_usable(addr, net)
        if why:
            result.problems.append((path, f"{why} (pick a host address inside {net.cidr})"))
            return False
        if addr in taken:
            result.problems.append((path, f"{addr} is used twice (every fabric address must be unique)"))
            return False
        taken.add(addr)
        return True

    for *_, explicit, path in portal_keys:
        if explicit is not None:
            claim(IPAddress(explicit), path, storage)
    if shared:
        for i, n in node_explicit:
            claim(IPAddress(n.fabric_address), f"nodes[{i}].fabric_address", storage)

    free = (a for a in usable_hosts(storage) if a not in taken)
    left_out: list[str] = []  # what found no free address: portals, then nodes

    def next_free(what: str) -> IPAddress | None:
        addr = next(free, None)
        if addr is None:
            left_out.append(what)
            return None
        taken.add(addr)
        return addr

    for enc, iom, port, explicit, _path in portal_keys:
        addr = IPAddress(explicit) if explicit is not None else next_free(f"portal {enc}/{iom}/{port}")
        if addr is not None:
            result.portals[(enc, iom, port)] = addr

    if shared:
        for n in nodes:
            addr = IPAddress(n.fabric_address) if n.fabric_address else next_free(n.name)
            if addr is not None:
                result.nodes[n.name] = NodeSegment(fab.storage_vlan, storage, addr, None)
    else:
        _per_node_segments(spec, nodes, result)
    if left_out:
        result.problems.append(("fabric.subnet", _subnet_full(storage, left_out)))

    if routed_switch(spec):
        # the storage SVI takes the highest free host, away from the portals/nodes counting upwards
        svi = next((a for a in reversed(list(usable_hosts(storage))) if a not in taken), None)
        if svi is None:
            result.problems.append(("fabric.subnet", f"no address left in {storage.cidr} for the switch SVI"))
        result.storage_svi = svi
    return result


def _subnet_full(storage: IPNetwork, left_out: list[str]) -> str:
    """One message for everything a too small subnet leaves without an address."""
    hosts = len(list(usable_hosts(storage)))
    noun = "address" if len(left_out) == 1 else "addresses"
    return (
        f"{storage.cidr} has {hosts} host addresses: {len(left_out)} more {noun} needed, for {name_list(left_out)} "
        f"(use a larger fabric.subnet)"
    )


def _per_node_segments(spec: PodSpec, nodes: list[Node], result: Addressing) -> None:
    fab = spec.fabric
    assert fab.node_vlans is not None and fab.node_subnets is not None
    supernet = IPNetwork(fab.node_subnets)
    if fab.node_prefix_length < supernet.prefixlen:
        result.problems.append(
            ("fabric.node_prefix_length", f"/{fab.node_prefix_length} is larger than node_subnets {supernet}")
        )
        return
    if supernet.first <= result.storage_subnet.last and result.storage_subnet.first <= supernet.last:
        result.problems.append(
            ("fabric.node_subnets", f"{supernet} overlaps fabric.subnet {result.storage_subnet} (use a disjoint range)")
        )
    subnets = supernet.subnet(fab.node_prefix_length)
    for i, n in enumerate(nodes):
        net = next(subnets, None)
        if net is None:
            result.problems.append(
                ("fabric.node_subnets", f"{supernet} holds fewer than {len(nodes)} /{fab.node_prefix_length} subnets")
            )
            return
        hosts = list(usable_hosts(net))
        gateway, auto = hosts[0], hosts[1]
        addr = auto
        if n.fabric_address is not None:
            addr = IPAddress(n.fabric_address)
            why = is_usable(addr, net)
            if why or addr == gateway:
                result.problems.append(
                    (f"nodes[{i}].fabric_address", f"{why or f'{addr} is the gateway'} (this node's subnet is {net})")
                )
        result.nodes[n.name] = NodeSegment(fab.node_vlans.start + i, net, addr, gateway)
