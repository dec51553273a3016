"""The inference nodes of the pod spec: one by one, or generated alike from a pattern. Pure."""

from __future__ import annotations

from typing import Literal

from netaddr import IPAddress
from pydantic import Field, ValidationInfo, field_validator, model_validator

from deploy.spec_base import Address, Name, Ssh, Strict, check_name
from deploy.spec_types import IfName, LocalPath, Nqn, SwitchPort, UserName, Uuid, check_pattern, check_switch_port


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
