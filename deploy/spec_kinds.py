"""Switches and enclosures in the pod spec: what every kind shares, and the kinds the drivers contribute.

A kind is one driver package, ``deploy/switches/<kind>/`` or ``deploy/targets/<kind>/`` (``-`` written ``_``),
whose ``spec`` module names its model ``MODEL``: a subclass of :class:`Switch` or :class:`Enclosure` with
``kind`` a one-value ``Literal``, its kind-only fields, and its rules (:meth:`KindModel.problems`). Fields of
one kind inside a port or drive go on that kind's subclasses of :class:`Portal`, :class:`Iom`, :class:`Drive`
and :class:`DriveSet`, which its model's ``ioms`` and ``drives`` take; the plan reads them from any port or drive
through :meth:`Portal.nic` and :meth:`Drive.backing_path` (None unless the kind's subclass answers).
:func:`kinds` finds them by scanning the family package, so adding a package adds a kind; :func:`kind_union`
makes the discriminated union the spec takes. Pure; the family packages import nothing above the spec at
module level, so scanning them here pulls in no plan or host code.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag

from deploy.errors import KvpodError, Problem
from deploy.spec_base import MAX_GB, Address, Management, Mtu, Name, Strict, list_or_set
from deploy.spec_types import IfName, Nqn, NqnPrefix, SwitchPort, Text

if TYPE_CHECKING:
    from deploy.spec import PodSpec

VLAN_TAG_BYTES = 4
SWITCH_FAMILY = "deploy.switches"
TARGET_FAMILY = "deploy.targets"


class KindModel(Strict):
    """A switch or an enclosure of one kind. The plan reads some fields of every kind (``absent``): a kind
    without such a field reads as its value there (a switch without ``netns`` has none)."""

    absent: ClassVar[dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        absent = type(self).absent
        if name in absent:
            return absent[name]
        return super().__getattr__(name)  # type: ignore[misc]

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        """This kind's rules that need the rest of the pod (``path`` is where it is in the spec)."""
        return []


class Switch(KindModel):
    """A switch of the fabric segment: what every kind has."""

    name: Name = Field(description="switch name")
    kind: str = Field(description="the switch's kind: which driver configures it")
    management: Management = Field(Management(), description="how kvpod reaches the switch")
    mtu: Mtu = Field(9216, description="port MTU; at least fabric.mtu + 4 (the VLAN tag)")
    routed: bool = Field(False, description="give the storage VLAN(s) an SVI address on this switch")
    bridge: IfName = Field("br_default", description="bridge name (NVUE domain or Linux bridge)")

    absent: ClassVar[dict[str, Any]] = {"netns": None, "roce_qos": False}
    ports_are_interfaces: ClassVar[bool] = False  # its ports are Linux interface names (15 bytes at most)

    def problems(self, path: str, spec: PodSpec) -> list[Problem]:
        """A switch kvpod configures carries the fabric MTU plus a VLAN tag."""
        need = spec.fabric.mtu + VLAN_TAG_BYTES
        if self.mtu >= need:
            return []
        return [
            Problem(
                f"{path}.mtu",
                f"{self.mtu} is too small for fabric MTU {spec.fabric.mtu} plus a {VLAN_TAG_BYTES}-byte VLAN tag "
                f"(need at least {need}, e.g. 9216)",
            )
        ]


class SwitchAttachment(Strict):
    switch: Text
    port: SwitchPort


class Portal(Strict):
    """One fabric port of an enclosure IOM (a Data24 RapidFlex port, or a Linux target NIC)."""

    name: Name = Field(description="port name, unique within its IOM")
    address: Address | None = Field(None, description="fabric address (default: assigned from fabric.subnet)")
    rdma: Literal["hardware", "soft-roce"] = Field("hardware", description="RDMA NIC, or soft-RoCE on a plain NIC")
    switch: str | None = Field(None, description="the switch this port is cabled to")
    switch_port: SwitchPort | None = Field(None, description="the port on that switch (e.g. swp1, Ethernet1/1)")
    transports: list[Literal["rdma", "tcp"]] = Field(
        default_factory=lambda: ["rdma"], min_length=1, description="transports this port serves"
    )

    def nic(self) -> str | None:
        """The target's network interface behind this port, for a kind that names one (else None)."""
        return None


