"""The driver of kind ``none``: a note of what to configure by hand, and a deploy that changes nothing."""

from __future__ import annotations

from deploy.plan import Plan, SwitchPlan
from deploy.switches import SwitchDriver, current_switch


def render_note(plan: SwitchPlan, pod: Plan) -> str:
    """What an operator configures on the switch: MTU, each port's VLAN, the routed interfaces."""
    lines = [
        f"# switch {plan.name} (kind none): kvpod manages nothing on this switch.",
        f"# Configure it by hand for pod {pod.pod}: MTU {plan.mtu} on every port below,",
        "# and each port's VLAN as listed (tagged: the peer sends 802.1Q frames; access: untagged).",
    ]
    for p in plan.ports:
        mode = f"tagged VLAN {p.access_vlan}" if p.tagged else f"access VLAN {p.access_vlan}"
        lines.append(f"#   {p.port}: {mode}  ({p.description})")
    for v in plan.vlans:
        if v.svi_address:
            lines.append(f"#   VLAN {v.id} ({v.name}): routed interface {v.svi_address}/{v.prefix_length}")
    return "\n".join(lines) + "\n"


class UnmanagedSwitchDriver(SwitchDriver):
    """Kind ``none``: the switch exists in the plan (for port maps) but kvpod configures nothing on it."""

    kind = "none"

    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        return render_note(plan, pod)

    def deploy(self) -> None:
        from pyinfra import host

        host.noop(f"switch {current_switch().name}: kind none, nothing to configure")


DRIVER = UnmanagedSwitchDriver()
