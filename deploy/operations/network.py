"""Network operations on the live kernel state (``ip``): the fabric NIC, its VLAN interface, routes.

Only what differs is changed, so an interface that is already right is never bounced.
"""

from __future__ import annotations

import ipaddress

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploy.facts.network import IpLinks, IpRoutes
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
    if nic["mtu"] != mtu:
        did = True
        yield _ip("link", "set", "dev", parent, "mtu", mtu)
    if not nic["up"]:
        did = True
        yield _ip("link", "set", "dev", parent, "up")

    vlan = links.get(interface)
    if vlan is not None and (vlan["kind"] != "vlan" or vlan["vlan_id"] != vlan_id or vlan["link"] != parent):
        if vlan["kind"] != "vlan":
            yield from refuse(f"{interface} exists and is not a VLAN interface ({vlan['kind'] or 'a device'})")
            return
        did = True
        yield _ip("link", "delete", "dev", interface)
        vlan = None
    if vlan is None:
        yield _ip("link", "add", "link", parent, "name", interface, "mtu", mtu, "type", "vlan", "id", vlan_id)
        yield _ip("link", "set", "dev", interface, "up")
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
