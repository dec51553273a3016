"""The plan: a pure function from a validated pod spec to the desired state of every host.

Everything that acts on hosts (runner, roles, verify, switch and target drivers) reads the plan, never
the raw spec, so all of them agree on addresses, NQNs and budgets. Same spec in, byte-identical plan out.
"""

from __future__ import annotations

import json
import uuid

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from deploy.addressing import plan_addresses
from deploy.assignment import all_drives, host_id, host_nqn, node_drives, subsystem_nqn
from deploy.errors import InputError
from deploy.names import (
    LMCACHE_DIR,
    VLLM_HF_ENV_FILE,
    WHEELHOUSE_DEST,
    engine_dir_name,
    engine_file,
    engine_unit,
)
from deploy.nodes import expand_nodes
from deploy.secrets import Secret
from deploy.sizing import engine_budgets, engines_of, lmcache_per_rank
from deploy.spec import PodSpec, RoceQos
from deploy.wording import name_list

KV_TRANSFER_CONFIG = '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'
# LMCache 0.5.6 reports usage to an outside endpoint unless this variable is exactly "false"
# (lmcache.usage_telemetry.identity.is_usage_tracking_enabled). It is an environment variable in both
# config modes: it is not a setting of LMCache's configuration.
USAGE_TRACKING_OFF = {"LMCACHE_TRACK_USAGE": "false"}
# huggingface_hub reads HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) and transformers TRANSFORMERS_OFFLINE
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SshPlan(Frozen):
    host: str
    port: int
    user: str
    key: str | None = None
    sudo: bool = False
    known_hosts_file: str | None = None
    strict_host_key_checking: str = "accept-new"


class PortalPlan(Frozen):
    """A target portal as a node sees it."""

    name: str  # "<iom>-<port>"
    iom: str
    address: str
    trsvcid: int
    transport: str


class RoceQosPlan(Frozen):
    """Lossless RoCE as switches and RDMA NICs apply it (``fabric.roce_qos``)."""

    priority: int
    dscp: list[int]
    ecn: bool


class FabricPlan(Frozen):
    interface: str
    rdma: str  # "hardware" | "soft-roce"
    vlan: int
    vlan_interface: str
    address: str
    prefix_length: int
    mtu: int
    gateway: str | None
    routes: list[str]  # subnets reached through the gateway (per-node VLANs)
    switch: str | None
    switch_port: str | None
    socket_buffer_bytes: int
    roce_qos: RoceQosPlan | None = None  # host-side DCB on the NIC (a hardware RDMA NIC can apply it)


class NamespacePlan(Frozen):
    enclosure: str
    drive: int
    subsystem_nqn: str
    nsid: int
    capacity_gb: float
    transport: str
    portals: list[PortalPlan]  # all portals when multipath, else the first
    ctrl_loss_tmo: int
    reconnect_delay: int
    iopolicy: str = "numa"  # the subsystem's multipath I/O policy
    fast_io_fail_tmo: int = -1
    keep_alive_tmo: int = 5
    nr_io_queues: int | None = None  # None: the kernel's default (one per online CPU)
    tos: int | None = None  # the IP type of service of the RDMA connections (lossless DSCP), None: unset


class MountPlan(Frozen):
    path: str
    filesystem: str
    options: list[str]
    label: str
    disk_budget_gb: float  # GiB (2^30 bytes), as LMCache counts: the spec's kvcache.disk_budget_gib


class LmcachePlan(Frozen):
    """One vLLM engine's LMCache, per tensor-parallel rank: LMCache builds one engine per rank, so the engine's
    share of the node's budgets is split by TP.

    ``max_local_cpu_size`` and ``max_local_disk_size`` are GiB, as LMCache reads them (it allocates
    ``size * 1024**3`` bytes per engine).
    """

    chunk_size: int
    local_cpu: bool
    max_local_cpu_size: float
    local_disk: str
    max_local_disk_size: float
    extra: dict
    telemetry: bool = False  # False: the env file turns LMCache's usage reporting off (USAGE_TRACKING_OFF)
    config_mode: str  # "env": everything in the env file; "yaml": LMCACHE_CONFIG_FILE holds it all
    env_file: str
    config_file: str | None

    @field_serializer("extra")
    def _redacted(self, extra: dict) -> dict:
        """A secret is dumped as its display (``<secret:sha256-prefix>``): a dumped plan never holds it, and
        ``kvpod verify`` compares the host's value by that digest."""
        return {key: str(value) if isinstance(value, Secret) else value for key, value in extra.items()}


