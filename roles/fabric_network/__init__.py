"""Role ``fabric network``: the storage fabric on a node, live now and persistent across reboots.

Reads ``host.data.kvpod_node.fabric`` (a :class:`deploy.plan.FabricPlan`):

- ``interface`` (the fabric NIC) gets ``mtu`` and is brought up; ``vlan_interface`` (VLAN ``vlan`` on it)
  gets ``address``/``prefix_length`` and ``mtu``; each subnet of ``routes`` goes via ``gateway`` when set.
  The live state is compared first (``ip -j``), so interfaces that are right are never bounced; other
  interfaces (the management NIC) are never touched.
- Persistence: systemd-networkd files ``/etc/systemd/network/10-kvpod-*.{network,netdev}`` and
  ``networkctl reload`` when they change; on a netplan host (YAML files in ``/etc/netplan``) instead
  ``/etc/netplan/60-kvpod.yaml`` and ``netplan apply`` when it changes. A host managed by neither is refused.
- Sysctls ``net.core.rmem_max``/``wmem_max`` = ``socket_buffer_bytes`` and the maximum of
  ``net.ipv4.tcp_rmem``/``tcp_wmem`` (kernel defaults kept for min/default; NVMe/TCP autotunes up to it),
  persisted in ``/etc/sysctl.d/90-kvpod-rdma.conf``.
- ``8021q`` loaded now and at boot (``/etc/modules-load.d/kvpod-fabric.conf``).
- ``rdma == "soft-roce"``: ``rdma_rxe`` (``kvpod-rdma.conf``), an rxe device on the fabric NIC (it serves the
  VLAN's addresses too) and ``kvpod-rxe.service`` recreating it at boot, ordered before the NVMe connect.
- ``roce_qos`` on a hardware RDMA NIC: DSCP -> lossless priority, PFC on that priority only and ECN of it
  (:mod:`deploy.dcb`), set now where they differ and at every boot by ``kvpod-dcb.service`` (a oneshot running
  ``/usr/local/sbin/kvpod-dcb`` before the NVMe connect; systemd-networkd has no DCB settings). A soft-RoCE NIC
  takes no DCB: nothing is tried there.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import server

from deploy.dcb import pfc_map
from deploy.encode import interface_name, shell_word
from deploy.facts.kernel import LoadedModules, RdmaLinks
from deploy.facts.network import DcbState, IpLinks, IpRoutes, NetplanFiles
from deploy.facts.snapshot import Read
from deploy.hostdata import host_data
from deploy.names import (
    CONNECT_UNIT,
    DCB_SCRIPT,
    DCB_UNIT,
    FABRIC_MODULES,
    NETPLAN_FILE,
    NETWORKD_DIR,
    NETWORKD_PREFIX,
    RXE_UNIT,
    SOFT_ROCE_MODULE,
    SOFT_ROCE_MODULES,
    SYSCTL_FILE,
    SYSTEMD_DIR,
    VLAN_MODULE,
    modules_load_path,
)
from deploy.operations import changed, host_error, kernel, network, units
from deploy.operations.reads import Reads, absent_file_reads, file_reads, sysctl_reads, unit_reads
from deploy.plan import FabricPlan, NodePlan
from roles._common import netdev_unit, rendered_file


def socket_sysctls(size: int) -> dict[str, str]:
    """The socket-buffer sysctls for ``size`` bytes."""
    return {
        "net.core.rmem_max": str(size),
        "net.core.wmem_max": str(size),
        "net.ipv4.tcp_rmem": f"4096 {min(131072, size)} {size}",
        "net.ipv4.tcp_wmem": f"4096 {min(16384, size)} {size}",
    }


def networkd_files(interface: str, vlan_interface: str) -> list[tuple[str, str]]:
    """``[(template, destination)]`` of the systemd-networkd files of one fabric NIC and its storage VLAN."""
    stem = f"{NETWORKD_DIR}/{NETWORKD_PREFIX}"
    interface, vlan_interface = interface_name(interface), interface_name(vlan_interface)
    return [
        ("parent.network.j2", f"{stem}{interface}.network"),
        ("vlan.netdev.j2", f"{stem}{vlan_interface}.netdev"),
        ("vlan.network.j2", f"{stem}{vlan_interface}.network"),
    ]


def networkd_reads(interface: str, vlan_interface: str) -> Reads:
    return [r for _, dest in networkd_files(interface, vlan_interface) for r in file_reads(dest)]


def soft_roce_reads() -> Reads:
    return [Read.of(RdmaLinks), *file_reads(f"{SYSTEMD_DIR}/{RXE_UNIT}"), *unit_reads(RXE_UNIT)]


def networkd(description: str, addresses: list[str], **tmpl) -> None:
    """The systemd-networkd files of one fabric NIC (``tmpl``: interface, vlan, vlan_interface, mtu, gateway,
    routes) with ``addresses`` (CIDR) on its storage VLAN; ``networkctl reload`` when one changed."""
    written = [
        rendered_file(
            f"networkd {dest.rsplit('/', 1)[-1]}",
            "fabric_network",
            src,
            dest,
            description=description,
            addresses=addresses,
            **tmpl,
        )
        for src, dest in networkd_files(tmpl["interface"], tmpl["vlan_interface"])
    ]
    units.run(name="networkctl reload", command="networkctl reload", when=changed(*written))


def soft_roce_device(interface: str):
    """An rxe device on ``interface`` now, and the unit recreating it at boot (returned: reload when changed)."""
    rdma_dev = f"rxe_{interface}"
    kernel.rxe_link(name=f"soft-RoCE device on {interface}", netdev=interface, rdma_dev=rdma_dev)
    return rendered_file(
        f"{RXE_UNIT} recreates the soft-RoCE device at boot",
        "fabric_network",
        "kvpod-rxe.service.j2",
        f"{SYSTEMD_DIR}/{RXE_UNIT}",
        interface=interface,
        rdma_dev=rdma_dev,
        netdev_unit=netdev_unit(interface),
        exec_start=["/bin/sh", "-c", rxe_script(interface, rdma_dev)],
    )


def rxe_script(interface: str, rdma_dev: str) -> str:
    """The ``sh -c`` script of the rxe unit: add ``rdma_dev`` on ``interface`` unless an rxe device is on it."""
    iface, dev = shell_word(interface), shell_word(rdma_dev)
    return (
        f'for d in /sys/class/infiniband/*; do [ "$(cat "$d/parent" 2>/dev/null)" = {iface} ] && exit 0; done; '
        f"exec rdma link add {dev} type rxe netdev {iface}"
    )


def netplan_document(tmpl: dict) -> dict:
    """The netplan file of the fabric NIC and its storage VLAN, as data (dumped as YAML by the template)."""
    off = {"dhcp4": False, "dhcp6": False, "link-local": []}
    vlan = {
        "id": tmpl["vlan"],
        "link": str(interface_name(tmpl["interface"])),
        "mtu": tmpl["mtu"],
        **off,
        "addresses": [f"{tmpl['address']}/{tmpl['prefix_length']}"],
    }
    if tmpl["routes"]:
        vlan["routes"] = [{"to": route, "via": tmpl["gateway"]} for route in tmpl["routes"]]
    return {
        "network": {
            "version": 2,
            "ethernets": {str(interface_name(tmpl["interface"])): {"mtu": tmpl["mtu"], **off}},
            "vlans": {str(interface_name(tmpl["vlan_interface"])): vlan},
        }
    }


def reads(plan: NodePlan) -> Reads:
    """What this role compares against (see :mod:`deploy.operations.reads`)."""
    fab = plan.fabric
    out = [Read.of(LoadedModules), *file_reads(modules_load_path(FABRIC_MODULES)), Read.of(IpLinks)]
    if fab.gateway and fab.routes:
        out.append(Read.of(IpRoutes))
    out += [Read.of(NetplanFiles), *absent_file_reads(NETPLAN_FILE), *file_reads(NETPLAN_FILE)]
    out += unit_reads("systemd-networkd.service")[:1] + networkd_reads(fab.interface, fab.vlan_interface)
    out += sysctl_reads(list(socket_sysctls(fab.socket_buffer_bytes))) + file_reads(SYSCTL_FILE)
    if fab.rdma == "soft-roce":
        out += [*file_reads(modules_load_path(SOFT_ROCE_MODULES)), *soft_roce_reads()]
    if dcb_applies(fab):
        assert fab.roce_qos is not None
        out += [Read.of(DcbState, interface=fab.interface, priority=fab.roce_qos.priority)]
        out += [*file_reads(DCB_SCRIPT), *file_reads(f"{SYSTEMD_DIR}/{DCB_UNIT}"), *unit_reads(DCB_UNIT)]
    return out


def dcb_applies(fab: FabricPlan) -> bool:
    """Whether the node's NIC is given lossless RoCE settings: RoCE QoS planned and a hardware RDMA NIC."""
    return fab.roce_qos is not None and fab.rdma != "soft-roce"