class Iom(Strict):
    """An I/O module of the enclosure and its fabric ports."""

    name: Name = Field(description="IOM name")
    ports: list[Portal] = Field(min_length=1, description="fabric ports of this IOM")


class Drive(Strict):
    """One SSD of the enclosure, exported as one NVMe subsystem with one namespace."""

    slot: int = Field(ge=1, le=64, description="slot number")
    capacity_gb: float = Field(
        gt=0, le=MAX_GB, description="drive capacity in decimal GB (10^9 bytes), as drives are sold"
    )
    nqn: Nqn | None = Field(None, description="subsystem NQN (default: <nqn_prefix>:<enclosure>-driveNN)")
    nsid: int = Field(1, ge=1, description="namespace ID within the subsystem")

    def backing_path(self) -> str | None:
        """The block device or file the target exports, for a kind that names one (else None)."""
        return None


class DriveSet(Strict):
    """Compact form: ``count`` identical drives in slots 1..count."""

    count: int = Field(ge=1, le=64, description="number of drives, in slots 1..count")
    capacity_gb: float = Field(
        gt=0, le=MAX_GB, description="capacity of each drive in decimal GB (10^9 bytes), as drives are sold"
    )

    def expand(self) -> list[Drive]:
        """The ``count`` drives, in slots 1..count."""
        return [Drive(slot=i, capacity_gb=self.capacity_gb) for i in range(1, self.count + 1)]


class Enclosure(KindModel):
    """An NVMe-oF enclosure: what every kind has."""

    name: Name = Field(description="enclosure name")
    kind: str = Field(description="the enclosure's kind: which driver configures it")
    management: Management = Field(Management(), description="a Data24's management address, a Linux target's SSH")
    nqn_prefix: NqnPrefix = Field("nqn.2024-01.io.kvpod", description="drive NQNs are <nqn_prefix>:<enclosure>-driveNN")
    ioms: list[Iom] = Field(min_length=1, max_length=2, description="one or two I/O modules")
    drives: Annotated[
        Annotated[list[Drive], Tag("[list]")] | Annotated[DriveSet, Tag("[set]")],
        Discriminator(list_or_set),
    ] = Field(description="a list of drives, or {count, capacity_gb} for identical drives in slots 1..count")

    absent: ClassVar[dict[str, Any]] = {"file_backed": False}

    def drive_list(self) -> list[Drive]:
        """The drives, expanding the compact form."""
        return self.drives.expand() if isinstance(self.drives, DriveSet) else list(self.drives)


def kind_of(model: type[KindModel]) -> str:
    """The one value of a kind model's ``kind`` Literal."""
    values = typing.get_args(model.model_fields["kind"].annotation)
    if len(values) != 1 or not isinstance(values[0], str):
        raise KvpodError(f"{model.__name__}.kind must be a Literal of one kind name")
    return values[0]


def kinds(family: str, base: type[KindModel]) -> list[type[KindModel]]:
    """The kind models of a driver family, by kind: ``MODEL`` of every ``<family>.<package>.spec``."""
    package = importlib.import_module(family)
    found: dict[str, type[KindModel]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{family}.{info.name}.spec")
        model = getattr(module, "MODEL", None)
        if not (isinstance(model, type) and issubclass(model, base)):
            raise KvpodError(f"{module.__name__} does not define MODEL, a {base.__name__} model")
        kind = kind_of(model)
        if kind.replace("-", "_") != info.name:
            raise KvpodError(f"{module.__name__}: kind {kind!r} belongs in a package named {kind.replace('-', '_')}")
        found[kind] = model
    return [found[k] for k in sorted(found)]


def kind_tag(value: Any) -> str | None:
    """The union tag of a switch or enclosure as written (``[linux-bridge]``); None when it names no kind."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return f"[{kind}]" if isinstance(kind, str) else None


def kind_union(models: list[type[KindModel]]) -> Any:
    """The discriminated union of ``models`` by ``kind``, as a field of the spec takes it."""
    if len(models) == 1:
        return models[0]
    choices = tuple(Annotated[m, Tag(f"[{kind_of(m)}]")] for m in models)
    return Annotated[Union[choices], Discriminator(kind_tag)]  # noqa: UP007 (a union built at run time)


def valid_kinds(models: list[type[KindModel]]) -> str:
    """``'a', 'b' or 'c'``: the kinds as a message names them."""
    names = [repr(kind_of(m)) for m in models]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
