"""The NVUE patch, pure: rendered from the plan, and compared with the applied configuration."""

from __future__ import annotations

import re

import yaml

from deploy.encode import comment
from deploy.plan import RoceQosPlan, SwitchPlan

PATCH_PATH = "/tmp/kvpod-nvue-patch.yaml"
# What ``nv set qos roce mode lossless`` sets by itself (Cumulus Linux 5.x RoCE): PFC priority, DSCP, ECN.
NVUE_ROCE_PROFILE = (3, [26], True)
DEFAULT_BRIDGE = "br_default"


def natural_key(name: str) -> list[int | str]:
    """Sort key putting swp2 before swp10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def nvue_tree(plan: SwitchPlan) -> dict:
    """The ``set`` tree of the patch (plain dicts, keys already in output order)."""
    br = plan.bridge
    interfaces: dict[str, dict] = {}
    for p in sorted(plan.ports, key=lambda p: natural_key(p.port)):
        membership: dict = (
            {"untagged": "none", "vlan": {str(p.access_vlan): {}}} if p.tagged else {"access": p.access_vlan}
        )
        interfaces[p.port] = {
            "bridge": {"domain": {br: membership}},
            "description": p.description,
            "link": {"mtu": p.mtu, "state": {"up": {}}},
        }
    vlans = sorted(plan.vlans, key=lambda v: v.id)
    for v in vlans:
        if v.svi_address:
            svi: dict = {"ip": {"address": {f"{v.svi_address}/{v.prefix_length}": {}}}, "type": "svi", "vlan": v.id}
            if br != DEFAULT_BRIDGE:
                svi = {"base-interface": br, **svi}
            interfaces[f"vlan{v.id}"] = svi
    tree: dict = {"bridge": {"domain": {br: {"vlan": {str(v.id): {} for v in vlans}}}}}
    if interfaces:
        tree["interface"] = interfaces
    if plan.roce_qos:
        tree["qos"] = roce_tree(plan.roce)
    return tree


def roce_tree(roce: RoceQosPlan | None) -> dict:
    """The ``qos`` tree of lossless RoCE. NVUE's RoCE profile (``qos roce``) already trusts DSCP 26 into
    priority 3 with PFC and ECN there; a pod whose ``fabric.roce_qos`` differs also gets that priority's PFC,
    its DSCP mapping (trust l3) and ECN on its traffic class, from the same values the nodes' NICs get."""
    qos: dict = {"roce": {"enable": "on", "mode": "lossless"}}
    if roce is None or (roce.priority, list(roce.dscp), roce.ecn) == NVUE_ROCE_PROFILE:
        return qos
    qos["pfc"] = {"default-global": {"switch-priority": {str(roce.priority): {}}}}
    qos["mapping"] = {
        "default-global": {"trust": "l3", "dscp": {str(d): {"switch-priority": roce.priority} for d in roce.dscp}}
    }
    ecn = "enable" if roce.ecn else "disable"
    qos["congestion-control"] = {"default-global": {"traffic-class": {str(roce.priority): {"ecn": ecn}}}}
    return qos


def render_nvue_patch(plan: SwitchPlan) -> str:
    """The YAML file ``nv config patch`` takes, byte-identical for the same plan."""
    header = (
        comment(f"# kvpod: NVUE patch for switch {plan.name} (Cumulus Linux 5.x)") + "\n"
        f"# Apply by hand: nv config patch {PATCH_PATH} && nv config diff && nv config apply -y\n"
    )
    body = yaml.safe_dump([{"set": nvue_tree(plan)}], sort_keys=False, default_flow_style=False, width=1000)
    return header + body


def diff_is_empty(diff: str) -> bool:
    """True when an ``nv config diff`` output changes nothing (no text, or an empty YAML document)."""
    text = diff.strip()
    if not text:
        return True
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if isinstance(data, list):
        return all(not entry or (isinstance(entry, dict) and not any(entry.values())) for entry in data)
    return not data


def _set_tree(documents: object) -> dict | None:
    """The ``set`` trees of an NVUE YAML document list (a patch, or ``nv config show -o yaml``) merged."""
    if not isinstance(documents, list):
        return None
    tree: dict = {}
    for entry in documents:
        if isinstance(entry, dict) and isinstance(entry.get("set"), dict):
            _merge(tree, entry["set"])
    return tree


def _merge(into: dict, tree: dict) -> None:
    for key, value in tree.items():
        key = str(key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _missing(wanted: dict, applied: dict, path: str = "") -> list[str]:
    out = []
    applied = {str(k): v for k, v in applied.items()}
    for key, value in wanted.items():
        where = f"{path}.{key}" if path else str(key)
        have = applied.get(str(key))
        if isinstance(value, dict):
            if not isinstance(have, dict):
                out.append(f"{where}: absent" if have is None else f"{where}: {have!r}, not a mapping")
            else:
                out.extend(_missing(value, have, where))
        elif have is None or str(have) != str(value):
            out.append(f"{where}: {have!r}, planned {value!r}")
    return out


def patch_differences(patch: str, applied: str) -> list[str] | None:
    """What applying ``patch`` would change in the applied configuration (``nv config show -r applied -o
    yaml``), one ``path: found, planned`` line per setting; [] when nothing, None when ``applied`` cannot be
    read. Pure: a read-only command compares without staging anything on the switch."""
    wanted = _set_tree(yaml.safe_load(patch))
    try:
        have = _set_tree(yaml.safe_load(applied)) if applied.strip() else {}
    except yaml.YAMLError:
        return None
    if wanted is None or have is None:
        return None
    return _missing(wanted, have)
