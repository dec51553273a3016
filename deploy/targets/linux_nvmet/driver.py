"""The driver of kind ``linux-nvmet``: the role :mod:`roles.nvmet_target` configures the server."""

from __future__ import annotations

from deploy.plan import TargetPlan
from deploy.targets import TargetDriver


class LinuxNvmetDriver(TargetDriver):
    """A Linux host exporting drives through the kernel NVMe target (nvmet), configured over SSH."""

    kind = "linux-nvmet"
    managed = True
    verified_on_host = True
    lock_host = True

    def reads(self, targets: list[TargetPlan]) -> list:
        from roles.nvmet_target import reads

        return reads(targets)

    def deploy(self) -> None:
        from roles.nvmet_target import nvmet_target

        nvmet_target()


DRIVER = LinuxNvmetDriver()
