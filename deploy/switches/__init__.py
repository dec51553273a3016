"""Switch drivers: render a switch's configuration from the plan, and apply it with pyinfra.

Each switch kind is one package, ``deploy/switches/<kind with '-' as '_'>/``, holding all of the kind:

* ``spec``: its spec model ``MODEL`` (a :class:`deploy.spec_kinds.Switch` with its kind-only fields) and its
  pod-wide rules; the spec finds it by scanning this package (:func:`deploy.spec_kinds.kinds`);
* its pure rendering from the plan (:class:`~deploy.plan.SwitchPlan`, never the raw spec);
* what it runs on the switch (pyinfra facts and operations), imported only by a command that reaches hosts;
* ``driver``: ``DRIVER``, a :class:`SwitchDriver` tying them together, found by :func:`driver_for`.

So another NOS (SONiC, ...) is one new package here. :func:`register` adds a driver that lives elsewhere.
This module imports nothing above the spec at module level: the spec scans the package while it loads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from deploy.drivers import DriverRegistry
from deploy.errors import KvpodError
from deploy.names import SWITCH_KEY

if TYPE_CHECKING:
    from deploy.plan import Plan, SwitchPlan

HOST_DATA_KEY = SWITCH_KEY


class SwitchDriver(ABC):
    """How kvpod configures one kind of switch."""

    kind: ClassVar[str]

    @abstractmethod
    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        """The configuration this driver applies to ``plan``, as text an operator can read or apply by hand."""

    def reads(self, plan: SwitchPlan) -> list:
        """The facts :meth:`deploy` compares against (:class:`deploy.facts.snapshot.Read`), read in one command."""
        return []

    @abstractmethod
    def deploy(self) -> None:
        """Apply ``host.data.kvpod_switch`` (a SwitchPlan) to the current pyinfra host.

        Call it inside a pyinfra deploy context, e.g. ``add_deploy(state, driver.deploy)``.
        """


_REGISTRY: DriverRegistry[SwitchDriver] = DriverRegistry(__name__, SwitchDriver, "switch")
register = _REGISTRY.register
driver_for = _REGISTRY.driver_for


def render_switch_configs(plan: Plan) -> dict[str, str]:
    """Switch name → the configuration its driver applies (``kvpod switch render``), in plan order."""
    return {sw.name: driver_for(sw.kind).render(sw, plan) for sw in plan.switches}


def current_switch() -> SwitchPlan:
    """The SwitchPlan of the current pyinfra host (``host.data.kvpod_switch``; a plan or its dict form)."""
    from pyinfra import host

    from deploy.plan import SwitchPlan

    value = host.data.get(HOST_DATA_KEY)
    if value is None:
        raise KvpodError(f"host {host.name} has no data {HOST_DATA_KEY!r} (the switch plan to apply)")
    return value if isinstance(value, SwitchPlan) else SwitchPlan.model_validate(value)


def sudo_for(plan: SwitchPlan) -> bool:
    """Whether commands on this switch run through sudo (only over SSH, as the spec says)."""
    return bool(plan.ssh and plan.ssh.sudo)
