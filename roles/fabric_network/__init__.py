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

from collections.abc import Callable

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdStatus

from deploy.dcb import pfc_map
from deploy.encode import interface_name, shell_word
from deploy.facts.kernel import RdmaLinks
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
)
from deploy.operations import host_error, kernel, network
from deploy.operations.bundle_steps import (
    modules_file,
    role_steps,
)
from deploy.operations.reads import Reads, absent_file_reads, unit_reads
from deploy.operations.steps import (
    Choice,
    Effect,
    Results,
    Step,
    Steps,
    after,
    choice,
    command_step,
    modules_step,
    reads_of,
    reload_step,
    run_steps,
    service_step,
    step,
    sysctls_step,
)
from deploy.plan import FabricPlan, NodePlan
from roles._common import netdev_unit, put_rendered_step, rendered_step


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


def networkd_steps(
    description: str, addresses: list[str], when: Callable[[], bool] | None = None, when_reads: Reads = (), **tmpl
) -> Steps:
    """The systemd-networkd files of one fabric NIC (``tmpl``: interface, vlan, vlan_interface, mtu, gateway,
    routes) with ``addresses`` (CIDR) on its storage VLAN (written when ``when()``, if given); ``networkctl
    reload`` when one changed."""
    written = [
        rendered_step(
            f"networkd {dest.rsplit('/', 1)[-1]}",
            "fabric_network",
            src,
            dest,
            keep="networkd",
            when=when,
            when_reads=when_reads,
            description=description,
            addresses=addresses,
            **tmpl,
        )
        for src, dest in networkd_files(tmpl["interface"], tmpl["vlan_interface"])
    ]
    return [*written, command_step("networkctl reload", "networkctl reload", when=after("networkd"))]


def networkd(description: str, addresses: list[str], **tmpl) -> None:
    """The files of :func:`networkd_steps`, each put by its own ``files.put`` (a host without a bundle of its
    own), and ``networkctl reload`` when one changed."""
    written = [
        put_rendered_step(
            f"networkd {dest.rsplit('/', 1)[-1]}",
            "fabric_network",
            src,
            dest,
            keep="networkd",
            description=description,
            addresses=addresses,
            **tmpl,
        )
        for src, dest in networkd_files(tmpl["interface"], tmpl["vlan_interface"])
    ]
    run_steps([*written, command_step("networkctl reload", "networkctl reload", when=after("networkd"))])


def routes_step(interface: str, gateway: str, routes: list[str]) -> Step:
    """Routes to ``routes`` through ``gateway`` on the VLAN interface ``interface`` (a routed fabric)."""
    return step(
        network.routes,
        [Read.of(IpRoutes)],
        effects=[Effect("link", interface)],
        interface=interface,
        gateway=gateway,
        destinations=routes,
    )


def networkd_reads(interface: str, vlan_interface: str) -> Reads:
    return reads_of(networkd_steps("", [], interface=interface, vlan_interface=vlan_interface))


def soft_roce_device_steps(interface: str, bundled: bool = True) -> Steps:
    """An rxe device on ``interface`` now, and the unit recreating it at boot (kept as ``rxe``: reload when it
    changed; a bundled file, else put by a step of its own)."""
    rdma_dev = f"rxe_{interface}"
    unit_file = rendered_step if bundled else put_rendered_step
    return [
        step(
            kernel.rxe_link,
            [Read.of(RdmaLinks)],
            effects=[Effect("link", rdma_dev)],
            name=f"soft-RoCE device on {interface}",
            netdev=interface,
            rdma_dev=rdma_dev,
        ),
        unit_file(
            f"{RXE_UNIT} recreates the soft-RoCE device at boot",
            "fabric_network",
            "kvpod-rxe.service.j2",
            f"{SYSTEMD_DIR}/{RXE_UNIT}",
            keep="rxe",
            interface=interface,
            rdma_dev=rdma_dev,
            netdev_unit=netdev_unit(interface),
            exec_start=["/bin/sh", "-c", rxe_script(interface, rdma_dev)],
        ),
    ]


def soft_roce_device(interface: str):
    """:func:`soft_roce_device_steps`, run; returns the unit file's operation (reload when it changed)."""
    return run_steps(soft_roce_device_steps(interface, bundled=False))["rxe"][0]


def soft_roce_steps(interface: str) -> Steps:
    """The rxe device, its unit, ``daemon-reload`` when the unit changed, the unit enabled."""
    return [
        *soft_roce_device_steps(interface),
        reload_step(when=after("rxe")),
        service_step(f"{RXE_UNIT} enabled", RXE_UNIT, enabled=True, running=True),
    ]


def soft_roce_reads(interface: str = "") -> Reads:
    return reads_of(soft_roce_steps(interface))


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


def dcb_applies(fab: FabricPlan) -> bool:
    """Whether the node's NIC is given lossless RoCE settings: RoCE QoS planned and a hardware RDMA NIC."""
    return fab.roce_qos is not None and fab.rdma != "soft-roce"


