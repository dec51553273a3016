"""Role ``nvmet target``: a Linux server as the pod's NVMe-oF target, live now and restored at every boot.

Reads ``host.data.kvpod_targets`` (the :class:`deploy.plan.TargetPlan` of each enclosure this server exports;
several enclosures on one server share its modules, NICs, boot-time restore and configfs, each keeping its own
subsystems and ports):

- Modules ``nvmet``, ``nvmet_rdma`` (``nvmet_tcp`` when a portal offers TCP), ``8021q`` and, for soft-RoCE
  portals, ``rdma_rxe``: loaded now and at boot (``/etc/modules-load.d/kvpod-nvmet.conf``).
- Each portal interface: MTU, the storage VLAN interface with every portal address on it (two portals on
  one NIC are fine), persisted as systemd-networkd files; an rxe device for soft-RoCE NICs (both as the
  fabric role does them on a node: :mod:`roles.fabric_network`).
- configfs: one subsystem per drive (``attr_allow_any_host`` 0, the drive as namespace ``nsid``, a sparse
  backing file when ``file_backed``), **admitting only the host NQN of the node the plan assigns it**
  (spares admit none); one port per portal and transport (id ``port_id``, unique on the server; ``N`` is
  ``port_id`` for RDMA, ``100 + port_id`` for TCP) serving every subsystem of its enclosure. A changed
  assignment changes only that subsystem's ``allowed_hosts`` links; nothing is torn down.
- Boot: ``/usr/local/sbin/kvpod-nvmet-restore`` (generated from the plan, idempotent) run by
  ``kvpod-nvmet.service`` after the portal addresses exist, so the configuration survives a reboot.
"""

from __future__ import annotations

from collections import defaultdict

from pyinfra.api import OperationError, deploy
from pyinfra.facts.files import File

from deploy.encode import configfs_name
from deploy.facts.kernel import LoadedModules
from deploy.facts.network import IpLinks, IpRoutes
from deploy.facts.nvmet import NvmetConfig
from deploy.facts.snapshot import Read
from deploy.names import (
    ADDRESS_WAIT_SECONDS,
    GB,
    NVMET_MODULES,
    NVMET_RESTORE_SCRIPT,
    NVMET_RESTORE_UNIT,
    RXE_UNIT,
    SOFT_ROCE_MODULE,
    SYSTEMD_DIR,
    VLAN_MODULE,
    modules_load_path,
)
from deploy.operations import changed, kernel, network, nvmet, units
from deploy.operations.reads import Reads, file_reads, unit_reads
from deploy.plan import SubsystemPlan, TargetPlan
from deploy.targets import current_targets
from roles._common import rendered_file
from roles.fabric_network import networkd, networkd_reads, soft_roce_device, soft_roce_reads

RESTORE_SCRIPT = NVMET_RESTORE_SCRIPT
RESTORE_UNIT = NVMET_RESTORE_UNIT
TCP_PORT_OFFSET = 100


def nvmet_ports(targets: list[TargetPlan]) -> list[dict]:
    """One nvmet port per portal and transport, each serving every subsystem of its enclosure."""
    return [
        {
            "port_id": p.port_id + (TCP_PORT_OFFSET if trtype == "tcp" else 0),
            "trtype": trtype,
            "traddr": p.address,
            "trsvcid": p.trsvcid,
            "subsystems": [configfs_name(s.nqn) for s in t.subsystems],
        }
        for t in targets
        for p in t.portals
        for trtype in p.transports
    ]


def nvmet_modules(targets: list[TargetPlan]) -> list[str]:
    portals = [p for t in targets for p in t.portals]
    transports = {tr for p in portals for tr in p.transports}
    mods = [VLAN_MODULE, "nvmet"] + [f"nvmet_{tr}" for tr in sorted(transports)]
    if any(p.rdma == "soft-roce" for p in portals):
        mods.append(SOFT_ROCE_MODULE)
    return mods


def portals_by_interface(targets: list[TargetPlan]) -> dict[str, list]:
    """The portals of the server's enclosures grouped by their NIC (a NIC can carry several portal addresses)."""
    by_iface: dict[str, list] = defaultdict(list)
    for t in targets:
        for p in t.portals:
            if p.interface is None:
                raise OperationError(f"portal {p.name} of {t.name} has no interface")
            by_iface[p.interface].append(p)
    return by_iface


def subsystems(targets: list[TargetPlan]) -> list[tuple[SubsystemPlan, int | None]]:
    """Every subsystem of the server with the size of its sparse backing file (None: not file-backed)."""
    out = []
    for t in targets:
        for s in t.subsystems:
            if s.device_path is None:
                raise OperationError(f"drive {s.drive} of {t.name} has no device_path")
            out.append((s, int(s.capacity_gb * GB) if t.file_backed else None))
    return out


def _routed(targets: list[TargetPlan]) -> TargetPlan | None:
    """The enclosure whose gateway and routes the server uses (they are pod-wide), if any."""
    return next((t for t in targets if t.gateway and t.routes), None)


