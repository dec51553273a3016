"""Role ``nvme initiator``: the node's NVMe-oF namespace connected now and at every boot.

Reads ``host.data.kvpod_node`` (:class:`deploy.plan.NodePlan`): ``host_nqn``/``host_id``, ``namespace``
(``subsystem_nqn``, ``transport``, ``portals``, the connect settings ``ctrl_loss_tmo``, ``reconnect_delay``,
``fast_io_fail_tmo``, ``keep_alive_tmo``, ``nr_io_queues``, ``tos`` and the multipath ``iopolicy``) and ``fabric``
(``vlan_interface``, ``address``, ``rdma``), ``mount.path`` (for ordering).

- Packages ``nvme-cli`` and ``rdma-core`` present (a noop when installed: offline hosts are fine).
- Modules ``nvme_fabrics`` and ``nvme_rdma`` (or ``nvme_tcp``) loaded now and at boot
  (``/etc/modules-load.d/kvpod-nvme.conf``); ``8021q`` is loaded by the fabric role, which needs it first.
- ``/etc/nvme/hostnqn`` and ``/etc/nvme/hostid`` hold the plan's identity.
- ``nvme connect`` to every portal without a controller (one controller per portal; native multipath
  gives one block device). TCP connections are bound to the VLAN interface (``--host-iface``).
- The subsystem's multipath I/O policy is written to ``/sys/class/nvme-subsystem/nvme-subsysN/iopolicy`` after a
  connect, and whenever it differs; each live controller's ``reconnect_delay``, ``ctrl_loss_tmo`` and
  ``fast_io_fail_tmo`` are rewritten in sysfs when they differ (keep-alive and queues are fixed at connect).
- At boot: ``kvpod-nvme-connect.service`` (oneshot, RemainAfterExit) runs ``/usr/local/sbin/kvpod-nvme-connect``,
  which connects each portal that is not connected (with every planned connect option), then writes the I/O policy,
and succeeds when at least one portal is. It is ordered
  ``Before=`` the KV-cache mount unit. It ``Requires=``/``After=`` the VLAN interface's device unit
  (``sys-subsystem-net-devices-<iface>.device``) and the script waits (up to 90 s) until the interface has
  the planned address. Chosen over ``systemd-networkd-wait-online@<iface>:routable.service`` because it
  works whichever network manager brings the VLAN up (networkd, netplan's renderers) and waits for the exact
  address the connect needs, not for a link state. With soft-RoCE it also wants ``kvpod-rxe.service``.
  The unit (not nvme-cli's ``discovery.conf``/``config.json`` autoconnect) behaves the same on nvme-cli 2.x
  and 3.x; ``deploy.facts.nvme.NvmeCliVersion`` reports the installed version.
"""

from __future__ import annotations

from dataclasses import asdict

from pyinfra import host
from pyinfra.api import deploy

from deploy.facts.nvme import NvmeHostIdentity, NvmeSubsystems
from deploy.facts.snapshot import Read
from deploy.hostdata import host_data
from deploy.names import (
    ADDRESS_WAIT_SECONDS,
    CONNECT_SCRIPT,
    CONNECT_UNIT,
    HOSTID_FILE,
    HOSTNQN_FILE,
    NVME_MODULES,
    RXE_UNIT,
    SYSTEMD_DIR,
    TRANSPORT_MODULES,
)
from deploy.nvme_settings import PathSettings
from deploy.operations import nvme
from deploy.operations.bundle_steps import (
    bundled_file,
    modules_file,
    role_steps,
)
from deploy.operations.nvme import connect_argv, plan_connect_options
from deploy.operations.reads import Reads
from deploy.operations.steps import (
    BundledFile,
    Effect,
    Results,
    Steps,
    after,
    modules_step,
    packages_step,
    reads_of,
    reload_step,
    run_steps,
    service_step,
    step,
)
from deploy.operations.storage import mount_unit_name
from deploy.plan import NodePlan
from roles._common import netdev_unit, rendered_step


