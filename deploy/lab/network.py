"""The lab's fabric: a network namespace holding a bridge, and one tap per VM.

The host creates each tap, qemu opens it, then the tap is moved into the lab's namespace and set up.
The host never holds an address on the fabric. Joining taps to the bridge and setting the MTU is the
switch driver's job, not the lab's; :func:`bridge_ports` lets tests check what it did.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

from .errors import LabError

DEFAULT_NETNS = "kvpod-lab"
DEFAULT_BRIDGE = "fabric0"


def _ip(args: list[str], netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def netns_exists(netns: str) -> bool:
    """Whether the named network namespace exists."""
    result = _ip(["-j", "netns", "list"], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return False
    return any(entry.get("name") == netns for entry in json.loads(result.stdout))


def link_exists(name: str, netns: str | None = None) -> bool:
    """Whether a link of that name exists in ``netns`` (None: the host's namespace)."""
    return _ip(["link", "show", "dev", name], netns=netns, check=False).returncode == 0


def ensure_netns(netns: str) -> bool:
    """Create the namespace with its loopback up; return True if it was created now."""
    if netns_exists(netns):
        return False
    _ip(["netns", "add", netns])
    _ip(["link", "set", "lo", "up"], netns=netns)
    return True


def ensure_bridge(netns: str, bridge: str) -> bool:
    """Create the bridge inside ``netns`` and set it up (MTU untouched); return True if created now."""
    if link_exists(bridge, netns):
        return False
    _ip(["link", "add", bridge, "type", "bridge"], netns=netns)
    _ip(["link", "set", bridge, "up"], netns=netns)
    return True


def create_tap(name: str) -> None:
    """Create a persistent tap in the host's namespace, for qemu to open by name."""
    if link_exists(name):
        raise LabError(f"a link named {name} already exists on the host; run `down` or remove it")
    _ip(["tuntap", "add", "dev", name, "mode", "tap"])


def move_into_netns(name: str, netns: str) -> None:
    """Move a host link into ``netns`` and set it up there (no master, no MTU change)."""
    _ip(["link", "set", "dev", name, "netns", netns])
    _ip(["link", "set", "dev", name, "up"], netns=netns)


@dataclass(frozen=True)
class PortConfig:
    """What a switch port keeps while its machine is off: bridge, MTU and VLANs (``bridge -j vlan`` entries)."""

    master: str | None
    mtu: int
    vlans: list[dict] = field(default_factory=list)


def parse_port_config(link_json: str, vlan_json: str) -> PortConfig:
    """A port's configuration from ``ip -j link show dev`` and ``bridge -j vlan show dev`` output (pure)."""
    link = json.loads(link_json)[0]
    entries = json.loads(vlan_json) if vlan_json.strip() else []
    vlans = [v for entry in entries for v in entry.get("vlans", [])]
    return PortConfig(master=link.get("master"), mtu=int(link["mtu"]), vlans=vlans)


def port_restore_commands(name: str, config: PortConfig) -> list[list[str]]:
    """``ip``/``bridge`` argvs (without the namespace) that give a fresh tap ``name`` the ``config`` (pure).

    Joining a bridge adds its default VLAN; it is removed again unless the port had it.
    """
    cmds = [["ip", "link", "set", "dev", name, "mtu", str(config.mtu)]]
    if config.master is None:
        return cmds
    cmds.append(["ip", "link", "set", "dev", name, "master", config.master])
    cmds.append(["bridge", "vlan", "del", "dev", name, "vid", "1"])
    for v in config.vlans:
        flags = {"PVID": "pvid", "Egress Untagged": "untagged"}
        first, last = int(v["vlan"]), int(v.get("vlanEnd", v["vlan"]))
        vid = str(first) if first == last else f"{first}-{last}"
        extra = [flags[f] for f in v.get("flags", []) if f in flags]
        cmds.append(["bridge", "vlan", "add", "dev", name, "vid", vid, *extra])
    return cmds


def port_config(name: str, netns: str) -> PortConfig | None:
    """The configuration of port ``name`` in ``netns``, or None when there is no such link."""
    if not link_exists(name, netns):
        return None
    link = _ip(["-j", "link", "show", "dev", name], netns=netns).stdout
    argv = ["bridge", "-n", netns, "-j", "vlan", "show", "dev", name]
    vlans = subprocess.run(argv, capture_output=True, text=True, check=False)
    return parse_port_config(link, vlans.stdout if vlans.returncode == 0 else "")


def restore_port(name: str, netns: str, config: PortConfig) -> None:
    """Give tap ``name`` (already in ``netns``) the configuration it had before its machine stopped."""
    for argv in port_restore_commands(name, config):
        full = [argv[0], "-n", netns, *argv[1:]]
        result = subprocess.run(full, capture_output=True, text=True, check=False)
        if result.returncode != 0 and argv[:3] != ["bridge", "vlan", "del"]:
            raise LabError(f"`{' '.join(full)}` failed: {result.stderr.strip()}")


def delete_link(name: str, netns: str | None = None) -> bool:
    """Delete a link if it exists; return True if it did."""
    if not link_exists(name, netns):
        return False
    _ip(["link", "del", "dev", name], netns=netns)
    return True


def delete_netns(netns: str) -> bool:
    """Delete the namespace (and the virtual links in it) if it exists; return True if it did."""
    if not netns_exists(netns):
        return False
    _ip(["netns", "del", netns])
    return True


def parse_bridge_ports(links_json: str, bridge: str) -> dict[str, int]:
    """From ``ip -j link show`` output, the ports enslaved to ``bridge`` and their MTUs (pure)."""
    links = json.loads(links_json) if links_json.strip() else []
    return {link["ifname"]: int(link["mtu"]) for link in links if link.get("master") == bridge}


def bridge_ports(netns: str = DEFAULT_NETNS, bridge: str = DEFAULT_BRIDGE) -> dict[str, int]:
    """The ports of ``bridge`` in ``netns`` and their MTUs, e.g. ``{"kvl-node1": 9000}``."""
    return parse_bridge_ports(_ip(["-j", "link", "show"], netns=netns).stdout, bridge)


def link_mtu(name: str, netns: str | None = None) -> int:
    """The MTU of a link."""
    data = json.loads(_ip(["-j", "link", "show", "dev", name], netns=netns).stdout)
    return int(data[0]["mtu"])
