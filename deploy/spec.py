"""The pod spec: one YAML file describing a whole pod, as pydantic models.

Only structure and per-field rules live here; rules that relate several parts of the pod (addresses in
subnets, one namespace per node, ...) live in :mod:`deploy.validate`. Nothing here touches a host.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from netaddr import AddrFormatError, IPAddress, IPNetwork
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from deploy.compat import default_pair
from deploy.lmcache_keys import DEFAULT_VERSION as LMCACHE_VERSION
from deploy.secrets import SecretFile, classify

# IFNAME_RE, NQN_MAX_BYTES, NQN_RE, PATTERN_SPEC_RE, check_nqn and check_pattern were defined here: re-exported.
from deploy.spec_types import (
    CONTROL_RE,
    AbsPath,
    CachePath,
    DevicePath,
    DevicePattern,
    ExtraArg,
    IfName,
    IndexUrl,
    LocalPath,
    ModelId,
    MountOption,
    NetnsName,
    Nqn,
    NqnPrefix,
    PipVersion,
    PlacePath,
    SecretFilePath,
    ServiceUser,
    SwitchPort,
    Text,
    UserName,
    Uuid,
    check_pattern,
    check_switch_port,
    control_in,
    plain_data_problem,
    subnet_problem,
)
from deploy.spec_types import IFNAME_RE as IFNAME_RE
from deploy.spec_types import NQN_MAX_BYTES as NQN_MAX_BYTES
from deploy.spec_types import NQN_RE as NQN_RE
from deploy.spec_types import PATTERN_SPEC_RE as PATTERN_SPEC_RE
from deploy.spec_types import check_nqn as check_nqn

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
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
PRIVILEGED_PORTS = 1024  # ports below need root (CAP_NET_BIND_SERVICE)


class Strict(BaseModel):
    """Base for every spec model: unknown keys are errors, values are not coerced silently, numbers are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """One rule for every string of the spec, in lists and mappings too: no control characters (no spec
        value is multi-line). Typed fields say so first, with the exact item; this catches every other one."""
        if isinstance(value, str):
            if CONTROL_RE.search(value) is None:  # the common case, cheaply: validation runs per field
                return value
        elif not isinstance(value, list | tuple | dict):
            return value
        why = control_in(value)
        if why:
            raise ValueError(why)
        return value


def earlier_names(data: Any, renamed: dict[str, str]) -> Any:
    """Accept a field under its earlier name (``{earlier: current}``); giving both names is an error."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for earlier, current in renamed.items():
        if earlier in out:
            if current in out:
                raise ValueError(f"{earlier} is the earlier name of {current}: give only {current}")
            out[current] = out.pop(earlier)
    return out


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


# The JSON Schema (``kvpod schema``) carries the name and NQN patterns for editors; the validators above
# remain the rule and give the messages.
Name = Annotated[str, AfterValidator(lambda v: check_name(v)), Field(json_schema_extra={"pattern": NAME_RE.pattern})]
Address = Annotated[str, AfterValidator(lambda v: check_address(v))]
Host = Annotated[str, AfterValidator(lambda v: check_host(v))]
Mtu = Annotated[int, Field(ge=1280, le=9216, description="IP MTU in bytes (1280-9216)")]
VlanId = Annotated[int, Field(ge=1, le=4094, description="802.1Q VLAN ID (1-4094)")]


class Ssh(Strict):
    """How kvpod reaches a host over SSH."""

    address: Host = Field(description="IP address or host name")
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    user: UserName = Field("root", description="login user (a portable user name)")
    key: LocalPath | None = Field(
        None, description="private key file on this machine, ~/ for your home (default: the SSH agent and default keys)"
    )
    sudo: bool = Field(False, description="run commands through sudo (a non-root user)")
    known_hosts_file: LocalPath | None = Field(None, description="file on this machine (default: ~/.ssh/known_hosts)")
    strict_host_key_checking: Literal["yes", "accept-new", "no"] = Field(
        "accept-new", description="OpenSSH StrictHostKeyChecking"
    )


class PodMeta(Strict):
    """The pod's identity."""

    name: Name = Field(description="pod name (lower-case DNS label); derived host NQNs and VLAN names use it")