def lossless_roce(fab: FabricPlan) -> None:
    """DCB on the NIC now (where it differs) and at boot (``kvpod-dcb.service``)."""
    qos = fab.roce_qos
    assert qos is not None
    network.roce_qos(
        name=f"lossless RoCE on {fab.interface} (priority {qos.priority})",
        interface=fab.interface,
        priority=qos.priority,
        dscp=list(qos.dscp),
        ecn=qos.ecn,
    )
    script = rendered_file(
        "lossless RoCE script",
        "fabric_network",
        "kvpod-dcb.j2",
        DCB_SCRIPT,
        mode="755",
        interface=fab.interface,
        priority=qos.priority,
        dscp_map=[f"{d}:{qos.priority}" for d in qos.dscp],
        pfc_map=pfc_map(qos.priority),
        ecn_value="1" if qos.ecn else "0",
        dscp_text=",".join(str(d) for d in qos.dscp),
    )
    unit = rendered_file(
        f"{DCB_UNIT} sets it at boot",
        "fabric_network",
        "kvpod-dcb.service.j2",
        f"{SYSTEMD_DIR}/{DCB_UNIT}",
        interface=fab.interface,
        netdev_unit=netdev_unit(fab.interface),
        connect_unit=CONNECT_UNIT,
        script=DCB_SCRIPT,
    )
    units.daemon_reload(name="systemd daemon-reload", when=changed(unit, script))
    units.service(name=f"{DCB_UNIT} enabled", unit=DCB_UNIT, enabled=True, running=True)


