"""The driver of kind ``data24``: no deploy (a Data24 is configured by hand), and the operator's sheet."""

from __future__ import annotations

from deploy.plan import Plan, TargetPlan
from deploy.targets import ManualTarget, TargetDriver

PREFACE = [
    "kvpod cannot configure a Data24: no public API provisions its port addresses, namespaces or host access",
    "(Western Digital's published Ansible modules cover chassis power, LEDs and firmware only).",
    "In the enclosure's management interface: give each IOM port below its address, prefix and MTU; create one",
    "NVMe subsystem per drive with the NQN shown and its drive as namespace NSID; allow only the host NQN listed",
    "(spares admit no host); enable each subsystem on every port. Then run `kvpod up` to connect the nodes.",
]


class Data24Driver(TargetDriver):
    kind = "data24"
    managed = False

    def deploy(self) -> None:
        raise ManualTarget(
            "a Data24 is configured by hand: no public API provisions its ports, namespaces or host access; "
            "run `kvpod target sheet SPEC` for the values to set"
        )

    def sheet(self, target: TargetPlan, pod: Plan) -> str:
        from deploy.targets.section import enclosure_section

        return enclosure_section(target, pod, PREFACE)


DRIVER = Data24Driver()
