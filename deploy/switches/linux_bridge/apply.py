"""Applying a Linux bridge's plan with pyinfra: the fact that reads links and VLANs, the operation.

What to change is decided by pure functions of :mod:`deploy.switches.linux_bridge.render`.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, OperationError, deploy, operation

from deploy.facts.snapshot import Read
from deploy.plan import SwitchPlan
from deploy.switches import current_switch, sudo_for
from deploy.switches.linux_bridge.render import (
    BridgeState,
    filtering_command,
    link_commands,
    parse_state,
    state_command,
    unrouted_vlans,
    vlan_commands,
    where,
)


class LinuxBridgeState(FactBase[BridgeState | None]):
    """Links, bridge VLANs and VLAN filtering support in ``netns`` (None: the host's own namespace)."""

    def command(self, netns: str | None, bridge: str) -> str:
        return state_command(netns, bridge)

    def process(self, output: list[str]) -> BridgeState:
        return parse_state(output)


def _read(plan: SwitchPlan) -> BridgeState:
    state = host.get_fact(LinuxBridgeState, netns=plan.netns, bridge=plan.bridge)
    if state is None:
        raise OperationError(f"could not read links in {where(plan)} (are `ip` and `bridge` installed?)")
    return state


@operation()
def bridge_ports(plan: SwitchPlan):
    """Bridge, port membership and MTUs, then VLAN filtering where the kernel offers it."""
    state = _read(plan)
    if not state.netns_exists:
        raise OperationError(f"{where(plan)} does not exist; create it and its links before kvpod joins them")
    missing = [p.port for p in plan.ports if p.port not in state.links]
    if missing:
        raise OperationError(
            f"ports {', '.join(missing)} do not exist in {where(plan)} "
            "(kvpod joins existing links to the bridge; it does not create them)"
        )
    bridge = state.links.get(plan.bridge)
    if bridge is not None and bridge.kind != "bridge":
        raise OperationError(f"{plan.bridge} in {where(plan)} is a {bridge.kind or 'plain'} link, not a bridge")
    unrouted = unrouted_vlans(plan)
    if unrouted:
        host.noop(f"bridge {plan.bridge}: a Linux bridge does not route; no SVI for {unrouted}")
    yield from link_commands(plan, state)
    if not plan.ports:
        return
    if bridge is None:
        state = _read(plan)  # the bridge exists now: look again for its VLAN filtering knob
    if not state.filtering_supported:
        host.noop(f"bridge {plan.bridge}: this kernel has no bridge VLAN filtering; VLANs pass through untouched")
        return
    if not state.links[plan.bridge].vlan_filtering:
        yield filtering_command(plan)
        state = _read(plan)
        if not state.links[plan.bridge].vlan_filtering:
            host.noop(f"bridge {plan.bridge}: the kernel refused VLAN filtering; VLANs pass through untouched")
            return
    yield from vlan_commands(plan, state)


@deploy("kvpod switch (linux-bridge)")
def apply_switch() -> None:
    """Apply the current host's SwitchPlan to its Linux bridge."""
    plan = current_switch()
    bridge_ports(name=f"Bridge {plan.bridge} in {where(plan)}", plan=plan, _sudo=sudo_for(plan))


def reads(plan: SwitchPlan) -> list:
    """What :func:`apply_switch` compares against, read in the one state read."""
    return [Read.of(LinuxBridgeState, netns=plan.netns, bridge=plan.bridge)]
