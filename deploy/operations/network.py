"""Network operations on the live kernel state (``ip``, ``dcb``): the fabric NIC, its VLAN interface, routes, and
the NIC's lossless RoCE settings.

Only what differs is changed, so an interface that is already right is never bounced.
"""

from __future__ import annotations

import ipaddress

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploy.dcb import ecn_path, wanted_commands
from deploy.facts.network import DcbState, IpLinks, IpRoutes
from deploy.operations import refuse


def _ip(*bits) -> StringCommand:
    return StringCommand("ip", *(QuoteString(str(b)) for b in bits))


@operation()
def vlan_interface(
    parent: str,
    vlan_id: int,
    interface: str,
    mtu: int,
    address: str,
    prefix_length: int,
    extra_addresses: list[str] | None = None,
):
    """
    ``parent`` is up with ``mtu``; VLAN ``vlan_id`` on it is ``interface``, up, with ``mtu`` and exactly the
    IPv4 address ``address/prefix_length``. Other interfaces are never touched.

    + parent: the fabric NIC
    + vlan_id, interface: the VLAN and its interface name (``eth1.100``)
    + mtu: MTU of both
    + address, prefix_length: the interface's IPv4 address
    + extra_addresses: further ``address/prefix`` on the same interface (a target with two portals on one NIC)
    """
    links = host.get_fact(IpLinks)
    nic = links.get(parent)
    if nic is None:
        yield from refuse(f"there is no network interface {parent} (the fabric NIC)")
        return
    want_addr = f"{address}/{prefix_length}"
    wanted = [want_addr, *(extra_addresses or [])]
    did = False
    if nic["mtu"] != mtu or not nic["up"]:  # one command for both: the MTU is set before the link goes up
        did = True
        yield _ip(
            "link", "set", "dev", parent, *(["mtu", mtu] if nic["mtu"] != mtu else []), *([] if nic["up"] else ["up"])
        )

    vlan = links.get(interface)
    if vlan is not None and (vlan["kind"] != "vlan" or vlan["vlan_id"] != vlan_id or vlan["link"] != parent):
        if vlan["kind"] != "vlan":
            yield from refuse(f"{interface} exists and is not a VLAN interface ({vlan['kind'] or 'a device'})")
            return
        did = True
        yield _ip("link", "delete", "dev", interface)
        vlan = None
    if vlan is None:
        yield _ip("link", "add", "link", parent, "name", interface, "mtu", mtu, "up", "type", "vlan", "id", vlan_id)
        for addr in wanted:
            yield _ip("addr", "add", addr, "dev", interface)
        return
    if vlan["mtu"] != mtu:
        did = True
        yield _ip("link", "set", "dev", interface, "mtu", mtu)
    if not vlan["up"]:
        did = True
        yield _ip("link", "set", "dev", interface, "up")
    for stale in vlan["addresses"]:
        if stale not in wanted:
            did = True
            yield _ip("addr", "del", stale, "dev", interface)
    for addr in wanted:
        if addr not in vlan["addresses"]:
            did = True
            yield _ip("addr", "add", addr, "dev", interface)
    if not did:
        host.noop(f"{interface} is up on {parent} with {', '.join(wanted)}, MTU {mtu}")


def _same_net(a: str | None, b: str) -> bool:
    if a is None:
        return False
    if a == "default":
        return b in ("default", "0.0.0.0/0")
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return False


@operation()
def routes(interface: str, gateway: str, destinations: list[str]):
    """
    Each destination subnet is routed through ``gateway`` on ``interface``.

    + interface: outgoing interface
    + gateway: next hop
    + destinations: subnets (``10.78.0.0/24``)
    """
    current = host.get_fact(IpRoutes)
    missing = [
        dst
        for dst in destinations
        if not any(_same_net(r["dst"], dst) and r["gateway"] == gateway and r["dev"] == interface for r in current)
    ]
    if not missing:
        host.noop(f"{len(destinations)} route(s) via {gateway} are in place")
        return
    for dst in missing:
        yield _ip("route", "replace", dst, "via", gateway, "dev", interface)


@operation()
def roce_qos(interface: str, priority: int, dscp: list[int], ecn: bool = True):
    """
    The NIC carries lossless RoCE (:mod:`deploy.dcb`): each DSCP value mapped to ``priority`` (``dcb app``),
    PFC on ``priority`` only (``dcb pfc``), ECN of that priority on (mlx5 sysfs, where the NIC has it). Only what
    differs is set; a NIC whose DCB cannot be read is an error (a soft-RoCE or virtio NIC is never given this).

    + interface: the fabric NIC (the physical port, not the VLAN)
    + priority: the lossless priority (0-7)
    + dscp: DSCP values mapped to it
    + ecn: ECN marking on the priority
    """
    state = host.get_fact(DcbState, interface=interface, priority=priority)
    if state is None:
        yield from refuse(
            f"{interface}: its DCB cannot be read with dcb -j (iproute2 with dcb and a NIC with DCB support are "
            "needed for fabric.roce_qos)"
        )
        return
    commands = wanted_commands(interface, priority, dscp, ecn, state)
    if not commands:
        host.noop(f"{interface}: DSCP {dscp} -> priority {priority}, PFC and ECN as planned")
        return
    for argv in commands:
        if argv[0] == "ecn":
            yield StringCommand("printf", "'%s\\n'", argv[2], ">", QuoteString(ecn_path(interface, argv[1], priority)))
        else:
            yield StringCommand(*(QuoteString(word) for word in argv))
