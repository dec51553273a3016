"""The spec of a Cumulus NVUE switch: reached over SSH, optionally with lossless RoCE QoS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from deploy.errors import Problem
from deploy.spec_kinds import Switch

if TYPE_CHECKING:
    from deploy.spec import PodSpec


class CumulusNvueSwitch(Switch):
    """An NVIDIA Cumulus Linux 5.x switch, configured with one NVUE patch over SSH."""

    kind: Literal["cumulus-nvue"] = Field(description="cumulus-nvue: NVUE over SSH")
    roce_qos: bool = Field(
        False, description="cumulus-nvue: apply lossless RoCE ('nv set qos roce', with fabric.roce_qos's values)"
    )

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        out = super().problems(path, spec)
        if self.management.ssh is None:
            out.append(Problem(f"{path}.management.ssh", "cumulus-nvue switches need ssh: {address: ...}"))
        return out


MODEL = CumulusNvueSwitch
