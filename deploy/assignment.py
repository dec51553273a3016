"""Which drive (NVMe namespace) each node holds, and each drive's subsystem NQN. Pure functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from deploy.spec import Drive, Enclosure, Node, PodSpec

# Host NQNs are derived from the pod and node names so target ACLs can be written before a node exists.
_HOST_NAMESPACE = uuid.UUID("6f1d2a44-4b6e-4c55-9a0e-6b7670646b76")


def host_uuid(pod: str, node: str) -> str:
    return str(uuid.uuid5(_HOST_NAMESPACE, f"{pod}/{node}"))


def host_nqn(spec: PodSpec, node: Node) -> str:
    """The node's host NQN: as given, else the NVMe UUID form derived from pod and node name."""
    return node.host_nqn or f"nqn.2014-08.org.nvmexpress:uuid:{host_uuid(spec.pod.name, node.name)}"


def host_id(spec: PodSpec, node: Node) -> str:
    return node.host_id or host_uuid(spec.pod.name, node.name)


def subsystem_nqn(enclosure: Enclosure, drive: Drive) -> str:
    return drive.nqn or f"{enclosure.nqn_prefix}:{enclosure.name}-drive{drive.slot:02d}"


@dataclass(frozen=True)
class DriveRef:
    enclosure: str
    slot: int

    def __str__(self) -> str:
        return f"{self.enclosure}/{self.slot}"


def all_drives(spec: PodSpec) -> list[tuple[Enclosure, Drive]]:
    """Every drive of the pod, enclosure by enclosure, slot order as written."""
    return [(enc, d) for enc in spec.enclosures for d in enc.drive_list()]


def node_drives(spec: PodSpec, nodes: list[Node]) -> dict[str, DriveRef]:
    """Node name → drive: explicit ``namespace`` if given, else the drive at the node's index.

    The default is positional (node i takes the i-th drive of the pod) so that editing one node's
    namespace never silently moves another node's drive.
    """
    drives = all_drives(spec)
    out: dict[str, DriveRef] = {}
    for i, node in enumerate(nodes):
        if node.namespace is not None:
            out[node.name] = DriveRef(node.namespace.enclosure, node.namespace.drive)
        elif i < len(drives):
            enc, d = drives[i]
            out[node.name] = DriveRef(enc.name, d.slot)
    return out