def reads(targets: list[TargetPlan]) -> Reads:
    """What this role compares against (see :mod:`deploy.operations.reads`)."""
    out = [Read.of(LoadedModules), *file_reads(modules_load_path(NVMET_MODULES)), Read.of(IpLinks)]
    if _routed(targets):
        out.append(Read.of(IpRoutes))
    soft_roce = False
    for iface, portals in portals_by_interface(targets).items():
        out += networkd_reads(iface, portals[0].vlan_interface)
        soft_roce = soft_roce or any(p.rdma == "soft-roce" for p in portals)
    if soft_roce:
        out += soft_roce_reads()
    out.append(Read.of(NvmetConfig))
    out += [Read.of(File, path=s.device_path) for s, size in subsystems(targets) if size is not None]
    out += file_reads(RESTORE_SCRIPT) + file_reads(f"{SYSTEMD_DIR}/{RESTORE_UNIT}") + unit_reads(RESTORE_UNIT)
    return out


@deploy("nvmet target")
def nvmet_target() -> None:
    """Portal network, soft-RoCE, subsystems with per-node host access, ports, and the boot-time restore."""
    targets = current_targets()
    mods = nvmet_modules(targets)
    kernel.modules(name="nvmet modules loaded now and at boot", names=mods, persist_as=NVMET_MODULES)

    routed = _routed(targets)
    unit_files = []
    for iface, portals in portals_by_interface(targets).items():
        first = portals[0]
        addresses = [f"{p.address}/{p.prefix_length}" for p in portals]
        network.vlan_interface(
            name=f"{first.vlan_interface} with {', '.join(addresses)}",
            parent=iface,
            vlan_id=first.vlan,
            interface=first.vlan_interface,
            mtu=first.mtu,
            address=first.address,
            prefix_length=first.prefix_length,
            extra_addresses=addresses[1:],
        )
        if routed:
            network.routes(interface=first.vlan_interface, gateway=routed.gateway, destinations=routed.routes)
        networkd(
            "storage VLAN addresses of the target's portals",
            addresses,
            interface=iface,
            vlan=first.vlan,
            vlan_interface=first.vlan_interface,
            mtu=first.mtu,
            routes=routed.routes if routed else [],
            gateway=routed.gateway if routed else None,
        )
        if any(p.rdma == "soft-roce" for p in portals):
            unit_files.append(soft_roce_device(iface))

    for s, size in subsystems(targets):
        nvmet.subsystem(
            name=f"subsystem {s.nqn} admits {s.node or 'no host (spare)'}",
            nqn=s.nqn,
            nsid=s.nsid,
            device_path=s.device_path,
            allowed_hosts=[s.allowed_host_nqn] if s.allowed_host_nqn else [],
            file_size_bytes=size,
            device_uuid=s.ns_uuid,
            device_nguid=s.ns_nguid,
        )
    ports = nvmet_ports(targets)
    for port in ports:
        nvmet.port(
            name=f"nvmet port {port['port_id']} {port['trtype']} {port['traddr']}:{port['trsvcid']}",
            port_id=port["port_id"],
            trtype=port["trtype"],
            traddr=port["traddr"],
            trsvcid=port["trsvcid"],
            subsystems=port["subsystems"],
        )

    rendered_file(
        "boot-time nvmet restore script",
        "nvmet_target",
        "kvpod-nvmet-restore.j2",
        RESTORE_SCRIPT,
        mode="755",
        modules=mods,
        wait_seconds=ADDRESS_WAIT_SECONDS,
        addresses=[{"interface": p.vlan_interface, "address": p.address} for t in targets for p in t.portals],
        subsystems=[
            {
                "nqn": configfs_name(s.nqn),
                "nsid": int(s.nsid),
                "device_path": s.device_path,
                "file_size": size,
                "host": configfs_name(s.allowed_host_nqn) if s.allowed_host_nqn else None,
                "uuid": s.ns_uuid,
                "nguid": s.ns_nguid,
            }
            for s, size in subsystems(targets)
        ],
        ports=ports,
    )
    rxe = [RXE_UNIT] if unit_files else []
    unit_files.append(
        rendered_file(
            RESTORE_UNIT,
            "nvmet_target",
            "kvpod-nvmet.service.j2",
            f"{SYSTEMD_DIR}/{RESTORE_UNIT}",
            target_name=", ".join(t.name for t in targets),
            after=rxe,
            wants=rxe,
            script=RESTORE_SCRIPT,
            timeout=ADDRESS_WAIT_SECONDS + 60,
        )
    )
    units.daemon_reload(name="systemd daemon-reload", when=changed(*unit_files))
    if rxe:
        units.service(name=f"{RXE_UNIT} enabled", unit=RXE_UNIT, enabled=True, running=True)
    units.service(name=f"{RESTORE_UNIT} enabled", unit=RESTORE_UNIT, enabled=True, running=True)