class VlanRange(Strict):
    """An inclusive range of VLAN IDs."""

    start: VlanId = Field(description="first VLAN ID")
    end: VlanId = Field(description="last VLAN ID (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> VlanRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is below start {self.start} (need start <= end)")
        return self

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class RoceQos(Strict):
    """Lossless RoCE: one priority for PFC, the DSCP values mapped to it, and ECN marking. The switches' NVUE
    profile and the nodes' RDMA NICs both take their values from here."""

    priority: int = Field(3, ge=0, le=7, description="the lossless 802.1p priority with PFC on (0-7)")
    dscp: list[int] = Field(
        default_factory=lambda: [26], min_length=1, description="DSCP values mapped to that priority (0-63)"
    )
    ecn: bool = Field(True, description="ECN marking (congestion notification) on the lossless priority")

    @field_validator("dscp")
    @classmethod
    def _dscp(cls, v: list[int]) -> list[int]:
        bad = [d for d in v if not 0 <= d <= 63]
        if bad:
            raise ValueError(f"{bad[0]} is not a DSCP value (0-63)")
        if len(set(v)) != len(v):
            raise ValueError(f"{v} repeats a value (each DSCP value once)")
        return v


class Fabric(Strict):
    """The storage fabric: one Ethernet segment, VLAN-separated."""

    mtu: Mtu = Field(9000, description="IP MTU of node and portal fabric interfaces (1280-9216)")
    vlan_mode: Literal["shared", "per-node"] = Field(
        "shared",
        description="shared: one storage VLAN for all; per-node: a VLAN and subnet per node, routed by the switch",
    )
    storage_vlan: VlanId = Field(100, description="VLAN of the target portals (and of every node when shared)")
    node_vlans: VlanRange | None = Field(None, description="per-node mode: the VLAN IDs nodes draw from, in node order")
    subnet: str = Field("10.78.0.0/24", description="storage subnet: target portals (and nodes when shared)")
    node_subnets: str | None = Field(
        None, description="per-node mode: supernet carved into one small subnet per node VLAN"
    )
    node_prefix_length: int = Field(29, ge=8, le=30, description="per-node mode: prefix of each node subnet")
    transport: Literal["rdma", "tcp"] = Field("rdma", description="NVMe-oF transport")
    trsvcid: int = Field(4420, ge=1, le=65535, description="NVMe-oF service port of the portals")
    multipath: bool = Field(True, description="connect through every IOM's portal (native NVMe multipath)")
    rdma_socket_buffer_bytes: int = Field(
        134217728, ge=212992, description="net.core rmem_max/wmem_max on nodes (reference: 134 MB)"
    )
    ctrl_loss_tmo: int = Field(600, ge=-1, description="seconds to keep a lost controller (-1: forever)")
    reconnect_delay: int = Field(10, ge=1, le=3600, description="seconds between reconnect attempts")
    iopolicy: Literal["numa", "round-robin", "queue-depth"] = Field(
        "queue-depth",
        description="native multipath I/O policy of the subsystem (queue-depth needs Linux 6.11 or later)",
    )
    fast_io_fail_tmo: int = Field(
        -1, ge=-1, le=3600, description="seconds a reconnecting path holds I/O before failing it (-1: never)"
    )
    keep_alive_tmo: int = Field(5, ge=1, le=120, description="keep-alive timeout in seconds (loss detection)")
    nr_io_queues: int | None = Field(
        None, ge=1, le=1024, description="I/O queues per controller (default: one per online CPU)"
    )
    roce_qos: RoceQos | None = Field(
        None, description="lossless RoCE: priority, DSCP and ECN for switches with roce_qos and RDMA NICs"
    )

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
        why = subnet_problem(str(net.cidr))
        if why:
            raise ValueError(f"{v}: {why}")
        return str(net.cidr)

    @model_validator(mode="after")
    def _timeouts(self) -> Fabric:
        """The kernel ignores a fast_io_fail_tmo not below ctrl_loss_tmo, and retries a lost controller
        ceil(ctrl_loss_tmo / reconnect_delay) times: a delay longer than the loss timeout leaves one retry."""
        loss = self.ctrl_loss_tmo
        if loss >= 0 and self.fast_io_fail_tmo >= 0 and self.fast_io_fail_tmo >= loss:
            raise ValueError(
                f"fast_io_fail_tmo: {self.fast_io_fail_tmo} is not below ctrl_loss_tmo {loss} "
                f"(use -1 or 0-{max(loss - 1, 0)}, or raise ctrl_loss_tmo)"
                if loss > 0
                else f"fast_io_fail_tmo: {self.fast_io_fail_tmo} with ctrl_loss_tmo 0 (use -1)"
            )
        if loss > 0 and self.reconnect_delay > loss:
            raise ValueError(
                f"reconnect_delay: {self.reconnect_delay} is above ctrl_loss_tmo {loss} "
                f"(use 1-{loss}, or raise ctrl_loss_tmo, or ctrl_loss_tmo -1)"
            )
        return self

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

    address: Host | None = Field(None, description="management address (shown on the target sheet)")
    ssh: Ssh | None = Field(None, description="SSH access, for hosts kvpod configures")


