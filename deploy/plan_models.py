"""The plan's models: the desired state of every host, as :func:`deploy.plan.build_plan` computes it.

Frozen pydantic models, dumped as canonical JSON (``Plan.to_json``); plus what reads a plan back: an older
plan's shape upgraded (:func:`single_engine_upgraded`) and the nodes ``--limit`` selects.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from deploy.errors import InputError
from deploy.names import LMCACHE_DIR
from deploy.secrets import Secret
from deploy.wording import name_list

# LMCache 0.5.6 reports usage to an outside endpoint unless this variable is exactly "false"
# (lmcache.usage_telemetry.identity.is_usage_tracking_enabled). It is an environment variable in both
# config modes: it is not a setting of LMCache's configuration.
USAGE_TRACKING_OFF = {"LMCACHE_TRACK_USAGE": "false"}


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
