"""The spec of a Linux nvmet target: reached over SSH, with a device path per drive and a NIC per portal.

Those two live on this kind's own portal, drive and drive-set models (the shared ones in
:mod:`deploy.spec_kinds` do not take them), so another kind's spec that gives one is refused naming this kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Discriminator, Field, Tag

from deploy.errors import Problem
from deploy.spec_base import list_or_set
from deploy.spec_kinds import Drive, DriveSet, Enclosure, Iom, Portal
from deploy.spec_types import DevicePath, DevicePattern, IfName

if TYPE_CHECKING:
    from deploy.spec import PodSpec


class LinuxNvmetPortal(Portal):
    """A fabric port of a Linux target: one of its NICs."""

    interface: IfName | None = Field(None, description="linux-nvmet: the target's fabric NIC")

    def nic(self) -> str | None:
        return self.interface


class LinuxNvmetIom(Iom):
    """An I/O module of a Linux target: a group of its fabric NICs."""

    ports: list[LinuxNvmetPortal] = Field(min_length=1, description="fabric ports of this IOM")


class LinuxNvmetDrive(Drive):
    """One drive of a Linux target: a block device or a file, exported as one subsystem with one namespace."""

    device_path: DevicePath | None = Field(
        None, description="linux-nvmet: block device under /dev, or file backing it (absolute, normalised)"
    )

    def backing_path(self) -> str | None:
        return self.device_path


class LinuxNvmetDriveSet(DriveSet):
    """Compact form: ``count`` identical drives in slots 1..count, their device paths from one pattern."""

    device_path_pattern: DevicePattern | None = Field(
        None, description="linux-nvmet: with {slot}, e.g. /srv/nvmet/drive{slot}.img"
    )

    def expand(self) -> list[LinuxNvmetDrive]:
        pattern = self.device_path_pattern
        return [
            LinuxNvmetDrive(
                slot=i, capacity_gb=self.capacity_gb, device_path=pattern.format(slot=i) if pattern else None
            )
            for i in range(1, self.count + 1)
        ]


class LinuxNvmetEnclosure(Enclosure):
    """A Linux host running the kernel NVMe target, configured by kvpod over SSH."""

    kind: Literal["linux-nvmet"] = Field(description="linux-nvmet: configured over SSH")
    file_backed: bool = Field(False, description="linux-nvmet: create sparse files at device_path")
    ioms: list[LinuxNvmetIom] = Field(min_length=1, max_length=2, description="one or two I/O modules")
    drives: Annotated[
        Annotated[list[LinuxNvmetDrive], Tag("[list]")] | Annotated[LinuxNvmetDriveSet, Tag("[set]")],
        Discriminator(list_or_set),
    ] = Field(description="a list of drives, or {count, capacity_gb} for identical drives in slots 1..count")

    def drive_list(self) -> list[LinuxNvmetDrive]:
        return self.drives.expand() if isinstance(self.drives, LinuxNvmetDriveSet) else list(self.drives)

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