class InstallPlan(Frozen):
    """vLLM and LMCache into a virtual environment: ``requirements`` pinned, from ``wheelhouse`` when set."""

    venv: str
    python: str
    requirements: list[str]  # ["vllm==0.11.0", "lmcache==0.5.6"]
    wheelhouse: str | None  # on the machine running kvpod
    wheelhouse_dest: str  # where the wheels go on the node
    index_url: str | None


class VllmPlan(Frozen):
    model: str
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    port: int
    user: str
    executable: str
    extra_args: list[str]
    kv_transfer_config: str
    install: InstallPlan | None = None
    weights_cache_dir: str | None = None  # HF_HOME, owned by ``user``
    offline: bool = False
    hf_env: dict = Field(default_factory=dict)  # HF_TOKEN (a secret), HF_HOME, OFFLINE_ENV: in ``hf_env_file``
    hf_env_file: str | None = None  # None: no Hugging Face settings, the file is absent
    health_timeout_s: int = 1800  # seconds a restarted engine has to become healthy (vllm.health_timeout_s)

    @field_serializer("hf_env")
    def _redacted(self, env: dict) -> dict:
        """The token is dumped as its display (``<secret:sha256-prefix>``), as :class:`LmcachePlan` dumps secrets."""
        return {key: str(value) if isinstance(value, Secret) else value for key, value in env.items()}


class EnginePlan(Frozen):
    """One vLLM engine of a node: its own process (its own unit), GPUs, port, LMCache files and disk-tier
    directory. A node of ``gpus = k * tensor_parallel_size`` runs engines 0..k-1."""

    index: int
    unit: str  # kvpod-vllm@<index>.service
    port: int  # vllm.port + index
    gpus: list[int]  # CUDA device indexes: index*tp .. (index+1)*tp-1
    cuda_visible_devices: str  # the same, as the unit's CUDA_VISIBLE_DEVICES ("0,1,2,3")
    health_url: str  # on the node's loopback
    models_url: str
    disk_dir: str  # the LMCache disk tier of this engine: <mount>/lmcache/engine<index>
    cpu_budget_gib: float  # this engine's share of kvcache.cpu_budget_gib (split evenly between the engines)
    disk_budget_gib: float  # this engine's share of kvcache.disk_budget_gib
    lmcache: LmcachePlan  # its files (env_file, config_file), local_disk = disk_dir, per-rank sizes


class NodePlan(Frozen):
    name: str
    ssh: SshPlan
    host_nqn: str
    host_id: str
    gpus: int
    fabric: FabricPlan
    namespace: NamespacePlan
    mount: MountPlan
    vllm: VllmPlan
    engines: list[EnginePlan]

    @property
    def lmcache(self) -> LmcachePlan:
        """Engine 0's LMCache plan. Every engine shares its settings and sizes; only the files and the disk
        directory differ (see ``engines``)."""
        return self.engines[0].lmcache

    @property
    def lmcache_root(self) -> str:
        """The directory holding every engine's disk tier (``<mount>/lmcache``)."""
        return f"{self.mount.path.rstrip('/')}/{LMCACHE_DIR}"

    def engine_units(self) -> list[str]:
        """The units of the node's engines, in index order."""
        return [e.unit for e in self.engines]

    def with_lmcache(self, **update) -> NodePlan:
        """A copy in which every engine's LMCache plan takes ``update`` (a setting the engines share)."""
        engines = [e.model_copy(update={"lmcache": e.lmcache.model_copy(update=update)}) for e in self.engines]
        return self.model_copy(update={"engines": engines})


