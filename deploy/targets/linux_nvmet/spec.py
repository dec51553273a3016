"""The spec of a Linux nvmet target: reached over SSH, with a device path per drive and a NIC per portal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from deploy.errors import Problem
from deploy.spec_kinds import Enclosure

if TYPE_CHECKING:
    from deploy.spec import PodSpec


class LinuxNvmetEnclosure(Enclosure):
    """A Linux host running the kernel NVMe target, configured by kvpod over SSH."""

    kind: Literal["linux-nvmet"] = Field(description="linux-nvmet: configured over SSH")
    file_backed: bool = Field(False, description="linux-nvmet: create sparse files at device_path")

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        out: list[Problem] = []
        if self.management.ssh is None:
            out.append(
                Problem(
                    f"{path}.management.ssh",
                    "linux-nvmet targets are configured over SSH: give management.ssh.address",
                )
            )
        for di, d in enumerate(self.drive_list()):
            if d.device_path is None:
                out.append(
                    Problem(
                        f"{path}.drives[{di}].device_path",
                        "linux-nvmet drives need a device_path (block device, or file when file_backed)",
                    )
                )
        for ii, iom in enumerate(self.ioms):
            for pi, port in enumerate(iom.ports):
                if port.interface is None:
                    out.append(
                        Problem(
                            f"{path}.ioms[{ii}].ports[{pi}].interface",
                            "linux-nvmet portals need the target's fabric NIC (e.g. eth1)",
                        )
                    )
        return out


MODEL = LinuxNvmetEnclosure