class Switch(Strict):
    """A switch of the fabric segment."""

    name: Name = Field(description="switch name")
    kind: Literal["cumulus-nvue", "linux-bridge", "none"] = Field(
        description="cumulus-nvue: NVUE over SSH; linux-bridge: a Linux bridge; none: not configured by kvpod"
    )
    management: Management = Field(Management(), description="how kvpod reaches the switch")
    mtu: Mtu = Field(9216, description="port MTU; at least fabric.mtu + 4 (the VLAN tag)")
    roce_qos: bool = Field(
        False, description="cumulus-nvue: apply lossless RoCE ('nv set qos roce', with fabric.roce_qos's values)"
    )
    routed: bool = Field(False, description="give the storage VLAN(s) an SVI address on this switch")
    bridge: IfName = Field("br_default", description="bridge name (NVUE domain or Linux bridge)")
    netns: NetnsName | None = Field(None, description="linux-bridge: network namespace holding the bridge")


class SwitchAttachment(Strict):
    switch: Text
    port: SwitchPort


class Portal(Strict):
    """One fabric port of an enclosure IOM (a Data24 RapidFlex port, or a Linux target NIC)."""

    name: Name = Field(description="port name, unique within its IOM")
    address: Address | None = Field(None, description="fabric address (default: assigned from fabric.subnet)")
    interface: IfName | None = Field(None, description="linux-nvmet: the target's fabric NIC")
    rdma: Literal["hardware", "soft-roce"] = Field("hardware", description="RDMA NIC, or soft-RoCE on a plain NIC")
    switch: str | None = Field(None, description="the switch this port is cabled to")
    switch_port: SwitchPort | None = Field(None, description="the port on that switch (e.g. swp1, Ethernet1/1)")
    transports: list[Literal["rdma", "tcp"]] = Field(
        default_factory=lambda: ["rdma"], min_length=1, description="transports this port serves"
    )


class Iom(Strict):
    """An I/O module of the enclosure and its fabric ports."""

    name: Name = Field(description="IOM name")
    ports: list[Portal] = Field(min_length=1, description="fabric ports of this IOM")


