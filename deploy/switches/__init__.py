"""Switch drivers: render a switch's configuration from the plan, and apply it with pyinfra.

Each switch kind has one driver. A driver for kind ``k`` lives in ``deploy/switches/<k with '-' as '_'>.py``
and exposes ``DRIVER`` (a :class:`SwitchDriver`); :func:`driver_for` imports it on first use, so another
NOS (SONiC, ...) is one new module here plus its kind in the spec. :func:`register` adds a driver that
lives elsewhere. Drivers read only the plan (:class:`~deploy.plan.SwitchPlan`), never the raw spec.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from deploy.drivers import DriverRegistry
from deploy.errors import KvpodError
from deploy.names import SWITCH_KEY
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


class UnmanagedSwitch(SwitchDriver):
    """Kind ``none``: the switch exists in the plan (for port maps) but kvpod configures nothing on it."""

    kind = "none"

    def render(self, plan: SwitchPlan, pod: Plan) -> str:
        lines = [
            f"# switch {plan.name} (kind none): kvpod manages nothing on this switch.",
            f"# Configure it by hand for pod {pod.pod}: MTU {plan.mtu} on every port below,",
            "# and each port's VLAN as listed (tagged: the peer sends 802.1Q frames; access: untagged).",
        ]
        for p in plan.ports:
            mode = f"tagged VLAN {p.access_vlan}" if p.tagged else f"access VLAN {p.access_vlan}"
            lines.append(f"#   {p.port}: {mode}  ({p.description})")
        for v in plan.vlans:
            if v.svi_address:
                lines.append(f"#   VLAN {v.id} ({v.name}): routed interface {v.svi_address}/{v.prefix_length}")
        return "\n".join(lines) + "\n"

    def deploy(self) -> None:
        from pyinfra import host

        host.noop(f"switch {current_switch().name}: kind none, nothing to configure")


_REGISTRY: DriverRegistry[SwitchDriver] = DriverRegistry(__name__, SwitchDriver, "switch", [UnmanagedSwitch()])
register = _REGISTRY.register
driver_for = _REGISTRY.driver_for


def render_switch_configs(plan: Plan) -> dict[str, str]:
    """Switch name → the configuration its driver applies (``kvpod switch render``), in plan order."""
    return {sw.name: driver_for(sw.kind).render(sw, plan) for sw in plan.switches}


def current_switch() -> SwitchPlan:
    """The SwitchPlan of the current pyinfra host (``host.data.kvpod_switch``; a plan or its dict form)."""
    from pyinfra import host

    value = host.data.get(HOST_DATA_KEY)
    if value is None:
        raise KvpodError(f"host {host.name} has no data {HOST_DATA_KEY!r} (the switch plan to apply)")
    return value if isinstance(value, SwitchPlan) else SwitchPlan.model_validate(value)


def sudo_for(plan: SwitchPlan) -> bool:
    """Whether commands on this switch run through sudo (only over SSH, as the spec says)."""
    return bool(plan.ssh and plan.ssh.sudo)
