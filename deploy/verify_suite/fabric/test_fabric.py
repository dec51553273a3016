"""Fabric: the NIC and storage VLAN interface, MTU, address, a jumbo path to each portal, RDMA, socket buffers."""

from __future__ import annotations

import ipaddress

import pytest
from verify_expect import SYSCTL_FILE, Text, expect, fail, ping_size
from verify_facts import HostFacts
from verify_parse import parse_sysctl_file

from deploy.plan import NodePlan, PortalPlan

pytestmark = pytest.mark.area("fabric")


class TestInterfaces:
    def test_fabric_nic(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The planned fabric NIC exists."""
        link = node_facts.link(node.fabric.interface)
        expect(f"interface {node.fabric.interface}", "present", "present" if link else "absent")

    def test_nic_mtu(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The NIC carries at least the planned MTU (a VLAN interface cannot exceed its parent's)."""
        link = node_facts.link(node.fabric.interface)
        found = link.get("mtu") if link else None
        if found is None or found < node.fabric.mtu:
            fail(f"MTU of {node.fabric.interface}", Text(f">= {node.fabric.mtu}"), found)

    def test_vlan_interface(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The storage VLAN interface exists, is an 802.1Q VLAN with the planned id, on the fabric NIC."""
        fab = node.fabric
        link = node_facts.link(fab.vlan_interface)
        if link is None:
            fail(f"interface {fab.vlan_interface}", Text(f"VLAN {fab.vlan} on {fab.interface}"), Text("absent"))
        info = link.get("linkinfo", {})
        found = f"{info.get('info_kind')} {info.get('info_data', {}).get('id')} on {link.get('link')}"
        expect(f"interface {fab.vlan_interface}", f"vlan {fab.vlan} on {fab.interface}", found)

    def test_vlan_up(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The VLAN interface is administratively up and has a carrier."""
        link = node_facts.link(node.fabric.vlan_interface) or {}
        flags = set(link.get("flags", []))
        expect(f"link flags of {node.fabric.vlan_interface}", {"UP", "LOWER_UP"}, flags & {"UP", "LOWER_UP"})

    def test_vlan_mtu(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The VLAN interface has the planned MTU."""
        link = node_facts.link(node.fabric.vlan_interface) or {}
        expect(f"MTU of {node.fabric.vlan_interface}", node.fabric.mtu, link.get("mtu"))

    def test_planned_address(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The VLAN interface holds the planned address and prefix."""
        fab = node.fabric
        wanted = f"{fab.address}/{fab.prefix_length}"
        found = node_facts.addresses(fab.vlan_interface)
        if wanted not in found:
            fail(f"IPv4 addresses of {fab.vlan_interface}", Text(f"to include '{wanted}'"), found)


class TestPortalPath:
    def test_portal_route(self, node: NodePlan, portal: PortalPlan, node_facts: HostFacts) -> None:
        """Traffic to the portal leaves through the storage VLAN interface (via the planned gateway, if any)."""
        route = node_facts.route_to(portal.address) or {}
        found = f"dev {route.get('dev')}" + (f" via {route['gateway']}" if route.get("gateway") else "")
        wanted = f"dev {node.fabric.vlan_interface}"
        if node.fabric.gateway and not _on_link(node, portal.address):
            wanted += f" via {node.fabric.gateway}"
        expect(f"route to {portal.address}", wanted, found)

    def test_portal_ping(self, node: NodePlan, portal: PortalPlan, node_facts: HostFacts) -> None:
        """A do-not-fragment ping filling one planned MTU reaches the portal: jumbo frames pass end to end."""
        size = ping_size(node)
        result = node_facts.ping(portal.address, size)
        if result.rc != 0:
            out = (result.stdout + result.stderr).strip().splitlines()
            fail(
                f"ping -M do -s {size} {portal.address}",
                Text("a reply"),
                Text(f"exit {result.rc}: {out[-1] if out else 'no output'}"),
            )


class TestRdma:
    def test_rdma_device(self, node: NodePlan, node_facts: HostFacts) -> None:
        """An RDMA device (hardware, or soft-RoCE rxe) serves the fabric NIC when the transport is RDMA."""
        if node.namespace.transport != "rdma":
            pytest.skip(f"transport is {node.namespace.transport}")
        netdevs = {link.get("netdev") for link in node_facts.rdma_links() if link.get("netdev")}
        wanted = {node.fabric.interface, node.fabric.vlan_interface}
        if not netdevs & wanted:
            fail("RDMA devices' netdevs", Text(f"one of {sorted(wanted)}"), netdevs)


class TestSocketBuffers:
    def test_sysctl(self, node: NodePlan, sysctl: tuple[str, int], node_facts: HostFacts) -> None:
        """The live socket buffer limit is the planned size."""
        key, value = sysctl
        expect(key, str(value), node_facts.sysctl(key))

    def test_sysctl_persisted(self, node: NodePlan, sysctl: tuple[str, int], node_facts: HostFacts) -> None:
        """The socket buffer limit is persisted for boot in the product's sysctl.d file."""
        key, value = sysctl
        text = node_facts.file_text(SYSCTL_FILE)
        found = parse_sysctl_file(text).get(key) if text is not None else None
        expect(f"{key} in {SYSCTL_FILE}", str(value), found)


def _on_link(node: NodePlan, address: str) -> bool:
    """Whether ``address`` lies in the node's own fabric subnet (reached without the gateway)."""
    subnet = ipaddress.ip_network(f"{node.fabric.address}/{node.fabric.prefix_length}", strict=False)
    return ipaddress.ip_address(address) in subnet
