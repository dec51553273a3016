"""Target drivers: configure an NVMe-oF enclosure with pyinfra, or say what an operator must set by hand.

Each enclosure kind is one package, ``deploy/targets/<kind with '-' as '_'>/``, holding all of the kind: its
spec model and rules (``spec``, found by the spec's scan: :func:`deploy.spec_kinds.kinds`), and ``driver``
exposing ``DRIVER`` (a :class:`TargetDriver`) that the target phase reaches through :func:`driver_for` alone,
as the switch phase does. ``linux-nvmet`` is configured by the role :mod:`roles.nvmet_target`, imported only
when used; ``data24`` cannot be configured by kvpod and gives an operator sheet instead. :func:`register` adds
a driver that lives elsewhere. This module imports nothing above the spec at module level: the spec scans the
package while it loads.

A managed driver runs on one pyinfra host per machine that configures enclosures: the enclosures of one kind
reached through the same SSH endpoint share a host (one Linux server may serve several), and enclosures
without SSH run on the machine running kvpod (``@local``: a driver speaking the enclosure's management API).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from deploy.drivers import DriverRegistry
from deploy.errors import KvpodError
from deploy.names import TARGET_KEY

if TYPE_CHECKING:
    from deploy.plan import Plan, TargetPlan

HOST_DATA_KEY = TARGET_KEY


class ManualTarget(KvpodError):
    """The enclosure must be configured by hand; the message says where to find what to set."""


class TargetDriver(ABC):
    """How kvpod configures one kind of enclosure."""

    kind: ClassVar[str]
    managed: ClassVar[bool]  # True: deploy() configures it; False: the operator does, from sheet()
    verified_on_host: ClassVar[bool] = False  # verify logs in over SSH and checks it (tests/verify/target)
    lock_host: ClassVar[bool] = False  # a server kvpod logs into over SSH: it holds the pod's lock (podlock)

    def reads(self, targets: list[TargetPlan]) -> list:
        """The facts :meth:`deploy` compares against (:class:`deploy.facts.snapshot.Read`), read in one command."""
        return []

    @abstractmethod
    def deploy(self) -> None:
        """Apply ``host.data.kvpod_targets`` (the TargetPlans this host serves) to the current pyinfra host.

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


_REGISTRY: DriverRegistry[TargetDriver] = DriverRegistry(__name__, TargetDriver, "enclosure")
register = _REGISTRY.register
driver_for = _REGISTRY.driver_for


def host_key(target: TargetPlan) -> tuple:
    """Which pyinfra host configures ``target``: its kind and SSH endpoint (None: the machine running kvpod)."""
    ssh = target.ssh
    return (target.kind, (ssh.host, ssh.port, ssh.user) if ssh else None)


def managed_groups(plan: Plan) -> list[list[TargetPlan]]:
    """The managed enclosures, grouped by the host that configures them (:func:`host_key`), in spec order."""
    groups: dict[tuple, list[TargetPlan]] = {}
    for t in plan.targets:
        if driver_for(t.kind).managed:
            groups.setdefault(host_key(t), []).append(t)
    return list(groups.values())


def manual_targets(plan: Plan) -> list[TargetPlan]:
    """The enclosures an operator configures by hand (their driver is not managed)."""
    return [t for t in plan.targets if not driver_for(t.kind).managed]


def co_hosted(plan: Plan, target: TargetPlan) -> list[TargetPlan]:
    """The enclosures configured on the same host as ``target`` (itself included)."""
    return [t for t in plan.targets if host_key(t) == host_key(target)]


def current_targets() -> list[TargetPlan]:
    """The TargetPlans of the current pyinfra host (``host.data.kvpod_targets``; plans or their dict forms)."""
    from pyinfra import host

    from deploy.plan import TargetPlan

    value = host.data.get(HOST_DATA_KEY)
    if not value:
        raise KvpodError(f"host {host.name} has no data {HOST_DATA_KEY!r} (the target plans to apply)")
    return [t if isinstance(t, TargetPlan) else TargetPlan.model_validate(t) for t in value]
