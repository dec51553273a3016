"""The driver of kind ``linux-bridge``: the script of :mod:`.render`, the deploy and reads of :mod:`.apply`."""

from __future__ import annotations

from deploy.plan import Plan, SwitchPlan
from deploy.switches import SwitchDriver
from deploy.switches.linux_bridge.render import render_script


class LinuxBridgeDriver(SwitchDriver):
    kind = "linux-bridge"

    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        return render_script(plan, pod)

    def reads(self, plan: SwitchPlan) -> list:
        from deploy.switches.linux_bridge.apply import reads

        return reads(plan)

    def deploy(self) -> None:
        from deploy.switches.linux_bridge.apply import apply_switch

        apply_switch()


DRIVER = LinuxBridgeDriver()