class TargetPortalPlan(Frozen):
    name: str
    iom: str
    port: str
    port_id: int  # nvmet configfs port number (1-based, stable in spec order, unique per SSH host)
    interface: str | None
    vlan: int
    vlan_interface: str | None
    address: str
    prefix_length: int
    mtu: int
    rdma: str
    transports: list[str]
    trsvcid: int
    switch: str | None
    switch_port: str | None


class SubsystemPlan(Frozen):
    drive: int
    nqn: str
    nsid: int
    ns_uuid: str  # stable namespace identifiers, derived from the NQN: they survive a target reboot
    ns_nguid: str
    capacity_gb: float
    device_path: str | None
    allowed_host_nqn: str | None  # None: a spare drive, admits no host
    node: str | None


class TargetPlan(Frozen):
    name: str
    kind: str
    ssh: SshPlan | None
    management_address: str | None
    file_backed: bool
    portals: list[TargetPortalPlan]
    subsystems: list[SubsystemPlan]
    routes: list[str]
    gateway: str | None


class SwitchVlanPlan(Frozen):
    id: int
    name: str
    svi_address: str | None
    prefix_length: int


class SwitchPortPlan(Frozen):
    port: str
    description: str
    access_vlan: int
    tagged: bool  # the peer sends 802.1Q-tagged frames (a VLAN interface), so the port carries the VLAN tagged
    mtu: int
    peer: str  # "node:<name>" or "enclosure:<name>/<iom>/<port>"


class SwitchPlan(Frozen):
    name: str
    kind: str
    ssh: SshPlan | None
    mtu: int
    bridge: str
    netns: str | None
    roce_qos: bool
    routed: bool
    vlans: list[SwitchVlanPlan]
    ports: list[SwitchPortPlan]
    roce: RoceQosPlan | None = None  # the lossless settings when roce_qos (fabric.roce_qos, else its defaults)


class FabricSummary(Frozen):
    mtu: int
    vlan_mode: str
    storage_vlan: int
    subnet: str
    transport: str
    multipath: bool


class Plan(Frozen):
    pod: str
    fabric: FabricSummary
    nodes: list[NodePlan]
    targets: list[TargetPlan]
    switches: list[SwitchPlan]

    def node(self, name: str) -> NodePlan:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, fixed indentation, trailing newline."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def single_engine_upgraded(data: dict) -> dict:
    """A plan dumped before engines (one ``lmcache`` per node, ``vllm.unit`` and ``vllm.health_url``) in the
    current shape: its one engine as engine 0, named by the unit it ran as (``kvpod-vllm.service``), so a plan
    applied by an earlier kvpod still reads (its drives and nodes decide handovers). Current plans pass as
    they are."""
    for node in data.get("nodes", []):
        if "engines" in node or "lmcache" not in node:
            continue
        lm, vllm = node.pop("lmcache"), node.get("vllm", {})
        unit, health = vllm.pop("unit", "kvpod-vllm.service"), vllm.pop("health_url", "")
        tp, port = int(vllm.get("tensor_parallel_size", 1)), int(vllm.get("port", 8000))
        disk_dir = str(lm.get("local_disk", "")).removeprefix("file://").rstrip("/")
        node["engines"] = [
            {
                "index": 0,
                "unit": unit,
                "port": port,
                "gpus": list(range(tp)),
                "cuda_visible_devices": ",".join(str(g) for g in range(tp)),
                "health_url": health,
                "models_url": health.removesuffix("/health") + "/v1/models",
                "disk_dir": disk_dir,
                "cpu_budget_gib": float(lm.get("max_local_cpu_size", 0)) * tp,
                "disk_budget_gib": float(node.get("mount", {}).get("disk_budget_gb", 0)),
                "lmcache": lm,
            }
        ]
    return data


def limited_nodes(plan: Plan, limit: list[str] | None) -> list[NodePlan]:
    """The nodes ``--limit`` selects (all without one); :class:`InputError` naming the valid ones otherwise."""
    known = {n.name for n in plan.nodes}
    unknown = [n for n in (limit or []) if n not in known]
    if unknown:
        raise InputError(f"--limit: unknown node {', '.join(unknown)} (valid: {name_list(known, at_most=24)})")
    return [n for n in plan.nodes if not limit or n.name in limit]


