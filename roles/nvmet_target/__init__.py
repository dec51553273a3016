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
from deploy.facts.network import IpLinks
from deploy.facts.nvmet import NvmetConfig
from deploy.facts.snapshot import Read
from deploy.names import (
    ADDRESS_WAIT_SECONDS,
    GB,
    NVMET_MODULES,
    NVMET_RESTORE_SCRIPT,
    NVMET_RESTORE_UNIT,
    NVMET_ROOT,
    RXE_UNIT,
    SOFT_ROCE_MODULE,
    SYSTEMD_DIR,
    VLAN_MODULE,
)
from deploy.operations import network, nvmet
from deploy.operations.reads import Reads
from deploy.operations.steps import (
    Effect,
    Steps,
    after,
    path_effect,
    persisted_modules_step,
    reads_of,
    reload_step,
    run_steps,
    service_step,
    step,
)
from deploy.plan import SubsystemPlan, TargetPlan
from deploy.targets import current_targets
from roles._common import put_rendered_step
from roles.fabric_network import networkd, networkd_files, networkd_reads, routes_step, soft_roce_device_steps

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


def network_steps(targets: list[TargetPlan]) -> Steps:
    """Per portal NIC: the storage VLAN with every portal address on it, routes, the systemd-networkd files (each
    NIC's ``networkctl reload`` after its own files) and, for soft-RoCE, the rxe device and its unit (kept as
    ``rxe``)."""
    routed = _routed(targets)
    out: list = []
    for iface, portals in portals_by_interface(targets).items():
        first = portals[0]
        addresses = [f"{p.address}/{p.prefix_length}" for p in portals]
        out.append(
            step(
                network.vlan_interface,
                [Read.of(IpLinks)],
                effects=[Effect("link", first.vlan_interface)],
                name=f"{first.vlan_interface} with {', '.join(addresses)}",
                parent=iface,
                vlan_id=first.vlan,
                interface=first.vlan_interface,
                mtu=first.mtu,
                address=first.address,
                prefix_length=first.prefix_length,
                extra_addresses=addresses[1:],
            )
        )
        if routed:
            out.append(routes_step(first.vlan_interface, routed.gateway, routed.routes))
        out.append(
            step(
                networkd,
                networkd_reads(iface, first.vlan_interface),
                effects=[path_effect(dest) for _, dest in networkd_files(iface, first.vlan_interface)],
                description="storage VLAN addresses of the target's portals",
                addresses=addresses,
                interface=iface,
                vlan=first.vlan,
                vlan_interface=first.vlan_interface,
                mtu=first.mtu,
                routes=routed.routes if routed else [],
                gateway=routed.gateway if routed else None,
            )
        )
        if any(p.rdma == "soft-roce" for p in portals):
            out += soft_roce_device_steps(iface, bundled=False)
    return out


def configfs_steps(targets: list[TargetPlan]) -> Steps:
    """One subsystem per drive admitting its node's host NQN alone, then the ports."""
    out: list = [
        step(
            nvmet.subsystem,
            [Read.of(NvmetConfig), *([Read.of(File, path=s.device_path)] if size is not None else [])],
            effects=[
                path_effect(f"{NVMET_ROOT}/subsystems/{configfs_name(s.nqn)}"),
                *([path_effect(s.device_path)] if size is not None else []),
            ],
            name=f"subsystem {s.nqn} admits {s.node or 'no host (spare)'}",
            nqn=s.nqn,
            nsid=s.nsid,
            device_path=s.device_path,
            allowed_hosts=[s.allowed_host_nqn] if s.allowed_host_nqn else [],
            file_size_bytes=size,
            device_uuid=s.ns_uuid,
            device_nguid=s.ns_nguid,
        )
        for s, size in subsystems(targets)
    ]
    out += [
        step(
            nvmet.port,
            [Read.of(NvmetConfig)],
            effects=[path_effect(f"{NVMET_ROOT}/ports/{port['port_id']}")],
            name=f"nvmet port {port['port_id']} {port['trtype']} {port['traddr']}:{port['trsvcid']}",
            port_id=port["port_id"],
            trtype=port["trtype"],
            traddr=port["traddr"],
            trsvcid=port["trsvcid"],
            subsystems=port["subsystems"],
        )
        for port in nvmet_ports(targets)
    ]
    return out


def restore_steps(targets: list[TargetPlan], mods: list[str], soft_roce: bool) -> Steps:
    """The boot-time restore script and its unit (after the rxe unit when there is one); ``daemon-reload`` when a
    unit file changed; the units enabled."""
    rxe = [RXE_UNIT] if soft_roce else []
    return [
        put_rendered_step(
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
            ports=nvmet_ports(targets),
        ),
        put_rendered_step(
            RESTORE_UNIT,
            "nvmet_target",
            "kvpod-nvmet.service.j2",
            f"{SYSTEMD_DIR}/{RESTORE_UNIT}",
            keep="unit",
            target_name=", ".join(t.name for t in targets),
            after=rxe,
            wants=rxe,
            script=RESTORE_SCRIPT,
            timeout=ADDRESS_WAIT_SECONDS + 60,
        ),
        reload_step(when=after("rxe", "unit")),
        *([service_step(f"{RXE_UNIT} enabled", RXE_UNIT, enabled=True, running=True)] if soft_roce else []),
        service_step(f"{RESTORE_UNIT} enabled", RESTORE_UNIT, enabled=True, running=True),
    ]


def steps(targets: list[TargetPlan]) -> Steps:
    """Modules, portal network, subsystems with per-node host access, ports, and the boot-time restore."""
    mods = nvmet_modules(targets)
    soft_roce = any(p.rdma == "soft-roce" for t in targets for p in t.portals)
    return [
        persisted_modules_step("nvmet modules loaded now and at boot", mods, NVMET_MODULES),
        *network_steps(targets),
        *configfs_steps(targets),
        *restore_steps(targets, mods, soft_roce),
    ]


def reads(targets: list[TargetPlan]) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(targets))


@deploy("nvmet target")
def nvmet_target() -> None:
    """Portal network, soft-RoCE, subsystems with per-node host access, ports, and the boot-time restore."""
    run_steps(steps(current_targets()))
