"""Role ``nvmet target``: a Linux server as the pod's NVMe-oF target, live now and restored at every boot.

Reads ``host.data.kvpod_target`` (a :class:`deploy.plan.TargetPlan`):

- Modules ``nvmet``, ``nvmet_rdma`` (``nvmet_tcp`` when a portal offers TCP), ``8021q`` and, for soft-RoCE
  portals, ``rdma_rxe``: loaded now and at boot (``/etc/modules-load.d/kvpod-nvmet.conf``).
- Each portal interface: MTU, the storage VLAN interface with every portal address on it (two portals on
  one NIC are fine), persisted as systemd-networkd files; an rxe device for soft-RoCE NICs.
- configfs: one subsystem per drive (``attr_allow_any_host`` 0, the drive as namespace ``nsid``, a sparse
  backing file when ``file_backed``), **admitting only the host NQN of the node the plan assigns it**
  (spares admit none); one port per portal and transport (id ``port_id``, transport ``N``: ``port_id`` for
  RDMA, ``100 + port_id`` for TCP) serving every subsystem. A changed assignment changes only that
  subsystem's ``allowed_hosts`` links; nothing is torn down.
- Boot: ``/usr/local/sbin/kvpod-nvmet-restore`` (generated from the plan, idempotent) run by
  ``kvpod-nvmet.service`` after the portal addresses exist, so the configuration survives a reboot.
"""

from __future__ import annotations

from collections import defaultdict

from pyinfra import host
from pyinfra.api import OperationError, deploy
from pyinfra.facts.files import File
from pyinfra.operations import files

from deploy.facts.kernel import LoadedModules, RdmaLinks
from deploy.facts.network import IpLinks, IpRoutes
from deploy.facts.nvmet import NvmetConfig
from deploy.facts.snapshot import Read
from deploy.names import RXE_UNIT, SYSTEMD_DIR
from deploy.operations import changed, kernel, network, nvmet, units
from deploy.operations.reads import Reads, file_reads, unit_reads
from deploy.plan import TargetPlan
from roles._common import netdev_unit, template

RESTORE_SCRIPT = "/usr/local/sbin/kvpod-nvmet-restore"
RESTORE_UNIT = "kvpod-nvmet.service"
NETWORKD_DIR = "/etc/systemd/network"
ADDRESS_WAIT_SECONDS = 90
TCP_PORT_OFFSET = 100
GB = 1_000_000_000


def target_plan() -> TargetPlan:
    plan = host.data.get("kvpod_target")
    if not isinstance(plan, TargetPlan):
        raise OperationError(f"host {host.name} has no kvpod_target plan in its data (the runner sets it)")
    return plan


def nvmet_ports(plan: TargetPlan) -> list[dict]:
    """One nvmet port per portal and transport, each serving every subsystem of the target."""
    nqns = [s.nqn for s in plan.subsystems]
    return [
        {
            "port_id": p.port_id + (TCP_PORT_OFFSET if trtype == "tcp" else 0),
            "trtype": trtype,
            "traddr": p.address,
            "trsvcid": p.trsvcid,
            "subsystems": nqns,
        }
        for p in plan.portals
        for trtype in p.transports
    ]


def nvmet_modules(plan: TargetPlan) -> list[str]:
    transports = {t for p in plan.portals for t in p.transports}
    mods = ["8021q", "nvmet"] + [f"nvmet_{t}" for t in sorted(transports)]
    if any(p.rdma == "soft-roce" for p in plan.portals):
        mods.append("rdma_rxe")
    return mods


def portals_by_interface(plan: TargetPlan) -> dict[str, list]:
    """The target's portals grouped by their NIC (a NIC can carry several portal addresses)."""
    by_iface: dict[str, list] = defaultdict(list)
    for p in plan.portals:
        if p.interface is None:
            raise OperationError(f"portal {p.name} of {plan.name} has no interface")
        by_iface[p.interface].append(p)
    return by_iface


def networkd_files(iface: str, vlan_interface: str) -> list[tuple[str, str, str]]:
    """``[(role of the template, template, destination)]`` of one portal NIC's systemd-networkd files."""
    stem = f"{NETWORKD_DIR}/10-kvpod-"
    return [
        ("fabric_network", "parent.network.j2", f"{stem}{iface}.network"),
        ("fabric_network", "vlan.netdev.j2", f"{stem}{vlan_interface}.netdev"),
        ("nvmet_target", "vlan.network.j2", f"{stem}{vlan_interface}.network"),
    ]


def reads(plan: TargetPlan) -> Reads:
    """What this role compares against (see :mod:`deploy.operations.reads`)."""
    out = [Read.of(LoadedModules), *file_reads("/etc/modules-load.d/kvpod-nvmet.conf"), Read.of(IpLinks)]
    if plan.gateway and plan.routes:
        out.append(Read.of(IpRoutes))
    soft_roce = False
    for iface, portals in portals_by_interface(plan).items():
        for _, _, dest in networkd_files(iface, portals[0].vlan_interface):
            out += file_reads(dest)
        soft_roce = soft_roce or any(p.rdma == "soft-roce" for p in portals)
    if soft_roce:
        out += [Read.of(RdmaLinks), *file_reads(f"{SYSTEMD_DIR}/{RXE_UNIT}"), *unit_reads(RXE_UNIT)]
    out.append(Read.of(NvmetConfig))
    if plan.file_backed:
        out += [Read.of(File, path=s.device_path) for s in plan.subsystems if s.device_path]
    out += file_reads(RESTORE_SCRIPT) + file_reads(f"{SYSTEMD_DIR}/{RESTORE_UNIT}") + unit_reads(RESTORE_UNIT)
    return out


