"""The pod spec: one YAML file describing a whole pod, as pydantic models.

Only structure and per-field rules live here and in the topic modules it gathers (:mod:`deploy.spec_base`,
:mod:`deploy.spec_fabric`, :mod:`deploy.spec_kinds`, :mod:`deploy.spec_nodes`, :mod:`deploy.spec_vllm`); rules
that relate several parts of the pod (addresses in subnets, one namespace per node, ...) live in
:mod:`deploy.validate`. Switch and enclosure kinds come from their driver packages (:func:`deploy.spec_kinds.kinds`).
Nothing here touches a host.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Field, Tag

# Names other modules import from here, defined in the topic modules.
from deploy.spec_base import MAX_GB as MAX_GB
from deploy.spec_base import NAME_RE as NAME_RE
from deploy.spec_base import Address as Address
from deploy.spec_base import Host as Host
from deploy.spec_base import Management as Management
from deploy.spec_base import Mtu as Mtu
from deploy.spec_base import Name as Name
from deploy.spec_base import PodMeta, list_or_set
from deploy.spec_base import Ssh as Ssh
from deploy.spec_base import Strict as Strict
from deploy.spec_base import VlanId as VlanId
from deploy.spec_base import check_address as check_address
from deploy.spec_base import check_host as check_host
from deploy.spec_base import check_name as check_name
from deploy.spec_base import earlier_names as earlier_names
from deploy.spec_fabric import Fabric
from deploy.spec_fabric import RoceQos as RoceQos
from deploy.spec_fabric import VlanRange as VlanRange
from deploy.spec_kinds import SWITCH_FAMILY, TARGET_FAMILY, Enclosure, Switch, kind_union, kinds
from deploy.spec_kinds import Drive as Drive
from deploy.spec_kinds import DriveSet as DriveSet
from deploy.spec_kinds import Iom as Iom
from deploy.spec_kinds import Portal as Portal
from deploy.spec_kinds import SwitchAttachment as SwitchAttachment
from deploy.spec_nodes import FABRIC_INTERFACE as FABRIC_INTERFACE
from deploy.spec_nodes import NamespaceRef as NamespaceRef
from deploy.spec_nodes import Node, NodeList
from deploy.spec_nodes import NodeGenerator as NodeGenerator

# IFNAME_RE, NQN_MAX_BYTES, NQN_RE, PATTERN_SPEC_RE, check_nqn and check_pattern were defined here: re-exported.
from deploy.spec_types import IFNAME_RE as IFNAME_RE
from deploy.spec_types import NQN_MAX_BYTES as NQN_MAX_BYTES
from deploy.spec_types import NQN_RE as NQN_RE
from deploy.spec_types import PATTERN_SPEC_RE as PATTERN_SPEC_RE
from deploy.spec_types import check_nqn as check_nqn
from deploy.spec_types import check_pattern as check_pattern
from deploy.spec_vllm import MAX_SHAPE as MAX_SHAPE
from deploy.spec_vllm import MAX_TOKENS as MAX_TOKENS
from deploy.spec_vllm import PRIVILEGED_PORTS as PRIVILEGED_PORTS
from deploy.spec_vllm import Kvcache, Vllm
from deploy.spec_vllm import ModelShape as ModelShape
from deploy.spec_vllm import VllmInstall as VllmInstall

SWITCH_KINDS = kinds(SWITCH_FAMILY, Switch)
ENCLOSURE_KINDS = kinds(TARGET_FAMILY, Enclosure)
SwitchKind = kind_union(SWITCH_KINDS)
EnclosureKind = kind_union(ENCLOSURE_KINDS)


class PodSpec(Strict):
    """A kvpod pod spec: one GPU inference pod whose LMCache disk tier is on a shared NVMe-oF enclosure."""

    pod: PodMeta = Field(description="the pod's name")
    fabric: Fabric = Field(Fabric(), description="the storage fabric: MTU, VLANs, subnets, transport")
    switches: list[SwitchKind] = Field(default_factory=list, description="switches of the fabric segment")
    enclosures: list[EnclosureKind] = Field(min_length=1, description="NVMe-oF enclosures holding the drives")
    nodes: Annotated[
        Annotated[list[Node], Tag("[list]")] | Annotated[NodeList, Tag("[set]")],
        Discriminator(list_or_set),
    ] = Field(description="a list of nodes, or {generate, overrides}")
    kvcache: Kvcache = Field(Kvcache(), description="the KV-cache mount and LMCache budgets")
    vllm: Vllm = Field(Vllm(), description="the vLLM server")
