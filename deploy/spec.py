"""The pod spec: one YAML file describing a whole pod, as pydantic models.

Only structure and per-field rules live here; rules that relate several parts of the pod (addresses in
subnets, one namespace per node, ...) live in :mod:`deploy.validate`. Nothing here touches a host.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

from netaddr import AddrFormatError, IPAddress, IPNetwork
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

NQN_MAX_BYTES = 223
# NVMe Base Specification, "NVMe Qualified Names": nqn.yyyy-mm.<reverse domain>:<unique string>,
# or the UUID form nqn.2014-08.org.nvmexpress:uuid:<uuid>.
NQN_RE = re.compile(r"^nqn\.(19|20)\d\d-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9-]+)*:.+$")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
# Format specs allowed in name patterns ({n}, {n:02d}, {slot:3}): a width of one digit, nothing else.
PATTERN_SPEC_RE = re.compile(r"0?[0-9]?d?")
# Upper bound of every size in GB (capacities, budgets, GPU memory): 1 PB, far above any drive or node.
MAX_GB = 1_000_000
# Upper bounds of model shape numbers and context length, far above any model (sizing works in floats).
MAX_SHAPE = 1_000_000
MAX_TOKENS = 1_000_000_000
# RFC 1123 host names: dot-separated labels of 1-63 letters, digits and '-', not starting or ending with '-',
# at most 253 characters, the last label not all-numeric (that would be an IPv4 address).
HOST_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
HOST_LABEL_MAX = 63
HOST_NAME_MAX = 253
DOTTED_NUMERIC_RE = re.compile(r"[0-9]+(\.[0-9]+)*")


class Strict(BaseModel):
    """Base for every spec model: unknown keys are errors, values are not coerced silently, numbers are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def check_nqn(value: str) -> str:
    """Return ``value`` when it is a well-formed NVMe Qualified Name, else raise ValueError."""
    if len(value.encode()) > NQN_MAX_BYTES:
        raise ValueError(f"NQN is {len(value.encode())} bytes (at most {NQN_MAX_BYTES})")
    if not NQN_RE.fullmatch(value):
        raise ValueError(
            f"malformed NQN {value!r} (expected nqn.yyyy-mm.reverse-domain:identifier, "
            "e.g. nqn.2024-01.com.example:drive01)"
        )
    return value


def check_name(value: str) -> str:
    """Names become hostnames, unit names and NQN parts: lower-case DNS labels only."""
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name (lower-case letters, digits and '-', 1-63 chars)")
    return value


def ipv4_problem(value: str) -> str | None:
    """Why an all-numeric dotted value (meant as an IPv4 address) is not one; None when it is not of that form."""
    if not DOTTED_NUMERIC_RE.fullmatch(value):
        return None
    octets = value.split(".")
    if len(octets) != 4:
        return f"{len(octets)} part{'s' if len(octets) != 1 else ''} (an IPv4 address has 4: a.b.c.d)"
    for octet in octets:
        digits = octet.lstrip("0") or "0"
        if len(digits) > 3 or int(digits) > 255:
            return f"octet {octet if len(octet) <= 12 else octet[:12] + '...'} is above 255"
    for octet in octets:
        if len(octet) > 1 and octet.startswith("0"):
            return f"octet {octet} has a leading zero (ambiguous: octal or decimal)"
    return None


def check_pattern(value: str, field: str) -> str:
    """A name pattern such as ``gpu{n:02d}``: only ``{field}`` is replaced, optionally padded to at most 9."""
    example = f"{{{field}}} or {{{field}:02d}}"
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a valid pattern: {exc} (use {example}; '{{{{' for a literal brace)"
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name != field or conversion is not None or not PATTERN_SPEC_RE.fullmatch(spec or ""):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{value!r}: {shown[:40]} is not a placeholder kvpod fills in (use {example})")
    return value


def check_address(value: str) -> str:
    """Return a canonical IPv4/IPv6 address string, or raise ValueError."""
    try:
        return str(IPAddress(value))
    except (AddrFormatError, ValueError, TypeError):
        why = ipv4_problem(value)
        if why:
            raise ValueError(f"{value!r} is not a valid IPv4 address: {why}") from None
        raise ValueError(f"{value!r} is not an IP address") from None