@deploy("nvmet target")
def nvmet_target() -> None:
    """Portal network, soft-RoCE, subsystems with per-node host access, ports, and the boot-time restore."""
    plan = target_plan()
    mods = nvmet_modules(plan)
    kernel.modules(name="nvmet modules loaded now and at boot", names=mods, persist_as="kvpod-nvmet")

    by_iface = portals_by_interface(plan)
    written = []
    soft_roce_ifaces = []
    for iface, portals in by_iface.items():
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
        if plan.gateway and plan.routes:
            network.routes(interface=first.vlan_interface, gateway=plan.gateway, destinations=plan.routes)
        tmpl = {
            "interface": iface,
            "vlan": first.vlan,
            "vlan_interface": first.vlan_interface,
            "mtu": first.mtu,
            "addresses": addresses,
            "routes": plan.routes if plan.gateway else [],
            "gateway": plan.gateway,
        }
        written += [
            files.template(
                name=f"networkd {dest.rsplit('/', 1)[-1]}",
                src=template(role, src),
                dest=dest,
                **tmpl,
            )
            for role, src, dest in networkd_files(iface, first.vlan_interface)
        ]
        if any(p.rdma == "soft-roce" for p in portals):
            soft_roce_ifaces.append(iface)
    units.run(name="networkctl reload", command="networkctl reload", when=changed(*written))

    unit_files = []
    for iface in soft_roce_ifaces:
        rdma_dev = f"rxe_{iface}"
        kernel.rxe_link(name=f"soft-RoCE device on {iface}", netdev=iface, rdma_dev=rdma_dev)
        unit_files.append(
            files.template(
                name=f"{RXE_UNIT} recreates the soft-RoCE device at boot",
                src=template("fabric_network", "kvpod-rxe.service.j2"),
                dest=f"{SYSTEMD_DIR}/{RXE_UNIT}",
                interface=iface,
                rdma_dev=rdma_dev,
                netdev_unit=netdev_unit(iface),
            )
        )

    for s in plan.subsystems:
        if s.device_path is None:
            raise OperationError(f"drive {s.drive} of {plan.name} has no device_path")
        nvmet.subsystem(
            name=f"subsystem {s.nqn} admits {s.node or 'no host (spare)'}",
            nqn=s.nqn,
            nsid=s.nsid,
            device_path=s.device_path,
            allowed_hosts=[s.allowed_host_nqn] if s.allowed_host_nqn else [],
            file_size_bytes=int(s.capacity_gb * GB) if plan.file_backed else None,
            device_uuid=s.ns_uuid,
            device_nguid=s.ns_nguid,
        )
    ports = nvmet_ports(plan)
    for port in ports:
        nvmet.port(
            name=f"nvmet port {port['port_id']} {port['trtype']} {port['traddr']}:{port['trsvcid']}",
            port_id=port["port_id"],
            trtype=port["trtype"],
            traddr=port["traddr"],
            trsvcid=port["trsvcid"],
            subsystems=port["subsystems"],
        )

    files.template(
        name="boot-time nvmet restore script",
        src=template("nvmet_target", "kvpod-nvmet-restore.j2"),
        dest=RESTORE_SCRIPT,
        mode="755",
        modules=mods,
        wait_seconds=ADDRESS_WAIT_SECONDS,
        addresses=[{"interface": p.vlan_interface, "address": p.address} for p in plan.portals],
        subsystems=[
            {
                "nqn": s.nqn,
                "nsid": s.nsid,
                "device_path": s.device_path,
                "file_size": int(s.capacity_gb * GB) if plan.file_backed else None,
                "host": s.allowed_host_nqn,
                "uuid": s.ns_uuid,
                "nguid": s.ns_nguid,
            }
            for s in plan.subsystems
        ],
        ports=ports,
    )
    rxe = [RXE_UNIT] if soft_roce_ifaces else []
    unit_files.append(
        files.template(
            name=RESTORE_UNIT,
            src=template("nvmet_target", "kvpod-nvmet.service.j2"),
            dest=f"{SYSTEMD_DIR}/{RESTORE_UNIT}",
            target_name=plan.name,
            after=rxe,
            wants=rxe,
            script=RESTORE_SCRIPT,
            timeout=ADDRESS_WAIT_SECONDS + 60,
        )
    )
    units.daemon_reload(name="systemd daemon-reload", when=changed(*unit_files))
    if soft_roce_ifaces:
        units.service(name=f"{RXE_UNIT} enabled", unit=RXE_UNIT, enabled=True, running=True)
    units.service(name=f"{RESTORE_UNIT} enabled", unit=RESTORE_UNIT, enabled=True, running=True)