_NS_IDS = uuid.UUID("2b1f7a4e-6c1d-4f0b-9a59-6b76706f6e73")


def namespace_ids(nqn: str, nsid: int) -> tuple[str, str]:
    """Deterministic (UUID, NGUID) of a namespace, both in UUID notation as nvmet's configfs takes them."""
    return str(uuid.uuid5(_NS_IDS, f"{nqn}#{nsid}#uuid")), str(uuid.uuid5(_NS_IDS, f"{nqn}#{nsid}#nguid"))


def _ssh(s) -> SshPlan | None:
    if s is None:
        return None
    return SshPlan(
        host=s.address,
        port=s.port,
        user=s.user,
        key=s.key,
        sudo=s.sudo,
        known_hosts_file=s.known_hosts_file,
        strict_host_key_checking=s.strict_host_key_checking,
    )


def _lmcache(spec: PodSpec, index: int, disk_dir: str, engines: int) -> LmcachePlan:
    kv = spec.kvcache
    nested = any(isinstance(v, dict | list) for v in kv.lmcache_extra.values())
    cpu, disk = lmcache_per_rank(spec, engines)
    return LmcachePlan(
        chunk_size=kv.chunk_size,
        local_cpu=True,
        max_local_cpu_size=cpu,
        local_disk=f"file://{disk_dir}/",
        max_local_disk_size=disk,
        extra=dict(sorted(kv.lmcache_extra.items())),
        telemetry=kv.lmcache_telemetry,
        config_mode="yaml" if nested else "env",
        env_file=engine_file(index, "env"),
        config_file=engine_file(index, "yaml") if nested else None,
    )


def _engines(spec: PodSpec, gpus: int) -> list[EnginePlan]:
    """The engines of a node of ``gpus`` GPUs: one per ``tensor_parallel_size`` GPUs."""
    tp, port = spec.vllm.tensor_parallel_size, spec.vllm.port
    count = engines_of(spec, gpus)
    cpu, disk = engine_budgets(spec, count)
    root = f"{spec.kvcache.path.rstrip('/')}/{LMCACHE_DIR}"
    engines = []
    for i in range(count):
        devices = list(range(i * tp, (i + 1) * tp))
        disk_dir = f"{root}/{engine_dir_name(i)}"
        engines.append(
            EnginePlan(
                index=i,
                unit=engine_unit(i),
                port=port + i,
                gpus=devices,
                cuda_visible_devices=",".join(str(d) for d in devices),
                health_url=f"http://127.0.0.1:{port + i}/health",
                models_url=f"http://127.0.0.1:{port + i}/v1/models",
                disk_dir=disk_dir,
                cpu_budget_gib=cpu,
                disk_budget_gib=disk,
                lmcache=_lmcache(spec, i, disk_dir, count),
            )
        )
    return engines


def _install(spec: PodSpec) -> InstallPlan | None:
    inst = spec.vllm.install
    if inst is None:
        return None
    lmcache = inst.lmcache_version or spec.kvcache.lmcache_version
    return InstallPlan(
        venv=inst.venv,
        python=inst.python,
        requirements=[f"vllm=={inst.vllm_version}", f"lmcache=={lmcache}"],
        wheelhouse=inst.wheelhouse,
        wheelhouse_dest=WHEELHOUSE_DEST,
        index_url=inst.index_url,
    )


def hf_environment(spec: PodSpec) -> dict:
    """vLLM's Hugging Face environment: the token (a :class:`Secret`), the cache, offline mode."""
    v = spec.vllm
    env: dict = {}
    if v.hf_token_file is not None:
        env["HF_TOKEN"] = v.hf_token_file.secret
    if v.weights_cache_dir:
        env["HF_HOME"] = v.weights_cache_dir
    if v.offline:
        env.update(OFFLINE_ENV)
    return env