def host_name_problem(value: str) -> str | None:
    """Why ``value`` is not a host name under RFC 1123 (None when it is one); one trailing dot is allowed."""
    name = value[:-1] if value.endswith(".") else value
    if not name:
        return "empty host name"
    if len(name) > HOST_NAME_MAX:
        return f"{len(name)} characters (a host name has at most {HOST_NAME_MAX})"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "empty label (two dots in a row, or a leading dot)"
        if len(label) > HOST_LABEL_MAX:
            return f"label {label[:20]!r}... is {len(label)} characters (at most {HOST_LABEL_MAX})"
        if not HOST_LABEL_RE.fullmatch(label):
            if label.startswith("-") or label.endswith("-"):
                return f"label {label!r} starts or ends with '-'"
            return f"label {label!r} has characters other than letters, digits and '-'"
    if labels[-1].isdigit():
        return f"the last label {labels[-1]!r} is all-numeric (a host name ends in a label with a letter)"
    return None


def check_host(value: str) -> str:
    """An SSH or management address: an IP address, or a host name (RFC 1123)."""
    try:
        return str(IPAddress(value))
    except (AddrFormatError, ValueError, TypeError):
        pass
    why = ipv4_problem(value)
    if why:
        raise ValueError(f"{value!r} is not a valid IPv4 address: {why}")
    if ":" in value:
        raise ValueError(f"{value!r} is not a valid IPv6 address (nor a host name: ':' is not allowed)")
    why = host_name_problem(value)
    if why:
        raise ValueError(f"{value!r} is neither an IP address nor a valid host name: {why}")
    return value


Name = Annotated[str, AfterValidator(lambda v: check_name(v))]
Nqn = Annotated[str, AfterValidator(lambda v: check_nqn(v))]
Address = Annotated[str, AfterValidator(lambda v: check_address(v))]
Host = Annotated[str, AfterValidator(lambda v: check_host(v))]
Mtu = Annotated[int, Field(ge=1280, le=9216, description="IP MTU in bytes (1280-9216)")]
VlanId = Annotated[int, Field(ge=1, le=4094, description="802.1Q VLAN ID (1-4094)")]


class Ssh(Strict):
    """How kvpod reaches a host over SSH."""

    address: Host
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    key: str | None = None
    sudo: bool = False
    known_hosts_file: str | None = Field(None, description="default: ~/.ssh/known_hosts")
    strict_host_key_checking: Literal["yes", "accept-new", "no"] = "accept-new"


class PodMeta(Strict):
    name: Name