def _uses_netplan() -> bool:
    others = [f for f in host.get_fact(NetplanFiles) if f != NETPLAN_FILE]
    return bool(others) or bool(host.get_fact(File, path=NETPLAN_FILE))


@deploy("fabric network")
def fabric_network() -> None:
    """MTU, storage VLAN, address, routes, socket buffers and (soft-)RoCE on the fabric NIC."""
    fab = host_data().node.fabric
    tmpl = {
        "interface": fab.interface,
        "vlan": fab.vlan,
        "vlan_interface": fab.vlan_interface,
        "mtu": fab.mtu,
        "address": fab.address,
        "prefix_length": fab.prefix_length,
        "gateway": fab.gateway,
        "routes": fab.routes if fab.gateway else [],
    }

    kernel.modules(name=f"{VLAN_MODULE} loaded now and at boot", names=[VLAN_MODULE], persist_as=FABRIC_MODULES)
    network.vlan_interface(
        parent=fab.interface,
        vlan_id=fab.vlan,
        interface=fab.vlan_interface,
        mtu=fab.mtu,
        address=fab.address,
        prefix_length=fab.prefix_length,
    )
    if fab.gateway and fab.routes:
        network.routes(interface=fab.vlan_interface, gateway=fab.gateway, destinations=fab.routes)

    if _uses_netplan():
        plan_file = rendered_file(
            "netplan file of the fabric",
            "fabric_network",
            "netplan.yaml.j2",
            NETPLAN_FILE,
            mode="600",
            netplan=netplan_document(tmpl),
        )
        units.run(name="netplan apply", command="netplan apply", when=changed(plan_file))
    else:
        if not host.get_fact(SystemdStatus, services=["systemd-networkd.service"]).get("systemd-networkd.service"):
            raise host_error(
                f"{host.name}: neither netplan nor systemd-networkd manages the network, so the fabric interface "
                f"{fab.vlan_interface} cannot be made persistent; enable systemd-networkd or netplan"
            )
        networkd("storage VLAN address", [f"{fab.address}/{fab.prefix_length}"], **tmpl)

    sysctls = socket_sysctls(fab.socket_buffer_bytes)
    for key, value in sysctls.items():
        server.sysctl(name=f"sysctl {key}", key=key, value=value)
    rendered_file("socket buffer sysctls at boot", "fabric_network", "sysctl.conf.j2", SYSCTL_FILE, sysctls=sysctls)

    if fab.rdma == "soft-roce":
        kernel.modules(
            name=f"{SOFT_ROCE_MODULE} loaded now and at boot", names=[SOFT_ROCE_MODULE], persist_as=SOFT_ROCE_MODULES
        )
        unit = soft_roce_device(fab.interface)
        units.daemon_reload(name="systemd daemon-reload", when=changed(unit))
        units.service(name=f"{RXE_UNIT} enabled", unit=RXE_UNIT, enabled=True, running=True)
    elif dcb_applies(fab):
        lossless_roce(fab)
