"""The storage fabric of the pod spec: MTU, VLANs, subnets, transport and lossless RoCE. Pure."""

from __future__ import annotations

from typing import Literal

from netaddr import AddrFormatError, IPNetwork
from pydantic import Field, field_validator, model_validator

from deploy.spec_base import Mtu, Strict, VlanId
from deploy.spec_types import subnet_problem


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
