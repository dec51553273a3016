"""KV cache mount: filesystem and options, mounted by its persistent unit, writable by vLLM, room for the budget."""

from __future__ import annotations

import pytest
from verify_expect import GIB, PERSISTENT_UNIT_STATES, Text, expect, fail
from verify_facts import HostFacts

from deploy.plan import NodePlan

pytestmark = pytest.mark.area("kv_mount")


class TestMount:
    def test_filesystem(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The KV cache path is a mount point of the planned filesystem type."""
        mount = node_facts.mount(node.mount.path)
        expect(f"filesystem at {node.mount.path}", node.mount.filesystem, mount["fstype"] if mount else None)

    def test_mount_option(self, node: NodePlan, mount_option: str, node_facts: HostFacts) -> None:
        """The planned option is in effect on the live mount (findmnt), not only in a unit file."""
        mount = node_facts.mount(node.mount.path)
        options = set(mount["options"].split(",")) if mount else set()
        if mount_option not in options:
            found = Text(",".join(sorted(options)) or "not mounted")
            fail(f"live options of {node.mount.path}", Text(f"to include {mount_option!r}"), found)


class TestMountUnit:
    def test_mount_unit_active(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The systemd mount unit for the path is active: the persistent unit, not a manual mount, holds it."""
        unit = node_facts.mount_unit_name(node.mount.path)
        props = node_facts.unit(unit)
        expect(f"{unit} ActiveState", "active", props.get("ActiveState"))

    def test_mount_unit_persistent(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The mount unit comes back at boot: enabled (or generated from /etc/fstab), as ``systemctl is-enabled``
        would say (its UnitFileState)."""
        unit = node_facts.mount_unit_name(node.mount.path)
        state = node_facts.is_enabled(unit)
        if state not in PERSISTENT_UNIT_STATES:
            fail(f"{unit} UnitFileState", Text(" or ".join(PERSISTENT_UNIT_STATES)), state)


class TestCapacity:
    def test_writable_by_vllm_user(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The vLLM user can write to the mount."""
        ok, why = node_facts.writable_by(node.vllm.user, node.mount.path)
        if not ok:
            fail(f"{node.mount.path} writable by {node.vllm.user}", Text("yes"), Text(why or "no"))

    def test_room_for_disk_budget(self, node: NodePlan, node_facts: HostFacts) -> None:
        """Free space plus what LMCache already stores there covers the node's disk budget (GiB, as LMCache counts).

        LMCache's own files count as room: a warm cache fills the disk tier by design.
        """
        space = node_facts.space(node.mount.path, node.lmcache_root)
        room = space.get("avail", 0) + space.get("cache", 0)
        budget = node.mount.disk_budget_gb * GIB
        if room < budget:
            fail(
                f"room on {node.mount.path} (free + LMCache's files)",
                Text(f">= {node.mount.disk_budget_gb:g} GiB"),
                Text(f"{room / GIB:.3f} GiB ({space.get('avail', 0) / GIB:.3f} GiB free)"),
            )