def roce_qos_plan(spec: PodSpec) -> RoceQosPlan | None:
    """The pod's lossless RoCE settings: ``fabric.roce_qos``, else its defaults when a switch asks for RoCE QoS;
    None when neither does. Switches and nodes both take it from here."""
    qos = spec.fabric.roce_qos
    if qos is None:
        if not any(sw.roce_qos for sw in spec.switches):
            return None
        qos = RoceQos()
    return RoceQosPlan(priority=qos.priority, dscp=list(qos.dscp), ecn=qos.ecn)


def roce_tos(qos: RoceQosPlan) -> int:
    """The IP type of service byte of the lossless traffic: the first DSCP value, ECN bits left to the NIC."""
    return qos.dscp[0] << 2


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
                        interface=port.interface,
                        vlan=fab.storage_vlan,
                        vlan_interface=f"{port.interface}.{fab.storage_vlan}" if port.interface else None,
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
                    device_path=d.device_path,
                    allowed_host_nqn=host_nqn(spec, node_by_name[holder]) if holder else None,
                    node=holder,
                )
            )
        gateway = str(addressing.storage_svi) if per_node and addressing.storage_svi else None
        targets.append(
            TargetPlan(
                name=enc.name,
                kind=enc.kind,
                ssh=_ssh(enc.management.ssh),
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
                ssh=_ssh(n.ssh),
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
                    install=_install(spec),
                    weights_cache_dir=spec.vllm.weights_cache_dir,
                    offline=spec.vllm.offline,
                    hf_env=hf_env,
                    hf_env_file=VLLM_HF_ENV_FILE if hf_env else None,
                    health_timeout_s=spec.vllm.health_timeout_s,
                ),
                engines=_engines(spec, n.gpus),
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
        switches=_switch_plans(spec, node_plans, targets, addressing),
    )


def _switch_plans(spec: PodSpec, nodes: list[NodePlan], targets: list[TargetPlan], addressing) -> list[SwitchPlan]:
    fab = spec.fabric
    plans = []
    for sw in spec.switches:
        vlans = [
            SwitchVlanPlan(
                id=fab.storage_vlan,
                name=f"{spec.pod.name}-storage",
                svi_address=str(addressing.storage_svi) if sw.routed and addressing.storage_svi else None,
                prefix_length=addressing.storage_subnet.prefixlen,
            )
        ]
        ports: list[SwitchPortPlan] = []
        for t in targets:
            for p in t.portals:
                if p.switch == sw.name and p.switch_port:
                    ports.append(
                        SwitchPortPlan(
                            port=p.switch_port,
                            description=f"{t.name} {p.iom} {p.port}",
                            access_vlan=p.vlan,
                            tagged=p.vlan_interface is not None,
                            mtu=sw.mtu,
                            peer=f"enclosure:{t.name}/{p.iom}/{p.port}",
                        )
                    )
        for n in nodes:
            if n.fabric.switch == sw.name and n.fabric.switch_port:
                ports.append(
                    SwitchPortPlan(
                        port=n.fabric.switch_port,
                        description=f"{n.name} {n.fabric.interface}",
                        access_vlan=n.fabric.vlan,
                        tagged=True,
                        mtu=sw.mtu,
                        peer=f"node:{n.name}",
                    )
                )
                if fab.vlan_mode == "per-node":
                    vlans.append(
                        SwitchVlanPlan(
                            id=n.fabric.vlan,
                            name=f"{spec.pod.name}-{n.name}",
                            svi_address=n.fabric.gateway if sw.routed else None,
                            prefix_length=n.fabric.prefix_length,
                        )
                    )
        plans.append(
            SwitchPlan(
                name=sw.name,
                kind=sw.kind,
                ssh=_ssh(sw.management.ssh),
                mtu=sw.mtu,
                bridge=sw.bridge,
                netns=sw.netns,
                roce_qos=sw.roce_qos,
                routed=sw.routed,
                roce=roce_qos_plan(spec) if sw.roce_qos else None,
                vlans=vlans,
                ports=ports,
            )
        )
    return plans
