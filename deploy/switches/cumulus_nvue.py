"""NVIDIA Cumulus Linux 5.x through NVUE: one ``nv config patch`` YAML file per switch.

The patch is the documented NVUE YAML form, a list with one ``- set:`` tree whose paths mirror the
``nv set`` commands (Cumulus Linux 5.x user guide, "NVUE CLI" and "VLAN-aware Bridge Mode"):

* ``interface <port> description <text>``, ``link mtu <n>``, ``link state up`` (YAML ``state: {up: {}}``,
  as ``nv config show`` prints it);
* ``interface <port> bridge domain <br> access <vid>`` for an untagged peer; for a tagged peer
  ``... bridge domain <br> vlan <vid>`` and ``... untagged none`` (drop untagged frames);
* ``bridge domain <br> vlan <vid>`` for every VLAN of the pod;
* ``interface vlan<vid> type svi``, ``vlan <vid>``, ``ip address <a>/<len>`` for each routed VLAN;
* ``qos roce enable on`` and ``qos roce mode lossless`` when RoCE QoS is asked for.

A patch only adds or changes; it never removes what an earlier run set and the plan no longer has.

Applying (:mod:`deploy.switches.cumulus_nvue_apply`): the file goes to ``/tmp/kvpod-nvue-patch.yaml``;
:class:`NvuePatchDiff` stages it into the
pending revision, reads ``nv config diff`` and drops the staging again (``nv config detach``).
``nv config apply -y`` runs only when that diff is not empty, so an unchanged switch sees no command.
"""

from __future__ import annotations

import importlib
import re

import yaml

from deploy.encode import comment
from deploy.plan import Plan, SwitchPlan
from deploy.switches import SwitchDriver

PATCH_PATH = "/tmp/kvpod-nvue-patch.yaml"
DEFAULT_BRIDGE = "br_default"
DIFF_MARK = "#kvpod:diff"
UNSTAGED_MARK = "#kvpod:unstaged"


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
        tree["qos"] = {"roce": {"enable": "on", "mode": "lossless"}}
    return tree


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


class CumulusNvueDriver(SwitchDriver):
    kind = "cumulus-nvue"

    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        return render_nvue_patch(plan)

    def reads(self, plan: SwitchPlan) -> list:
        return _on_switch().reads(plan)

    def deploy(self) -> None:
        _on_switch().apply_switch()


def _on_switch():
    """What runs on the switch (pyinfra facts and operations), imported only by a command that reaches hosts."""
    return importlib.import_module("deploy.switches.cumulus_nvue_apply")


DRIVER = CumulusNvueDriver()
