"""The spec of a Linux bridge switch: where the bridge lives (a network namespace here, or a host over SSH)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from deploy.errors import Problem
from deploy.spec_kinds import Switch
from deploy.spec_types import NetnsName

if TYPE_CHECKING:
    from deploy.spec import PodSpec


class LinuxBridgeSwitch(Switch):
    """A Linux bridge whose ports are existing links (veths, taps, NICs) that kvpod joins to it."""

    kind: Literal["linux-bridge"] = Field(description="linux-bridge: a Linux bridge, here or over SSH")
    netns: NetnsName | None = Field(None, description="linux-bridge: network namespace holding the bridge")

    ports_are_interfaces: ClassVar[bool] = True

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        out = super().problems(path, spec)
        if not self.netns and self.management.ssh is None:
            out.append(Problem(f"{path}.netns", "linux-bridge needs netns (local) or management.ssh (remote)"))
        return out


MODEL = LinuxBridgeSwitch