class VlanRange(Strict):
    start: VlanId
    end: VlanId

    @model_validator(mode="after")
    def _ordered(self) -> VlanRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is below start {self.start} (need start <= end)")
        return self

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class Fabric(Strict):
    """The storage fabric: one Ethernet segment, VLAN-separated."""

    mtu: Mtu = 9000
    vlan_mode: Literal["shared", "per-node"] = "shared"
    storage_vlan: VlanId = 100
    node_vlans: VlanRange | None = Field(None, description="per-node mode: the VLAN IDs nodes draw from, in node order")
    subnet: str = Field("10.78.0.0/24", description="storage subnet: target portals (and nodes when shared)")
    node_subnets: str | None = Field(
        None, description="per-node mode: supernet carved into one small subnet per node VLAN"
    )
    node_prefix_length: int = Field(29, ge=8, le=30, description="per-node mode: prefix of each node subnet")
    transport: Literal["rdma", "tcp"] = "rdma"
    trsvcid: int = Field(4420, ge=1, le=65535)
    multipath: bool = True
    rdma_socket_buffer_bytes: int = Field(134217728, ge=212992, description="rmem/wmem max (brief: 134 MB)")
    ctrl_loss_tmo: int = Field(600, ge=-1, description="seconds to keep a lost controller (-1: forever)")
    reconnect_delay: int = Field(10, ge=1, le=3600)

    @field_validator("subnet", "node_subnets")
    @classmethod
    def _net(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            net = IPNetwork(v)
        except (AddrFormatError, ValueError, TypeError):
            raise ValueError(f"{v!r} is not a subnet in CIDR form (e.g. 10.78.0.0/24)") from None
        if net.ip != net.network:
            raise ValueError(f"{v!r} has host bits set (did you mean {net.cidr}?)")
        return str(net.cidr)

    @model_validator(mode="after")
    def _per_node(self) -> Fabric:
        if self.vlan_mode == "per-node":
            if self.node_vlans is None:
                raise ValueError("vlan_mode per-node needs node_vlans (e.g. {start: 101, end: 124})")
            if self.node_subnets is None:
                raise ValueError("vlan_mode per-node needs node_subnets (e.g. 10.79.0.0/24)")
        return self


class Management(Strict):
    """Out-of-band management of a switch or enclosure."""

    address: Host | None = None
    ssh: Ssh | None = None


class Switch(Strict):
    name: Name
    kind: Literal["cumulus-nvue", "linux-bridge", "none"]
    management: Management = Management()
    mtu: Mtu = 9216
    roce_qos: bool = Field(False, description="cumulus-nvue: apply 'nv set qos roce' (lossless RoCE)")
    routed: bool = Field(False, description="give the storage VLAN(s) an SVI address on this switch")
    bridge: str = Field("br_default", description="bridge name (NVUE domain or Linux bridge)")
    netns: str | None = Field(None, description="linux-bridge: network namespace holding the bridge")


class SwitchAttachment(Strict):
    switch: str
    port: str


class Portal(Strict):
    """One fabric port of an enclosure IOM (a Data24 RapidFlex port, or a Linux target NIC)."""

    name: Name
    address: Address | None = None
    interface: str | None = Field(None, description="linux-nvmet: the target's fabric NIC")
    rdma: Literal["hardware", "soft-roce"] = "hardware"
    switch: str | None = None
    switch_port: str | None = None
    transports: list[Literal["rdma", "tcp"]] = Field(default_factory=lambda: ["rdma"], min_length=1)


class Iom(Strict):
    name: Name
    ports: list[Portal] = Field(min_length=1)


class Drive(Strict):
    """One SSD of the enclosure, exported as one NVMe subsystem with one namespace."""

    slot: int = Field(ge=1, le=64)
    capacity_gb: float = Field(gt=0, le=MAX_GB)
    nqn: Nqn | None = None
    device_path: str | None = Field(None, description="linux-nvmet: block device or file backing it")
    nsid: int = Field(1, ge=1)


class DriveSet(Strict):
    """Compact form: ``count`` identical drives in slots 1..count."""

    count: int = Field(ge=1, le=64)
    capacity_gb: float = Field(gt=0, le=MAX_GB)
    device_path_pattern: str | None = Field(None, description="linux-nvmet: e.g. /srv/nvmet/drive{slot}.img")

    @field_validator("device_path_pattern")
    @classmethod
    def _device_pattern(cls, v: str | None) -> str | None:
        return None if v is None else check_pattern(v, "slot")


def _list_or_set(value: Any) -> str:
    return "[set]" if isinstance(value, dict) else "[list]"


class Enclosure(Strict):
    name: Name
    kind: Literal["data24", "linux-nvmet"]
    management: Management = Management()
    nqn_prefix: str = "nqn.2024-01.io.kvpod"
    ioms: list[Iom] = Field(min_length=1, max_length=2)
    drives: Annotated[
        Annotated[list[Drive], Tag("[list]")] | Annotated[DriveSet, Tag("[set]")],
        Discriminator(_list_or_set),
    ]
    file_backed: bool = Field(False, description="linux-nvmet: create sparse files at device_path")

    @field_validator("nqn_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        check_nqn(v + ":x")
        if ":" in v:
            raise ValueError(f"{v!r}: the prefix is the part before ':' (e.g. nqn.2024-01.com.example)")
        return v

    def drive_list(self) -> list[Drive]:
        """The drives, expanding the compact form."""
        if isinstance(self.drives, DriveSet):
            ds = self.drives
            return [
                Drive(
                    slot=i,
                    capacity_gb=ds.capacity_gb,
                    device_path=ds.device_path_pattern.format(slot=i) if ds.device_path_pattern else None,
                )
                for i in range(1, ds.count + 1)
            ]
        return list(self.drives)


class NamespaceRef(Strict):
    enclosure: str
    drive: int = Field(ge=1)


class Node(Strict):
    name: Name
    ssh: Ssh
    fabric_interface: str = "eth1"
    rdma: Literal["hardware", "soft-roce"] = "hardware"
    fabric_address: Address | None = None
    switch: str | None = None
    switch_port: str | None = None
    gpus: int = Field(4, ge=1, le=16)
    host_nqn: Nqn | None = None
    host_id: str | None = None
    namespace: NamespaceRef | None = None

    @field_validator("fabric_interface")
    @classmethod
    def _ifname(cls, v: str) -> str:
        if not IFNAME_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a Linux interface name (1-15 chars, no spaces or '/')")
        return v


class NodeGenerator(Strict):
    """Compact form of ``nodes``: ``count`` alike nodes, numbered from 1."""

    count: int = Field(ge=1, le=256)
    name: str = Field("node{n:02d}", description="format pattern, {n} is the 1-based node number")
    ssh_address: Address = Field(description="address of node 1")
    ssh_address_step: int = Field(1, ge=0, description="added per node; 0 = same address for all")
    ssh_port: int = Field(22, ge=1, le=65535, description="port of node 1")
    ssh_port_step: int = Field(0, ge=0)
    ssh_user: str = "root"
    ssh_key: str | None = None
    ssh_known_hosts_file: str | None = None
    fabric_interface: str = "eth1"
    rdma: Literal["hardware", "soft-roce"] = "hardware"
    switch: str | None = None
    switch_port: str | None = Field(None, description="format pattern, e.g. swp{n}")
    switch_port_start: int = Field(1, ge=0, description="value of {n} in switch_port for node 1")
    gpus: int = Field(4, ge=1, le=16)

    @field_validator("name")
    @classmethod
    def _pattern(cls, v: str) -> str:
        check_pattern(v, "n")
        try:
            check_name(v.format(n=1))
        except ValueError as exc:
            raise ValueError(f"name pattern {v!r} does not give a valid name for node 1 ({exc})") from None
        return v

    @field_validator("switch_port")
    @classmethod
    def _port_pattern(cls, v: str | None) -> str | None:
        return None if v is None else check_pattern(v, "n")

    @model_validator(mode="after")
    def _addresses_fit(self) -> NodeGenerator:
        first = IPAddress(self.ssh_address)
        last = int(first) + (self.count - 1) * self.ssh_address_step
        if last >= 1 << (32 if first.version == 4 else 128):
            raise ValueError(
                f"ssh_address_step {self.ssh_address_step}: node {self.count} would be past the last "
                f"IPv{first.version} address (use a smaller step or a lower ssh_address)"
            )
        return self


class NodeList(Strict):
    generate: NodeGenerator
    overrides: dict[str, dict] = Field(
        default_factory=dict, description="per generated node name: fields that differ (e.g. namespace)"
    )


class Kvcache(Strict):
    path: str = "/mnt/kvcache"
    filesystem: Literal["ext4"] = "ext4"
    mount_options: list[str] = Field(default_factory=lambda: ["noatime"])
    cpu_budget_gb: float = Field(30, gt=0, le=MAX_GB, description="LMCache host-DRAM tier per node")
    disk_budget_gb: float = Field(100, gt=0, le=MAX_GB, description="LMCache disk tier per node")
    chunk_size: int = Field(256, ge=1)
    lmcache_extra: dict[str, Any] = Field(
        default_factory=dict,
        description="further LMCache settings; nested values need a YAML config file (written automatically)",
    )

    @field_validator("path")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/") or v.rstrip("/") in ("", "/") or not v.isprintable() or " " in v:
            raise ValueError(f"{v!r} is not an absolute mount path other than / (e.g. /mnt/kvcache)")
        return v.rstrip("/")

    @field_validator("mount_options")
    @classmethod
    def _opts(cls, v: list[str]) -> list[str]:
        if "noatime" not in v:
            raise ValueError("mount options must include noatime (the KV tier must not write on reads)")
        return v


class ModelShape(Strict):
    layers: int = Field(ge=1, le=MAX_SHAPE)
    kv_heads: int = Field(ge=1, le=MAX_SHAPE)
    head_dim: int = Field(ge=1, le=MAX_SHAPE)
    dtype_bytes: int = Field(2, ge=1, le=8)
    params_billion: float = Field(gt=0, le=MAX_GB)


class Vllm(Strict):
    model: str = "meta-llama/Llama-3.1-70B-Instruct"
    model_shape: ModelShape | None = None
    tensor_parallel_size: int = Field(4, ge=1, le=16)
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1)
    max_model_len: int = Field(32768, ge=256, le=MAX_TOKENS)
    port: int = Field(8000, ge=1, le=65535)
    user: str = "vllm"
    executable: str = "/usr/local/bin/vllm"
    extra_args: list[str] = Field(default_factory=list)
    gpu_memory_gb: float = Field(80, gt=0, le=MAX_GB, description="memory of one GPU in GB (H100: 80)")
    sessions_per_node: int = Field(16, ge=1, description="validated concurrency per node (brief: 16)")


class PodSpec(Strict):
    pod: PodMeta
    fabric: Fabric = Fabric()
    switches: list[Switch] = Field(default_factory=list)
    enclosures: list[Enclosure] = Field(min_length=1)
    nodes: Annotated[
        Annotated[list[Node], Tag("[list]")] | Annotated[NodeList, Tag("[set]")],
        Discriminator(_list_or_set),
    ]
    kvcache: Kvcache = Kvcache()
    vllm: Vllm = Vllm()
