"""The Linux bridge's pure part: its state command and parser, the commands that converge it, its script."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from deploy.encode import comment
from deploy.plan import Plan, SwitchPlan

PVID = "PVID"
UNTAGGED = "Egress Untagged"
ACCESS_FLAGS = frozenset({PVID, UNTAGGED})
DEFAULT_PVID = 1

_MARK = "#kvpod:"


@dataclass(frozen=True)
class Link:
    """One link as ``ip -j -d link show`` reports it."""

    name: str
    kind: str | None
    mtu: int
    master: str | None
    up: bool
    vlan_filtering: bool = False  # bridges only


@dataclass(frozen=True)
class BridgeState:
    """The live state of a namespace (or host) holding the bridge."""

    netns_exists: bool = True
    links: dict[str, Link] = field(default_factory=dict)
    vlans: dict[str, dict[int, frozenset[str]]] = field(default_factory=dict)  # port → vid → flags
    filtering_supported: bool = False  # the bridge's sysfs vlan_filtering knob exists


def ip_cmd(netns: str | None, *args: str) -> str:
    """An ``ip`` command line, inside ``netns`` when given, every word shell-quoted."""
    return shlex.join(["ip", *(["-n", netns] if netns else []), *args])


def bridge_cmd(netns: str | None, *args: str) -> str:
    """A ``bridge`` command line, inside ``netns`` when given."""
    return shlex.join(["bridge", *(["-n", netns] if netns else []), *args])


def _sysfs_test(netns: str | None, bridge: str) -> str:
    test = ["test", "-e", f"/sys/class/net/{bridge}/bridge/vlan_filtering"]
    return shlex.join(["ip", "netns", "exec", netns, *test] if netns else test)


def state_command(netns: str | None, bridge: str) -> str:
    """One shell command printing links, VLANs and VLAN filtering support in marked sections."""
    return " ".join(
        [
            f"if {ip_cmd(netns, 'link', 'show')} >/dev/null 2>&1; then",
            f"echo '{_MARK}links'; {ip_cmd(netns, '-j', '-d', 'link', 'show')};",
            f"echo '{_MARK}vlans'; {bridge_cmd(netns, '-j', 'vlan', 'show')} 2>/dev/null || echo '[]';",
            f"echo '{_MARK}filtering'; if {_sysfs_test(netns, bridge)}; then echo 1; else echo 0; fi;",
            f"else echo '{_MARK}no-netns'; fi",
        ]
    )


def parse_state(lines: list[str]) -> BridgeState:
    """Parse :func:`state_command` output."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(_MARK):
            current = sections.setdefault(line[len(_MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    if "no-netns" in sections:
        return BridgeState(netns_exists=False)
    links: dict[str, Link] = {}
    for entry in json.loads("".join(sections.get("links", [])) or "[]"):
        info = entry.get("linkinfo") or {}
        data = info.get("info_data") or {}
        links[entry["ifname"]] = Link(
            name=entry["ifname"],
            kind=info.get("info_kind"),
            mtu=int(entry.get("mtu", 0)),
            master=entry.get("master"),
            up="UP" in entry.get("flags", []),
            vlan_filtering=bool(data.get("vlan_filtering", 0)),
        )
    vlans: dict[str, dict[int, frozenset[str]]] = {}
    for entry in json.loads("".join(sections.get("vlans", [])) or "[]"):
        port_vlans: dict[int, frozenset[str]] = {}
        for v in entry.get("vlans", []):
            first = int(v["vlan"])
            last = int(v.get("vlanEnd", first))
            for vid in range(first, last + 1):
                port_vlans[vid] = frozenset(v.get("flags", []))
        vlans[entry["ifname"]] = port_vlans
    filtering = "".join(sections.get("filtering", [])).strip() == "1"
    return BridgeState(links=links, vlans=vlans, filtering_supported=filtering)


def link_commands(plan: SwitchPlan, state: BridgeState) -> list[str]:
    """Create the bridge if missing, enslave each port with the MTU, then set the bridge MTU and up."""
    ns, br, mtu = plan.netns, plan.bridge, plan.mtu
    cmds: list[str] = []
    bridge = state.links.get(br)
    if bridge is None:
        cmds.append(ip_cmd(ns, "link", "add", br, "type", "bridge"))
    for p in plan.ports:
        link = state.links.get(p.port)
        if link is None or link.master != br or link.mtu != mtu or not link.up:
            cmds.append(ip_cmd(ns, "link", "set", p.port, "master", br, "mtu", str(mtu), "up"))
    if bridge is None or bridge.mtu != mtu or not bridge.up:
        cmds.append(ip_cmd(ns, "link", "set", br, "mtu", str(mtu), "up"))
    return cmds


def wanted_vlans(plan: SwitchPlan) -> dict[str, dict[int, frozenset[str]]]:
    """Port → the only VLANs it should carry: tagged (no flags) or access (PVID, egress untagged)."""
    return {p.port: {p.access_vlan: frozenset() if p.tagged else ACCESS_FLAGS} for p in plan.ports}


def vlan_commands(plan: SwitchPlan, state: BridgeState) -> list[str]:
    """``bridge vlan`` commands making each port's VLANs exactly :func:`wanted_vlans` (filtering must be on)."""
    ns = plan.netns
    cmds: list[str] = []
    for port, wanted in wanted_vlans(plan).items():
        have = state.vlans.get(port, {})
        for vid, flags in sorted(wanted.items()):
            if have.get(vid) != flags:
                extra = ["pvid", "untagged"] if flags else []
                cmds.append(bridge_cmd(ns, "vlan", "add", "vid", str(vid), "dev", port, *extra))
        for vid in sorted(set(have) - set(wanted)):
            cmds.append(bridge_cmd(ns, "vlan", "del", "vid", str(vid), "dev", port))
    return cmds


def unrouted_vlans(plan: SwitchPlan) -> str:
    """The SVIs the plan asks for, which this driver does not configure ("" when none)."""
    return ", ".join(f"VLAN {v.id} ({v.svi_address}/{v.prefix_length})" for v in plan.vlans if v.svi_address)


def filtering_command(plan: SwitchPlan) -> str:
    """Turn VLAN filtering on; never fails, the caller reads the state again to see whether it took."""
    return ip_cmd(plan.netns, "link", "set", plan.bridge, "type", "bridge", "vlan_filtering", "1") + " || true"


def where(plan: SwitchPlan) -> str:
    return f"network namespace {plan.netns}" if plan.netns else "this host"


def render_script(plan: SwitchPlan, pod: Plan | None = None) -> str:
    """A POSIX shell script doing what the deploy does, for reading or running by hand (safe to run twice)."""
    ns, br, mtu = plan.netns, plan.bridge, str(plan.mtu)
    pod_note = f", pod {pod.pod}" if pod else ""
    lines = [
        "#!/bin/sh",
        comment(f"# kvpod: Linux bridge {br} in {where(plan)} (switch {plan.name}{pod_note})"),
        "set -e",
        *(
            [comment(f"# not configured (a Linux bridge does not route): SVI for {unrouted_vlans(plan)}")]
            if unrouted_vlans(plan)
            else []
        ),
        f"{ip_cmd(ns, 'link', 'show', br)} >/dev/null 2>&1 || {ip_cmd(ns, 'link', 'add', br, 'type', 'bridge')}",
    ]
    for p in plan.ports:
        lines.append(
            f"{ip_cmd(ns, 'link', 'set', p.port, 'master', br, 'mtu', mtu, 'up')}  {comment('# ' + p.description)}"
        )
    lines.append(ip_cmd(ns, "link", "set", br, "mtu", mtu, "up"))
    if plan.ports:
        enable = ip_cmd(ns, "link", "set", br, "type", "bridge", "vlan_filtering", "1")
        lines += [
            "# VLAN filtering where the kernel offers it; without it the bridge passes tagged frames unchanged",
            f"if {_sysfs_test(ns, br)} && {enable}; then",
        ]
        for port, wanted in wanted_vlans(plan).items():
            for vid, flags in sorted(wanted.items()):
                extra = ["pvid", "untagged"] if flags else []
                lines.append("  " + bridge_cmd(ns, "vlan", "add", "vid", str(vid), "dev", port, *extra))
                if vid != DEFAULT_PVID:
                    drop_default = bridge_cmd(ns, "vlan", "del", "vid", str(DEFAULT_PVID), "dev", port)
                    lines.append(f"  {drop_default} || true")
        lines += [
            "else",
            f"  echo {shlex.quote(f'{br}: no VLAN filtering on this kernel; VLANs pass through untouched')} >&2",
            "fi",
        ]
    return "\n".join(lines) + "\n"