class Drive(Strict):
    """One SSD of the enclosure, exported as one NVMe subsystem with one namespace."""

    slot: int = Field(ge=1, le=64, description="slot number")
    capacity_gb: float = Field(
        gt=0, le=MAX_GB, description="drive capacity in decimal GB (10^9 bytes), as drives are sold"
    )
    nqn: Nqn | None = Field(None, description="subsystem NQN (default: <nqn_prefix>:<enclosure>-driveNN)")
    device_path: DevicePath | None = Field(
        None, description="linux-nvmet: block device under /dev, or file backing it (absolute, normalised)"
    )
    nsid: int = Field(1, ge=1, description="namespace ID within the subsystem")


class DriveSet(Strict):
    """Compact form: ``count`` identical drives in slots 1..count."""

    count: int = Field(ge=1, le=64, description="number of drives, in slots 1..count")
    capacity_gb: float = Field(
        gt=0, le=MAX_GB, description="capacity of each drive in decimal GB (10^9 bytes), as drives are sold"
    )
    device_path_pattern: DevicePattern | None = Field(
        None, description="linux-nvmet: with {slot}, e.g. /srv/nvmet/drive{slot}.img"
    )


def _list_or_set(value: Any) -> str:
    return "[set]" if isinstance(value, dict) else "[list]"


class Enclosure(Strict):
    """An NVMe-oF enclosure: an OpenFlex Data24, or a Linux host running the nvmet target."""

    name: Name = Field(description="enclosure name")
    kind: Literal["data24", "linux-nvmet"] = Field(
        description="data24: configured by hand from `kvpod target sheet`; linux-nvmet: configured over SSH"
    )
    management: Management = Field(Management(), description="a Data24's management address, a Linux target's SSH")
    nqn_prefix: NqnPrefix = Field("nqn.2024-01.io.kvpod", description="drive NQNs are <nqn_prefix>:<enclosure>-driveNN")
    ioms: list[Iom] = Field(min_length=1, max_length=2, description="one or two I/O modules")
    drives: Annotated[
        Annotated[list[Drive], Tag("[list]")] | Annotated[DriveSet, Tag("[set]")],
        Discriminator(_list_or_set),
    ] = Field(description="a list of drives, or {count, capacity_gb} for identical drives in slots 1..count")
    file_backed: bool = Field(False, description="linux-nvmet: create sparse files at device_path")

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
    """A drive of an enclosure."""

    enclosure: str = Field(description="enclosure name")
    drive: int = Field(ge=1, description="slot number")


# No default: a guessed NIC (eth1) would put the storage VLAN, its address and MTU 9000 on whatever that is.
FABRIC_INTERFACE = "the NIC on the storage fabric, e.g. ens1f0np0 (no default: `ip -br link` on the node lists them)"


class Node(Strict):
    """An inference node."""

    name: Name = Field(description="node name (lower-case DNS label)")
    ssh: Ssh = Field(description="how kvpod reaches the node")
    fabric_interface: IfName = Field(description=FABRIC_INTERFACE)
    rdma: Literal["hardware", "soft-roce"] = Field("hardware", description="RDMA NIC, or soft-RoCE on a plain NIC")
    fabric_address: Address | None = Field(None, description="storage address (default: assigned after the portals)")
    switch: str | None = Field(None, description="the switch the fabric NIC is cabled to")
    switch_port: SwitchPort | None = Field(None, description="the port on that switch (e.g. swp1)")
    gpus: int = Field(4, ge=1, le=16, description="GPUs (a multiple of vllm.tensor_parallel_size)")
    host_nqn: Nqn | None = Field(None, description="NVMe host NQN (default: derived from pod and node names)")
    host_id: Uuid | None = Field(None, description="NVMe host ID, a UUID (default: derived from pod and node names)")
    namespace: NamespaceRef | None = Field(None, description="its drive (default: node i takes the i-th drive)")


