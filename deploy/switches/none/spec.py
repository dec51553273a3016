"""The spec of a switch kvpod does not configure: the shared fields only, and no rules of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from deploy.errors import Problem
from deploy.spec_kinds import Switch

if TYPE_CHECKING:
    from deploy.spec import PodSpec


class UnmanagedSwitch(Switch):
    """A switch configured by hand; kvpod lists what to set (``kvpod switch render``)."""

    kind: Literal["none"] = Field(description="none: not configured by kvpod (configure it by hand)")

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        return []  # its MTU is the operator's to set


MODEL = UnmanagedSwitch
