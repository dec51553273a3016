"""The driver of kind ``cumulus-nvue``: the patch of :mod:`.render`, the deploy and reads of :mod:`.apply`."""

from __future__ import annotations

from deploy.plan import Plan, SwitchPlan
from deploy.switches import SwitchDriver
from deploy.switches.cumulus_nvue.render import render_nvue_patch


class CumulusNvueDriver(SwitchDriver):
    kind = "cumulus-nvue"

    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        return render_nvue_patch(plan)

    def reads(self, plan: SwitchPlan) -> list:
        from deploy.switches.cumulus_nvue.apply import reads

        return reads(plan)

    def deploy(self) -> None:
        from deploy.switches.cumulus_nvue.apply import apply_switch

        apply_switch()


DRIVER = CumulusNvueDriver()
