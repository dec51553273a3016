"""Network facts: live links and addresses (``ip -j``), routes, and whether the host is configured by netplan."""

from __future__ import annotations

import json

from pyinfra.api import FactBase

from deploy.dcb import READ_SCRIPT, parse_dcb
from deploy.encode import shell_word


class IpLinks(FactBase[dict[str, dict]]):
    """
    Network interfaces as the kernel has them now (``ip -j -d addr show``); IPv4 addresses only.

    .. code:: python

        {"eth1.100": {"mtu": 9000, "up": True, "kind": "vlan", "vlan_id": 100, "link": "eth1",
                      "addresses": ["10.78.0.11/24"]}}
    """

    default = dict

    def command(self) -> str:
        return "ip -j -d addr show 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, dict]:
        text = "\n".join(output).strip()
        if not text:
            return {}
        links = {}
        for item in json.loads(text):
            info = item.get("linkinfo") or {}
            data = info.get("info_data") or {}
            links[item["ifname"]] = {
                "mtu": item.get("mtu"),
                "up": "UP" in item.get("flags", []),
                "kind": info.get("info_kind"),
                "vlan_id": data.get("id") if info.get("info_kind") == "vlan" else None,
                "link": item.get("link"),
                "addresses": [
                    f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", []) if a.get("family") == "inet"
                ],
            }
        return links


class IpRoutes(FactBase[list[dict]]):
    """
    IPv4 routes of the main table (``ip -j route show``).

    .. code:: python

        [{"dst": "10.78.0.0/24", "gateway": "10.78.1.1", "dev": "eth1.101"}]
    """

    default = list

    def command(self) -> str:
        return "ip -j route show 2>/dev/null || true"

    def process(self, output: list[str]) -> list[dict]:
        text = "\n".join(output).strip()
        if not text:
            return []
        return [{"dst": r.get("dst"), "gateway": r.get("gateway"), "dev": r.get("dev")} for r in json.loads(text)]


class NetplanFiles(FactBase[list[str]]):
    """
    The netplan configuration files in ``/etc/netplan`` (empty: the host is not configured by netplan).

    .. code:: python

        ["/etc/netplan/50-cloud-init.yaml"]
    """

    default = list

    def command(self) -> str:
        return "ls -1 /etc/netplan/*.yaml /etc/netplan/*.yml 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return sorted(line.strip() for line in output if line.strip())


class DcbState(FactBase[dict | None]):
    """
    A NIC's lossless RoCE settings (iproute2 ``dcb -j``, mlx5 ECN sysfs), see :mod:`deploy.dcb`; None when the
    NIC's DCB cannot be read (no ``dcb``, a NIC without DCB).

    .. code:: python

        {"dscp_prio": {26: 3}, "pfc": {0: False, 3: True}, "ecn": {"roce_np": "1", "roce_rp": "1"}}
    """

    def command(self, interface: str, priority: int) -> str:
        return f"sh -c {shell_word(READ_SCRIPT)} sh {shell_word(interface)} {int(priority)} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict | None:
        return parse_dcb(output)
