"""The plan: a pure function from a validated pod spec to the desired state of every host.

Everything that acts on hosts (runner, roles, verify, switch and target drivers) reads the plan, never
the raw spec, so all of them agree on addresses, NQNs and budgets. Same spec in, byte-identical plan out.
The models are in :mod:`deploy.plan_models`, the pieces built per switch, engine or endpoint in
:mod:`deploy.plan_parts`; every name other modules use is importable from here.
"""

from __future__ import annotations

from deploy.addressing import plan_addresses
from deploy.assignment import all_drives, host_id, host_nqn, node_drives, subsystem_nqn
from deploy.names import VLLM_HF_ENV_FILE
from deploy.nodes import expand_nodes
from deploy.plan_models import (
    USAGE_TRACKING_OFF,
    EnginePlan,
    FabricPlan,
    FabricSummary,
    Frozen,
    InstallPlan,
    LmcachePlan,
    MountPlan,
    NamespacePlan,
    NodePlan,
    Plan,
    PortalPlan,
    RoceQosPlan,
    SshPlan,
    SubsystemPlan,
    SwitchPlan,
    SwitchPortPlan,
    SwitchVlanPlan,
    TargetPlan,
    TargetPortalPlan,
    VllmPlan,
    limited_nodes,
    single_engine_upgraded,
)
from deploy.plan_parts import (
    OFFLINE_ENV,
    engine_plans,
    hf_environment,
    install_plan,
    namespace_ids,
    roce_qos_plan,
    roce_tos,
    ssh_plan,
    switch_plans,
)
from deploy.spec import PodSpec

__all__ = [  # what other modules import from here: the models, re-exported, and the builder
    "KV_TRANSFER_CONFIG", "OFFLINE_ENV", "USAGE_TRACKING_OFF", "EnginePlan", "FabricPlan", "FabricSummary", "Frozen",
    "InstallPlan", "LmcachePlan", "MountPlan", "NamespacePlan", "NodePlan", "Plan", "PortalPlan", "RoceQosPlan",
    "SshPlan", "SubsystemPlan", "SwitchPlan", "SwitchPortPlan", "SwitchVlanPlan", "TargetPlan", "TargetPortalPlan",
    "VllmPlan", "build_plan", "hf_environment", "limited_nodes", "namespace_ids", "roce_qos_plan", "roce_tos",
    "single_engine_upgraded",
]  # fmt: skip

KV_TRANSFER_CONFIG = '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'


