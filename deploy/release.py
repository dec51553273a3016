"""The release side of a namespace handover, as pure functions of the plan and the live pod.

Moving a drive between nodes must never leave it mounted on two nodes: the old holder releases it first
(stop vLLM, unmount, disconnect, forget the boot-time connection; :mod:`roles.node_release` does that from a
:class:`ReleaseRequest` in host data ``kvpod_release``), then the target revokes the old host NQN and admits the
new one, then the new holder runs the normal node deploy.

``live_holders`` maps a node name to the NQNs of the NVMe subsystems connected on it now: the keys of
:class:`deploy.facts.nvme.NvmeSubsystems` on that node, filtered with :func:`fabrics_subsystems`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from deploy.names import MAX_ENGINES, VLLM_UNIT, engine_unit
from deploy.plan import Plan

FABRICS_TRANSPORTS = frozenset({"rdma", "tcp", "fc", "loop"})

_PARTITION = re.compile(r"^(nvme\d+n\d+)p\d+$")


ALL_ENGINE_UNITS = tuple(engine_unit(i) for i in range(MAX_ENGINES))  # a node without a plan: whichever it has


@dataclass(frozen=True)
class ReleaseRequest:
    """What one node lets go of (host data ``kvpod_release``).

    - ``keep_subsystem``: the NQN the node keeps (its planned one); None releases every subsystem.
    - ``mount_path``: the KV-cache mount point (its mount unit is ``<escaped path>.mount``).
    - ``vllm_unit``: vLLM's systemd unit of earlier releases, stopped before an unmount.
    - ``engine_units``: the units of vLLM's engines (``kvpod-vllm@<i>.service``), stopped with it when installed.
    - ``purge``: the node leaves the pod: also retire vLLM and remove kvpod's units and files (keeps nothing).
    - ``subsystems``: release only these NQNs (the pod's); None: every NVMe-oF subsystem but ``keep_subsystem``.
      Subsystems with a PCIe controller (local drives) are never released.
    """

    keep_subsystem: str | None
    mount_path: str
    vllm_unit: str = VLLM_UNIT
    purge: bool = False
    subsystems: frozenset[str] | None = None
    engine_units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not posixpath.isabs(self.mount_path) or posixpath.normpath(self.mount_path) == "/":
            raise ValueError(f"mount_path {self.mount_path!r}: expected an absolute path below /")
        object.__setattr__(self, "mount_path", posixpath.normpath(self.mount_path))
        if self.purge and self.keep_subsystem is not None:
            raise ValueError("a purged node keeps nothing: keep_subsystem must be None")
        if self.subsystems is not None and not isinstance(self.subsystems, frozenset):
            object.__setattr__(self, "subsystems", frozenset(self.subsystems))

    def releases(self, nqn: str, entry: Mapping | None = None) -> bool:
        """Whether connected subsystem ``nqn`` (its :class:`NvmeSubsystems` entry when known) is let go of."""
        if nqn == self.keep_subsystem:
            return False
        transports = {c.get("transport") for c in (entry or {}).get("controllers", [])}
        if "pcie" in transports:
            return False
        if self.subsystems is not None:
            return nqn in self.subsystems
        return entry is None or (bool(transports) and transports <= FABRICS_TRANSPORTS)


@dataclass(frozen=True)
class Conflict:
    """A subsystem the plan gives to ``node`` while other nodes (``holders``) are still connected to it."""

    subsystem: str
    node: str
    holders: frozenset[str]


def is_fabrics(entry: Mapping) -> bool:
    """Whether an :class:`NvmeSubsystems` entry is an NVMe-oF subsystem (every controller on a fabric)."""
    transports = {c.get("transport") for c in entry.get("controllers", [])}
    return bool(transports) and transports <= FABRICS_TRANSPORTS


def fabrics_subsystems(subsystems: Mapping[str, Mapping]) -> set[str]:
    """The NVMe-oF subsystem NQNs of an :class:`NvmeSubsystems` fact value (local PCIe drives left out)."""
    return {nqn for nqn, entry in subsystems.items() if is_fabrics(entry)}


def released_subsystems(request: ReleaseRequest, subsystems: Mapping[str, Mapping]) -> dict[str, list[str]]:
    """NQN -> namespace block device names (``nvme1n1``) of each connected subsystem ``request`` lets go of."""
    return {
        nqn: [ns["name"] for ns in entry.get("namespaces", [])]
        for nqn, entry in sorted(subsystems.items())
        if request.releases(nqn, entry)
    }


def namespace_device(name: str) -> str:
    """The namespace block device of a partition (``nvme1n1p2`` -> ``nvme1n1``); other names unchanged."""
    m = _PARTITION.match(name)
    return m.group(1) if m else name


def pod_subsystems(plan: Plan) -> frozenset[str]:
    """Every subsystem NQN of the pod: the targets' drives (spares included) and the nodes' namespaces."""
    return frozenset(
        [s.nqn for t in plan.targets for s in t.subsystems] + [n.namespace.subsystem_nqn for n in plan.nodes]
    )


def holders_by_subsystem(live_holders: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
    """Subsystem NQN -> the nodes connected to it now."""
    out: dict[str, set[str]] = {}
    for node, nqns in live_holders.items():
        for nqn in nqns:
            out.setdefault(nqn, set()).add(node)
    return out


def conflicts(plan: Plan, live_holders: Mapping[str, Collection[str]]) -> list[Conflict]:
    """Subsystems the plan gives to a node while another node is still connected (sorted by NQN).

    Each conflicting holder must release (and the target revoke it) before the planned node connects.
    """
    holders = holders_by_subsystem(live_holders)
    out = []
    for n in plan.nodes:
        nqn = n.namespace.subsystem_nqn
        others = frozenset(holders.get(nqn, set()) - {n.name})
        if others:
            out.append(Conflict(nqn, n.name, others))
    return sorted(out, key=lambda c: c.subsystem)


def admitted_elsewhere(plan: Plan, admitted: Mapping[str, Collection[str]], host_nqns: Mapping[str, str]) -> set[str]:
    """Nodes a target admits now to a pod drive that the plan gives to another node or to none (pure).

    ``admitted``: subsystem NQN -> host NQNs its target admits now; ``host_nqns``: node name -> its host NQN.
    Such a node may still hold the drive, whatever this machine last applied: it must release it first.
    """
    pod = pod_subsystems(plan)
    planned = {n.namespace.subsystem_nqn: n.name for n in plan.nodes}
    node_of = {nqn: name for name, nqn in host_nqns.items()}
    return {
        node_of[host]
        for subsystem, hosts in admitted.items()
        if subsystem in pod
        for host in hosts
        if host in node_of and planned.get(subsystem) != node_of[host]
    }


def release_requests(
    plan: Plan,
    live_holders: Mapping[str, Collection[str]],
    *,
    prune: Collection[str] = (),
    applied: Plan | None = None,
) -> dict[str, ReleaseRequest]:
    """Which nodes must release what: every node connected to a pod subsystem that is not its planned one.

    A node the plan does not know keeps nothing. ``prune`` names nodes leaving the pod (they must not be in the
    plan any more): each gets a purge request whatever it holds. The pod's subsystems are those of ``plan`` and
    of the ``applied`` plan (a drive or enclosure that left the spec is still the pod's to hand back);
    subsystems outside the pod are never released.
    """
    pod = pod_subsystems(plan) | (pod_subsystems(applied) if applied else set())
    planned = {n.name: n for n in plan.nodes}
    still_planned = sorted(set(prune) & set(planned))
    if still_planned:
        raise ValueError(f"pruned node(s) {', '.join(still_planned)} are still in the plan")
    out: dict[str, ReleaseRequest] = {}
    for name in sorted(live_holders):
        if name in prune:
            continue
        node = planned.get(name)
        keep = node.namespace.subsystem_nqn if node else None
        if (set(live_holders[name]) & pod) - {keep}:
            out[name] = ReleaseRequest(
                keep_subsystem=keep,
                mount_path=node.mount.path if node else _pod_mount_path(plan),
                vllm_unit=VLLM_UNIT,
                subsystems=pod,
                engine_units=tuple(node.engine_units()) if node else ALL_ENGINE_UNITS,
            )
    for name in sorted(prune):
        out[name] = ReleaseRequest(
            None, _pod_mount_path(plan), VLLM_UNIT, purge=True, subsystems=pod, engine_units=ALL_ENGINE_UNITS
        )
    return out


def _pod_mount_path(plan: Plan) -> str:
    """The KV-cache mount point (one for the whole pod: ``kvcache.path``)."""
    if not plan.nodes:
        raise ValueError("the plan has no nodes: cannot tell the KV-cache mount point")
    return plan.nodes[0].mount.path
