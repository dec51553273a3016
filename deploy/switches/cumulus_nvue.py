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

Applying: the file goes to ``/tmp/kvpod-nvue-patch.yaml``; :class:`NvuePatchDiff` stages it into the
pending revision, reads ``nv config diff`` and drops the staging again (``nv config detach``).
``nv config apply -y`` runs only when that diff is not empty, so an unchanged switch sees no command.
"""

from __future__ import annotations

import re
import shlex
from io import StringIO

import yaml
from pyinfra import host
from pyinfra.api import FactBase, OperationError, StringCommand, deploy, operation
from pyinfra.operations import files

from deploy.plan import Plan, SwitchPlan
from deploy.switches import SwitchDriver, current_switch, sudo_for

PATCH_PATH = "/tmp/kvpod-nvue-patch.yaml"
DEFAULT_BRIDGE = "br_default"
_DIFF_MARK = "#kvpod:diff"
_UNSTAGED_MARK = "#kvpod:unstaged"


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
        f"# kvpod: NVUE patch for switch {plan.name} (Cumulus Linux 5.x)\n"
        f"# Apply by hand: nv config patch {PATCH_PATH} && nv config diff && nv config apply -y\n"
    )
    body = yaml.safe_dump([{"set": nvue_tree(plan)}], sort_keys=False, default_flow_style=False, width=1000)
    return header + body


class NvueConfigDiff(FactBase[str]):
    """``nv config diff``: what the pending revision would change in the applied one ("" when nothing)."""

    def command(self) -> str:
        return "nv config diff"

    @staticmethod
    def default() -> str:
        return ""

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()


class NvuePatchDiff(FactBase[str | None]):
    """What ``nv config patch <path>`` would change: stage the file, ``nv config diff``, drop the staging.

    Read only while nothing else is pending (see :func:`apply_patch`): it leaves the pending revision as it
    found it (``nv config detach``). None when the patch could not be staged or diffed.
    """

    def command(self, path: str) -> str:
        return (
            f"if {shlex.join(['nv', 'config', 'patch', path])} >/dev/null 2>&1; then "
            f"echo '{_DIFF_MARK}'; nv config diff; rc=$?; nv config detach >/dev/null 2>&1; exit $rc; "
            f"else echo '{_UNSTAGED_MARK}'; fi"
        )

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        if not output or output[0].strip() != _DIFF_MARK:
            return None
        return "\n".join(output[1:]).strip()


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


@operation()
def apply_patch(path: str = PATCH_PATH):
    """Apply the NVUE patch at ``path`` only if it changes the applied configuration.

    Refuses to run over pending changes someone else made. The patch is staged into the pending revision
    and diffed (:class:`NvuePatchDiff`); an empty diff drops the staging (``nv config detach``) and
    yields no command, a non-empty one stages the patch again and runs ``nv config apply -y``.
    """
    pending = host.get_fact(NvueConfigDiff)
    if not diff_is_empty(pending):
        raise OperationError(
            "the switch has pending NVUE changes that kvpod did not make; review them with `nv config diff`, "
            "then apply (`nv config apply`) or drop them (`nv config detach`) and run again"
        )
    diff = host.get_fact(NvuePatchDiff, path=path)
    if diff is not None and diff_is_empty(diff):
        host.noop("switch configuration already matches the plan")
        return
    yield StringCommand("nv", "config", "patch", path)
    yield StringCommand("nv", "config", "apply", "-y")


@deploy("kvpod switch (cumulus-nvue)")
def apply_switch() -> None:
    """Upload the switch's patch and apply it when it differs from the applied configuration."""
    plan = current_switch()
    sudo = sudo_for(plan)
    files.put(
        name=f"NVUE patch for {plan.name}",
        src=StringIO(render_nvue_patch(plan)),
        dest=PATCH_PATH,
        mode="644",
        _sudo=sudo,
    )
    apply_patch(name=f"Apply NVUE patch on {plan.name}", path=PATCH_PATH, _sudo=sudo)


class CumulusNvueDriver(SwitchDriver):
    kind = "cumulus-nvue"

    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        return render_nvue_patch(plan)

    def reads(self, plan: SwitchPlan) -> list:
        from deploy.facts.snapshot import Read
        from deploy.operations.reads import file_reads

        return [*file_reads(PATCH_PATH), Read.of(NvueConfigDiff)]

    def deploy(self) -> None:
        apply_switch()


DRIVER = CumulusNvueDriver()