class NodeGenerator(Strict):
    """Compact form of ``nodes``: ``count`` alike nodes, numbered from 1."""

    count: int = Field(ge=1, le=1024, description="number of nodes")
    name: str = Field("node{n:02d}", description="format pattern, {n} is the 1-based node number")
    ssh_address: Address = Field(description="SSH address of node 1")
    ssh_address_step: int = Field(1, ge=0, description="added per node; 0 = same address for all")
    ssh_port: int = Field(22, ge=1, le=65535, description="SSH port of node 1")
    ssh_port_step: int = Field(0, ge=0, description="added per node")
    ssh_user: UserName = Field("root", description="login user (a portable user name)")
    ssh_key: LocalPath | None = Field(None, description="private key file on this machine")
    ssh_known_hosts_file: LocalPath | None = Field(None, description="default: ~/.ssh/known_hosts")
    fabric_interface: IfName = Field(description=FABRIC_INTERFACE)
    rdma: Literal["hardware", "soft-roce"] = Field("hardware", description="RDMA NIC, or soft-RoCE on a plain NIC")
    switch: str | None = Field(None, description="the switch every node is cabled to")
    switch_port_start: int = Field(1, ge=0, description="value of {n} in switch_port for node 1")
    switch_port: str | None = Field(None, description="format pattern, e.g. swp{n}")
    gpus: int = Field(4, ge=1, le=16, description="GPUs per node")

    @field_validator("name")
    @classmethod
    def _pattern(cls, v: str, info: ValidationInfo) -> str:
        check_pattern(v, "n")
        for n in range(1, info.data.get("count", 1) + 1):
            try:
                check_name(v.format(n=n))
            except ValueError as exc:
                raise ValueError(f"name pattern {v!r} does not give a valid name for node {n} ({exc})") from None
        return v

    @field_validator("switch_port")
    @classmethod
    def _port_pattern(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        check_pattern(v, "n")
        start = info.data.get("switch_port_start", 1)
        for n in range(info.data.get("count", 1)):
            try:
                check_switch_port(v.format(n=start + n))
            except ValueError as exc:
                raise ValueError(f"pattern gives a bad port for node {n + 1}: {exc}") from None
        return v

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
    """Nodes in compact form: a generator and per-node overrides."""

    generate: NodeGenerator = Field(description="count alike nodes")
    overrides: dict[str, dict] = Field(
        default_factory=dict, description="per generated node name: fields that differ (e.g. namespace)"
    )


class Kvcache(Strict):
    """The KV-cache mount and LMCache's tiers. Sizes are GiB (2^30 bytes): LMCache multiplies its
    ``max_local_cpu_size`` and ``max_local_disk_size`` by 1024**3, so a budget here is what it allocates."""

    path: PlacePath = Field(
        "/mnt/kvcache", description="mount point of the node's drive (not a system directory, not inside one)"
    )
    filesystem: Literal["ext4"] = Field("ext4", description="created only on a blank drive")
    mount_options: list[MountOption] = Field(default_factory=lambda: ["noatime"], description="must include noatime")
    cpu_budget_gib: float = Field(
        30,
        gt=0,
        le=MAX_GB,
        description="LMCache host-DRAM tier per node, in GiB (earlier name: cpu_budget_gb, same unit)",
    )
    disk_budget_gib: float = Field(
        100, gt=0, le=MAX_GB, description="LMCache disk tier per node, in GiB (earlier name: disk_budget_gb, same unit)"
    )
    chunk_size: int = Field(256, ge=1, description="LMCache chunk size in tokens")
    lmcache_version: PipVersion = Field(
        LMCACHE_VERSION, description="the LMCache version the nodes run (lmcache_extra is checked against it)"
    )
    lmcache_telemetry: bool = Field(
        False,
        description="let LMCache report usage to its outside endpoint (off: LMCACHE_TRACK_USAGE=false)",
    )
    lmcache_extra: dict[str, Any] = Field(
        default_factory=dict,
        description="further LMCache settings by their LMCache names; nested values (extra_config, lists) go "
        "to a YAML config file (written automatically); a value may be {from_file: PATH}, a secret read from a "
        "file on the machine running kvpod (mode 0600 or 0400)",
    )

    @field_validator("lmcache_extra")
    @classmethod
    def _secrets(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Credentials (by key name, or a URL with a password) are carried as redacted secrets."""
        return {key: classify(key, value) for key, value in v.items()}

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, data: Any) -> Any:
        return earlier_names(data, {"cpu_budget_gb": "cpu_budget_gib", "disk_budget_gb": "disk_budget_gib"})

    @field_validator("lmcache_extra")
    @classmethod
    def _plain_data(cls, v: dict[str, Any]) -> dict[str, Any]:
        why = plain_data_problem(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("mount_options")
    @classmethod
    def _opts(cls, v: list[str]) -> list[str]:
        if "noatime" not in v:
            raise ValueError("mount options must include noatime (the KV tier must not write on reads)")
        return v


class ModelShape(Strict):
    """What sizing needs of a model. ``kv_layout: mla`` (multi-head latent attention, DeepSeek-V2/V3 class)
    caches one latent vector per token and layer instead of K and V per head: give ``kv_heads: 1`` and the
    latent width as ``head_dim`` (kv_lora_rank + qk_rope_head_dim: 512 + 64 = 576 for DeepSeek-V3)."""

    layers: int = Field(ge=1, le=MAX_SHAPE, description="transformer layers")
    kv_heads: int = Field(ge=1, le=MAX_SHAPE, description="key/value heads (1 for mla)")
    head_dim: int = Field(ge=1, le=MAX_SHAPE, description="dimension of one head (mla: the latent width)")
    dtype_bytes: int = Field(2, ge=1, le=8, description="bytes per KV element (fp16: 2)")
    params_billion: float = Field(gt=0, le=MAX_GB, description="parameters in billions (the weights' memory)")
    kv_layout: Literal["gqa", "mla"] = Field(
        "gqa",
        description="gqa: K and V per KV head (MHA, GQA), split over tensor-parallel ranks; "
        "mla: one latent per token, the same on every rank (LMCache stores it on rank 0 only)",
    )

    @model_validator(mode="after")
    def _latent(self) -> ModelShape:
        if self.kv_layout == "mla" and self.kv_heads != 1:
            raise ValueError(
                f"kv_layout mla caches one latent per token and layer: kv_heads must be 1, not {self.kv_heads} "
                "(give the latent width as head_dim, e.g. 576 for DeepSeek-V3)"
            )
        return self


class VllmInstall(Strict):
    """vLLM and LMCache installed with pip into a virtual environment on every node (optional)."""

    venv: PlacePath = Field(
        "/opt/kvpod/vllm", description="path of the virtual environment on the node (not a system directory)"
    )
    vllm_version: PipVersion = Field(
        default_pair()[0],
        description="the vllm version to install (pinned, PEP 440; the default is proven to work with the default "
        "kvcache.lmcache_version: deploy/compat/table.toml)",
    )
    lmcache_version: PipVersion | None = Field(
        None, description="the lmcache version to install (default: kvcache.lmcache_version)"
    )
    wheelhouse: LocalPath | None = Field(
        None,
        description="a directory of wheels on the machine running kvpod, pushed to the nodes and installed "
        "from without an index (air-gapped pods)",
    )
    index_url: IndexUrl | None = Field(None, description="the package index to install from, http(s) (default: pip's)")
    python: AbsPath = Field("/usr/bin/python3", description="the interpreter the environment is made with")


class Vllm(Strict):
    """The vLLM server of every node."""

    model: ModelId = Field(
        "meta-llama/Llama-3.1-70B-Instruct",
        description="Hugging Face hub id (org/name), or an absolute path on the node",
    )
    model_shape: ModelShape | None = Field(None, description="for sizing (default: known Llama models)")
    tensor_parallel_size: int = Field(4, ge=1, le=16, description="GPUs per vLLM instance")
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1, description="share of GPU memory vLLM may use")
    max_model_len: int = Field(32768, ge=256, le=MAX_TOKENS, description="context length in tokens")
    port: int = Field(
        8000, ge=1, le=65535, description="HTTP port of the server (1024-65535: vLLM does not run as root)"
    )
    user: ServiceUser = Field("vllm", description="system user running vLLM (a portable user name, not root)")
    executable: AbsPath = Field("/usr/local/bin/vllm", description="path of the vllm executable")
    extra_args: list[ExtraArg] = Field(
        default_factory=list,
        description="further command-line arguments, one word each (not the options kvpod sets itself)",
    )
    install: VllmInstall | None = Field(
        None, description="install vLLM and LMCache into a virtual environment; the unit runs its vllm"
    )
    gpu_memory_gib: float = Field(
        80, gt=0, le=MAX_GB, description="memory of one GPU in GiB (H100: 80; earlier name: gpu_memory_gb)"
    )
    sessions_per_node: int = Field(16, ge=1, description="validated concurrency per node (reference: 16)")
    hf_token_file: SecretFilePath | None = Field(
        None,
        description="a file on the machine running kvpod holding the Hugging Face token (one line, mode 0600 or "
        "0400; ~/ for your home, relative to the spec's directory); written to every node as HF_TOKEN in "
        "/etc/kvpod/vllm-hf.env, 0640 root:<vllm.user>; plans, diffs, reports and logs show it redacted",
    )
    weights_cache_dir: CachePath | None = Field(
        None,
        description="the Hugging Face cache on the node (HF_HOME), owned by vllm.user: vLLM downloads the weights "
        "there, or finds them staged in <dir>/hub/models--ORG--NAME/ (default: ~/.cache/huggingface of vllm.user); "
        "not on the KV-cache mount",
    )
    offline: bool = Field(
        False,
        description="never contact the hub (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1): the weights must be on the "
        "node, at the local path vllm.model or staged in weights_cache_dir",
    )
    health_timeout_s: int = Field(
        1800,
        ge=10,
        le=86400,
        description="seconds a restarted engine has to answer GET /health and list its model before the rollout "
        "stops (10-86400; 1800: a 70B model's ~140 GB of bf16 weights read from local NVMe at a cautious "
        "0.5 GB/s take ~5 min, plus compilation and CUDA graph capture on a cold cache; not a hub download)",
    )

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, data: Any) -> Any:
        return earlier_names(data, {"gpu_memory_gb": "gpu_memory_gib"})

    @model_validator(mode="after")
    def _token_read(self) -> Vllm:
        """The token is read by the loader (deploy.loader), which hands the path over with the secret."""
        if self.hf_token_file is not None and not isinstance(self.hf_token_file, SecretFile):
            raise ValueError(
                f"hf_token_file {self.hf_token_file}: the file was not read (load the spec with deploy.loader)"
            )
        return self

    @field_validator("port")
    @classmethod
    def _unprivileged(cls, v: int) -> int:
        if v < PRIVILEGED_PORTS:
            raise ValueError(
                f"port {v} is privileged (below {PRIVILEGED_PORTS}) and vLLM runs as vllm.user, never root "
                "(use 1024-65535, e.g. 8000)"
            )
        return v


class PodSpec(Strict):
    """A kvpod pod spec: one GPU inference pod whose LMCache disk tier is on a shared NVMe-oF enclosure."""

    pod: PodMeta = Field(description="the pod's name")
    fabric: Fabric = Field(Fabric(), description="the storage fabric: MTU, VLANs, subnets, transport")
    switches: list[Switch] = Field(default_factory=list, description="switches of the fabric segment")
    enclosures: list[Enclosure] = Field(min_length=1, description="NVMe-oF enclosures holding the drives")
    nodes: Annotated[
        Annotated[list[Node], Tag("[list]")] | Annotated[NodeList, Tag("[set]")],
        Discriminator(_list_or_set),
    ] = Field(description="a list of nodes, or {generate, overrides}")
    kvcache: Kvcache = Field(Kvcache(), description="the KV-cache mount and LMCache budgets")
    vllm: Vllm = Field(Vllm(), description="the vLLM server")
