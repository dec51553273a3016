"""Namespace mapping: the mounted device is the node's planned namespace, and each subsystem has one node."""

from __future__ import annotations

import pytest
from verify_expect import DISCOVERY_NQN, Text, expect, fail
from verify_facts import HostFacts

from deploy.plan import NodePlan, Plan

pytestmark = pytest.mark.area("namespace")


def fabric_subsystems(facts: HostFacts) -> set[str]:
    """NQNs of the NVMe-oF subsystems a host has controllers to (local PCIe drives and discovery left out)."""
    return {c.subsysnqn for c in facts.controllers() if c.fabric and c.subsysnqn != DISCOVERY_NQN}


class TestMountedNamespace:
    def test_mounted_subsystem(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The device mounted at the KV cache path belongs to the planned subsystem.

        Resolved through sysfs (the device's nvme-subsysN, or its controller, and its ``subsysnqn``), never
        by the position of /dev/nvmeXnY, which changes with connection order.
        """
        info = node_facts.mounted_namespace(node.mount.path)
        if info.get("mounted") != "yes":
            fail(f"device mounted at {node.mount.path}", Text(node.namespace.subsystem_nqn), Text("nothing mounted"))
        found = info.get("subsysnqn") or Text(f"{info.get('device')} (not an NVMe namespace)")
        expect(f"subsystem of {info.get('device')} at {node.mount.path}", node.namespace.subsystem_nqn, found)

    def test_mounted_namespace_id(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The mounted device is the planned namespace (NSID) of that subsystem."""
        info = node_facts.mounted_namespace(node.mount.path)
        expect(f"NSID of {info.get('device') or node.mount.path}", str(node.namespace.nsid), info.get("nsid") or None)

    def test_no_other_subsystem(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The node is connected to its own subsystem and no other."""
        expect("NVMe-oF subsystems connected", {node.namespace.subsystem_nqn}, fabric_subsystems(node_facts))


class TestPodMapping:
    def test_subsystem_on_one_node(self, pod: Plan, pod_facts: dict[str, HostFacts]) -> None:
        """Across the pod, no subsystem is connected on two nodes (gathered from every node of the plan)."""
        holders: dict[str, list[str]] = {}
        for name, facts in pod_facts.items():
            for nqn in fabric_subsystems(facts):  # raises HostUnreachable for a node that cannot be read
                holders.setdefault(nqn, []).append(name)
        shared = {nqn: names for nqn, names in holders.items() if len(names) > 1}
        if shared:
            found = "; ".join(f"{nqn} on {', '.join(sorted(names))}" for nqn, names in sorted(shared.items()))
            fail("nodes per subsystem", Text("one"), Text(found))