def build_plan(spec: PodSpec) -> Plan:
    """The desired state of the whole pod. ``spec`` must have passed :func:`deploy.validate.check_pod`."""
    nodes = expand_nodes(spec.nodes)
    fab = spec.fabric
    addressing = plan_addresses(spec, nodes)
    storage_prefix = addressing.storage_subnet.prefixlen
    drives = {(e.name, d.slot): (e, d) for e, d in all_drives(spec)}
    holders = node_drives(spec, nodes)
    holder_of = {(ref.enclosure, ref.slot): name for name, ref in holders.items()}
    node_by_name = {n.name: n for n in nodes}

    targets: list[TargetPlan] = []
    portals_of: dict[str, list[PortalPlan]] = {}
    per_node = fab.vlan_mode == "per-node"
    ports_on: dict[tuple, int] = {}  # ports numbered so far on each server (enclosures sharing an SSH host)
    for enc in spec.enclosures:
        tportals: list[TargetPortalPlan] = []
        ssh = enc.management.ssh
        server = (enc.kind, ssh.address, ssh.port, ssh.user) if ssh else ("enclosure", enc.name)
        port_id = ports_on.get(server, 0)
        for iom in enc.ioms:
            for port in iom.ports:
                port_id += 1
                ports_on[server] = port_id
                tportals.append(
                    TargetPortalPlan(
                        name=f"{iom.name}-{port.name}",
                        iom=iom.name,
                        port=port.name,
                        port_id=port_id,
                        interface=port.nic(),
                        vlan=fab.storage_vlan,
                        vlan_interface=f"{port.nic()}.{fab.storage_vlan}" if port.nic() else None,
                        address=str(addressing.portals[(enc.name, iom.name, port.name)]),
                        prefix_length=storage_prefix,
                        mtu=fab.mtu,
                        rdma=port.rdma,
                        transports=list(port.transports),
                        trsvcid=fab.trsvcid,
                        switch=port.switch,
                        switch_port=port.switch_port,
                    )
                )
        portals_of[enc.name] = [
            PortalPlan(name=p.name, iom=p.iom, address=p.address, trsvcid=p.trsvcid, transport=fab.transport)
            for p in tportals
            if fab.transport in p.transports
        ]
        subsystems = []
        for d in enc.drive_list():
            holder = holder_of.get((enc.name, d.slot))
            subsystems.append(
                SubsystemPlan(
                    drive=d.slot,
                    nqn=subsystem_nqn(enc, d),
                    nsid=d.nsid,
                    ns_uuid=namespace_ids(subsystem_nqn(enc, d), d.nsid)[0],
                    ns_nguid=namespace_ids(subsystem_nqn(enc, d), d.nsid)[1],
                    capacity_gb=d.capacity_gb,
                    device_path=d.backing_path(),
                    allowed_host_nqn=host_nqn(spec, node_by_name[holder]) if holder else None,
                    node=holder,
                )
            )
        gateway = str(addressing.storage_svi) if per_node and addressing.storage_svi else None
        targets.append(
            TargetPlan(
                name=enc.name,
                kind=enc.kind,
                ssh=ssh_plan(enc.management.ssh),
                management_address=enc.management.address,
                file_backed=enc.file_backed,
                portals=tportals,
                subsystems=subsystems,
                routes=[fab.node_subnets] if per_node and fab.node_subnets else [],
                gateway=gateway,
            )
        )

    node_plans: list[NodePlan] = []
    hf_env = hf_environment(spec)
    qos = roce_qos_plan(spec) if fab.transport == "rdma" else None
    for n in nodes:
        seg = addressing.nodes[n.name]
        ref = holders[n.name]
        enc, drive = drives[(ref.enclosure, ref.slot)]
        portals = portals_of[enc.name]
        if not fab.multipath:
            portals = portals[:1]
        node_plans.append(
            NodePlan(
                name=n.name,
                ssh=ssh_plan(n.ssh),
                host_nqn=host_nqn(spec, n),
                host_id=host_id(spec, n),
                gpus=n.gpus,
                fabric=FabricPlan(
                    interface=n.fabric_interface,
                    rdma=n.rdma,
                    vlan=seg.vlan,
                    vlan_interface=f"{n.fabric_interface}.{seg.vlan}",
                    address=str(seg.address),
                    prefix_length=seg.subnet.prefixlen,
                    mtu=fab.mtu,
                    gateway=str(seg.gateway) if seg.gateway else None,
                    routes=[fab.subnet] if seg.gateway else [],
                    switch=n.switch,
                    switch_port=n.switch_port,
                    socket_buffer_bytes=fab.rdma_socket_buffer_bytes,
                    roce_qos=qos,
                ),
                namespace=NamespacePlan(
                    enclosure=enc.name,
                    drive=drive.slot,
                    subsystem_nqn=subsystem_nqn(enc, drive),
                    nsid=drive.nsid,
                    capacity_gb=drive.capacity_gb,
                    transport=fab.transport,
                    portals=portals,
                    ctrl_loss_tmo=fab.ctrl_loss_tmo,
                    reconnect_delay=fab.reconnect_delay,
                    iopolicy=fab.iopolicy,
                    fast_io_fail_tmo=fab.fast_io_fail_tmo,
                    keep_alive_tmo=fab.keep_alive_tmo,
                    nr_io_queues=fab.nr_io_queues,
                    tos=roce_tos(qos) if qos is not None and n.rdma == "hardware" and fab.transport == "rdma" else None,
                ),
                mount=MountPlan(
                    path=spec.kvcache.path,
                    filesystem=spec.kvcache.filesystem,
                    options=list(spec.kvcache.mount_options),
                    label="kvcache",
                    disk_budget_gb=spec.kvcache.disk_budget_gib,
                ),
                vllm=VllmPlan(
                    model=spec.vllm.model,
                    tensor_parallel_size=spec.vllm.tensor_parallel_size,
                    gpu_memory_utilization=spec.vllm.gpu_memory_utilization,
                    max_model_len=spec.vllm.max_model_len,
                    port=spec.vllm.port,
                    user=spec.vllm.user,
                    executable=f"{spec.vllm.install.venv}/bin/vllm" if spec.vllm.install else spec.vllm.executable,
                    extra_args=list(spec.vllm.extra_args),
                    kv_transfer_config=KV_TRANSFER_CONFIG,
                    install=install_plan(spec),
                    weights_cache_dir=spec.vllm.weights_cache_dir,
                    offline=spec.vllm.offline,
                    hf_env=hf_env,
                    hf_env_file=VLLM_HF_ENV_FILE if hf_env else None,
                    health_timeout_s=spec.vllm.health_timeout_s,
                ),
                engines=engine_plans(spec, n.gpus),
            )
        )

    return Plan(
        pod=spec.pod.name,
        fabric=FabricSummary(
            mtu=fab.mtu,
            vlan_mode=fab.vlan_mode,
            storage_vlan=fab.storage_vlan,
            subnet=fab.subnet,
            transport=fab.transport,
            multipath=fab.multipath,
        ),
        nodes=node_plans,
        targets=targets,
        switches=switch_plans(spec, node_plans, targets, addressing),
    )