def lossless_roce_steps(fab: FabricPlan) -> Steps:
    """DCB on the NIC now (where it differs) and at boot (``kvpod-dcb.service``)."""
    qos = fab.roce_qos
    assert qos is not None
    return [
        step(
            network.roce_qos,
            [Read.of(DcbState, interface=fab.interface, priority=qos.priority)],
            effects=[Effect("link", fab.interface)],
            name=f"lossless RoCE on {fab.interface} (priority {qos.priority})",
            interface=fab.interface,
            priority=qos.priority,
            dscp=list(qos.dscp),
            ecn=qos.ecn,
        ),
        rendered_step(
            "lossless RoCE script",
            "fabric_network",
            "kvpod-dcb.j2",
            DCB_SCRIPT,
            mode="755",
            keep="dcb",
            interface=fab.interface,
            priority=qos.priority,
            dscp_map=[f"{d}:{qos.priority}" for d in qos.dscp],
            pfc_map=pfc_map(qos.priority),
            ecn_value="1" if qos.ecn else "0",
            dscp_text=",".join(str(d) for d in qos.dscp),
        ),
        rendered_step(
            f"{DCB_UNIT} sets it at boot",
            "fabric_network",
            "kvpod-dcb.service.j2",
            f"{SYSTEMD_DIR}/{DCB_UNIT}",
            keep="dcb",
            interface=fab.interface,
            netdev_unit=netdev_unit(fab.interface),
            connect_unit=CONNECT_UNIT,
            script=DCB_SCRIPT,
        ),
        reload_step(when=after("dcb")),
        service_step(f"{DCB_UNIT} enabled", DCB_UNIT, enabled=True, running=True),
    ]


def _uses_netplan() -> bool:
    others = [f for f in host.get_fact(NetplanFiles) if f != NETPLAN_FILE]
    return bool(others) or bool(host.get_fact(File, path=NETPLAN_FILE))


def _networkd_runs() -> bool:
    return bool(host.get_fact(SystemdStatus, services=["systemd-networkd.service"]).get("systemd-networkd.service"))


def _networkd_persists() -> bool:
    """Whether the fabric's systemd-networkd files are wanted: no netplan, and systemd-networkd manages the
    network (else the role refuses, writing nothing)."""
    return not _uses_netplan() and _networkd_runs()


def _networkd_manages(vlan_interface: str) -> None:
    if not _networkd_runs():
        raise host_error(
            f"{host.name}: neither netplan nor systemd-networkd manages the network, so the fabric interface "
            f"{vlan_interface} cannot be made persistent; enable systemd-networkd or netplan"
        )


def persistence_steps(fab: FabricPlan, tmpl: dict) -> Choice:
    """The fabric's netplan file on a netplan host, else its systemd-networkd files (refused without networkd)."""
    decide = [Read.of(NetplanFiles), *absent_file_reads(NETPLAN_FILE)]
    networkd_status = unit_reads("systemd-networkd.service")[:1]
    netplan = [
        rendered_step(
            "netplan file of the fabric",
            "fabric_network",
            "netplan.yaml.j2",
            NETPLAN_FILE,
            mode="600",
            keep="netplan",
            when=_uses_netplan,
            when_reads=decide,
            netplan=netplan_document(tmpl),
        ),
        command_step("netplan apply", "netplan apply", when=after("netplan")),
    ]
    networkd_check = step(_networkd_manages, networkd_status, vlan_interface=fab.vlan_interface)
    networkd_address = [f"{fab.address}/{fab.prefix_length}"]
    networkd = networkd_steps(
        "storage VLAN address", networkd_address, when=_networkd_persists, when_reads=decide + networkd_status, **tmpl
    )
    return choice(_uses_netplan, decide, then=netplan, otherwise=[networkd_check, *networkd])


def steps(plan: NodePlan) -> Steps:
    """MTU, storage VLAN, address, routes, socket buffers and (soft-)RoCE on the fabric NIC."""
    fab = plan.fabric
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
    # the socket buffers first: a module loaded later may add sysctl keys, so it stales their reads
    sysctls = socket_sysctls(fab.socket_buffer_bytes)
    out: list = [
        sysctls_step("socket buffer sysctls", sysctls),
        rendered_step(
            "socket buffer sysctls at boot", "fabric_network", "sysctl.conf.j2", SYSCTL_FILE, sysctls=sysctls
        ),
        modules_file(f"{VLAN_MODULE} loaded at boot", [VLAN_MODULE], FABRIC_MODULES),
        modules_step(f"{VLAN_MODULE} loaded now", [VLAN_MODULE]),
        step(
            network.vlan_interface,
            [Read.of(IpLinks)],
            effects=[Effect("link", fab.vlan_interface)],
            parent=fab.interface,
            vlan_id=fab.vlan,
            interface=fab.vlan_interface,
            mtu=fab.mtu,
            address=fab.address,
            prefix_length=fab.prefix_length,
        ),
    ]
    if fab.gateway and fab.routes:
        out.append(routes_step(fab.vlan_interface, fab.gateway, fab.routes))
    out.append(persistence_steps(fab, tmpl))

    if fab.rdma == "soft-roce":
        modules = f"{SOFT_ROCE_MODULE} loaded now and at boot"
        persisted = modules_file(f"{SOFT_ROCE_MODULE} loaded at boot", [SOFT_ROCE_MODULE], SOFT_ROCE_MODULES)
        out += [modules_step(modules, [SOFT_ROCE_MODULE]), persisted, *soft_roce_steps(fab.interface)]
    elif dcb_applies(fab):
        out += lossless_roce_steps(fab)
    return out


def reads(plan: NodePlan) -> Reads:
    """What this role compares against: the reads of its steps."""
    return reads_of(steps(plan))


@deploy("fabric network")
def fabric_network(results: Results | None = None) -> None:
    """MTU, storage VLAN, address, routes, socket buffers and (soft-)RoCE on the fabric NIC (its files in one
    bundle, unless ``results`` holds the node's bundle already)."""
    run_steps(*role_steps(steps(host_data().node), results))