def identity_files(hostnqn: str, hostid: str) -> list[BundledFile]:
    """``/etc/nvme/hostnqn`` and ``/etc/nvme/hostid`` hold the plan's identity (one line each, as nvme-cli writes
    them), each written when the host's differs (read as ``NvmeHostIdentity`` reads it)."""
    identity = [Read.of(NvmeHostIdentity)]
    return [
        bundled_file(
            f"NVMe {key}",
            path,
            lambda value=value: f"{value}\n".encode(),
            differs=lambda key=key, value=value: host.get_fact(NvmeHostIdentity).get(key) != value,
            differs_reads=identity,
        )
        for key, path, value in (("hostnqn", HOSTNQN_FILE, hostnqn), ("hostid", HOSTID_FILE, hostid))
    ]


def steps(plan: NodePlan) -> Steps:
    """nvme-cli, modules, host identity, connections to every portal, and the boot-time connect unit."""
    ns, fab = plan.namespace, plan.fabric
    transport_module = TRANSPORT_MODULES[ns.transport]
    host_iface = fab.vlan_interface if ns.transport == "tcp" else None
    subsystem = [Effect("subsystem", ns.subsystem_nqn)]

    out: list = [
        packages_step("nvme-cli and rdma-core installed", ["nvme-cli", "rdma-core"]),
        modules_step("NVMe-oF modules loaded now", ["nvme_fabrics", transport_module]),
        modules_file("NVMe-oF modules loaded at boot", ["nvme_fabrics", transport_module], NVME_MODULES),
        *identity_files(plan.host_nqn, plan.host_id),
        step(
            nvme.connected,
            [Read.of(NvmeSubsystems)],
            effects=subsystem,
            name=f"{ns.subsystem_nqn} connected",
            subnqn=ns.subsystem_nqn,
            transport=ns.transport,
            portals=[(p.address, p.trsvcid) for p in ns.portals],
            hostnqn=plan.host_nqn,
            hostid=plan.host_id,
            ctrl_loss_tmo=ns.ctrl_loss_tmo,
            reconnect_delay=ns.reconnect_delay,
            host_iface=host_iface,
            iopolicy=ns.iopolicy,
            options=plan_connect_options(ns),
        ),
        step(
            nvme.path_settings,
            [Read.of(NvmeSubsystems)],
            effects=subsystem,
            name=f"{ns.subsystem_nqn} I/O policy and path settings",
            subnqn=ns.subsystem_nqn,
            **asdict(PathSettings.of(ns)),
        ),
    ]

    portals = [
        {
            "address": p.address,
            "trsvcid": p.trsvcid,
            "argv": connect_argv(
                ns.subsystem_nqn,
                ns.transport,
                p.address,
                p.trsvcid,
                plan.host_nqn,
                plan.host_id,
                ns.ctrl_loss_tmo,
                ns.reconnect_delay,
                host_iface,
                **plan_connect_options(ns),
            ),
        }
        for p in ns.portals
    ]
    out.append(
        rendered_step(
            "boot-time connect script",
            "nvme_initiator",
            "kvpod-nvme-connect.j2",
            CONNECT_SCRIPT,
            mode="755",
            subnqn=ns.subsystem_nqn,
            vlan_interface=fab.vlan_interface,
            address=fab.address,
            transport=ns.transport,
            transport_module=transport_module,
            wait_seconds=ADDRESS_WAIT_SECONDS,
            portals=portals,
            iopolicy=ns.iopolicy,
        )
    )
    soft_roce = [RXE_UNIT] if fab.rdma == "soft-roce" else []
    out.append(
        rendered_step(
            f"{CONNECT_UNIT}",
            "nvme_initiator",
            "kvpod-nvme-connect.service.j2",
            f"{SYSTEMD_DIR}/{CONNECT_UNIT}",
            keep="unit",
            subnqn=ns.subsystem_nqn,
            netdev_unit=netdev_unit(fab.vlan_interface),
            after=soft_roce,
            wants=soft_roce,
            mount_unit=mount_unit_name(plan.mount.path),
            script=CONNECT_SCRIPT,
            timeout=ADDRESS_WAIT_SECONDS + 30 * max(1, len(ns.portals)),
        )
    )
    return [
        *out,
        reload_step(when=after("unit")),
        service_step(f"{CONNECT_UNIT} enabled", CONNECT_UNIT, enabled=True, running=True),
    ]


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("nvme initiator")
def nvme_initiator(results: Results | None = None) -> None:
    """nvme-cli, modules, host identity, connections to every portal, and the boot-time connect unit (its files in
    one bundle, unless ``results`` holds the node's bundle already)."""
    run_steps(*role_steps(steps(host_data().node), results))
