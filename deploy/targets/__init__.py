"""Target drivers: configure an NVMe-oF enclosure with pyinfra, or say what an operator must set by hand.

Each enclosure kind has one driver. ``linux-nvmet`` is configured by the deploy
``roles.nvmet_target.nvmet_target``, imported only when used; ``data24`` cannot be configured by kvpod (see
:mod:`deploy.targets.data24`) and gives an operator sheet instead. A driver for another kind ``k`` lives in
``deploy/targets/<k with '-' as '_'>.py`` and exposes ``DRIVER``; :func:`register` adds one that lives elsewhere.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar

from deploy.drivers import DriverRegistry
from deploy.errors import KvpodError
from deploy.plan import Plan, TargetPlan

HOST_DATA_KEY = "kvpod_target"


class ManualTarget(KvpodError):
    """The enclosure must be configured by hand; the message says where to find what to set."""


class TargetDriver(ABC):
    """How kvpod configures one kind of enclosure."""

    kind: ClassVar[str]
    managed: ClassVar[bool]  # True: deploy() configures it; False: the operator does, from sheet()

    @abstractmethod
    def deploy(self) -> None:
        """Apply ``host.data.kvpod_target`` (a TargetPlan) to the current pyinfra host.

        Drivers of unmanaged kinds raise :class:`ManualTarget` pointing at ``kvpod target sheet``.
        """

    def sheet(self, target: TargetPlan, pod: Plan) -> str:
        """The operator's view of this enclosure: ports, subsystems and host access, as text."""
        from deploy.targets.section import enclosure_section

        note = (
            "kvpod configures this enclosure itself (`kvpod up`); this sheet is for reference."
            if self.managed
            else "Configure this enclosure by hand with the values below."
        )
        return enclosure_section(target, pod, [note])


class LinuxNvmetDriver(TargetDriver):
    """A Linux host exporting drives through the kernel NVMe target (nvmet), configured over SSH."""

    kind = "linux-nvmet"
    managed = True

    def deploy(self) -> None:
        role = importlib.import_module("roles.nvmet_target")
        role.nvmet_target()


_REGISTRY: DriverRegistry[TargetDriver] = DriverRegistry(__name__, TargetDriver, "enclosure", [LinuxNvmetDriver()])
register = _REGISTRY.register
driver_for = _REGISTRY.driver_for


def current_target() -> TargetPlan:
    """The TargetPlan of the current pyinfra host (``host.data.kvpod_target``; a plan or its dict form)."""
    from pyinfra import host

    value = host.data.get(HOST_DATA_KEY)
    if value is None:
        raise KvpodError(f"host {host.name} has no data {HOST_DATA_KEY!r} (the target plan to apply)")
    return value if isinstance(value, TargetPlan) else TargetPlan.model_validate(value)
