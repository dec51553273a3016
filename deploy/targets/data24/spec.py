"""The spec of a Data24 enclosure: the shared fields, with its 24 drive slots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from deploy.errors import Problem
from deploy.spec_kinds import Enclosure

if TYPE_CHECKING:
    from deploy.spec import PodSpec

DATA24_DRIVES = 24


class Data24Enclosure(Enclosure):
    """A Western Digital OpenFlex Data24: its management address is shown on the target sheet."""

    kind: Literal["data24"] = Field(description="data24: configured by hand from `kvpod target sheet`")

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        return [
            Problem(f"{path}.drives[{di}].slot", f"a Data24 has slots 1-{DATA24_DRIVES}, not {d.slot}")
            for di, d in enumerate(self.drive_list())
            if d.slot > DATA24_DRIVES
        ]


MODEL = Data24Enclosure
