"""NVMe initiator: kernel modules, host identity, one live controller per planned portal, the connect unit, the
multipath policy and connect settings read back from sysfs, and the NIC's lossless RoCE settings."""

from __future__ import annotations

from typing import Any

import pytest
from verify_expect import (
    CONNECT_UNIT,
    HOSTID_FILE,
    HOSTNQN_FILE,
    MODULES_LOAD_DIR,
    Text,
    dcb_applicable,
    expect,
    fail,
)
from verify_facts import HostFacts
from verify_parse import Controller

from deploy.nvme_settings import PathSettings, controller_values, queue_count_problem
from deploy.plan import NodePlan, PortalPlan, RoceQosPlan

pytestmark = pytest.mark.area("nvme_initiator")


class TestKernelModules:
    def test_module_loaded(self, node: NodePlan, module: str, node_facts: HostFacts) -> None:
        """The module is loaded (or built into the kernel)."""
        state = node_facts.module_state(module)
        if state not in ("loaded", "builtin"):
            fail(f"module {module}", Text("loaded"), Text(state))

    def test_module_persisted(self, node: NodePlan, module: str, node_facts: HostFacts) -> None:
        """Some file in /etc/modules-load.d lists the module, so it loads at boot (any file name counts)."""
        if node_facts.module_state(module) == "builtin":
            pytest.skip(f"{module} is built into the kernel")
        files = node_facts.modules_load(MODULES_LOAD_DIR).get(module, set())
        if not files:
            fail(f"{module} in {MODULES_LOAD_DIR}/*.conf", Text("listed"), Text("not listed"))


class TestHostIdentity:
    def test_host_nqn(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The host NQN is the planned one: the target admits this node by it."""
        text = node_facts.file_text(HOSTNQN_FILE)
        expect(HOSTNQN_FILE, node.host_nqn, text.strip() if text is not None else None)

    def test_host_id(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The host ID is the planned one (nvme-cli sends it with the NQN)."""
        text = node_facts.file_text(HOSTID_FILE)
        expect(HOSTID_FILE, node.host_id, text.strip() if text is not None else None)


def _to_portal(controllers: list[Controller], node: NodePlan, portal: PortalPlan) -> list[Controller]:
    return [c for c in controllers if c.subsysnqn == node.namespace.subsystem_nqn and c.traddr == portal.address]


def _describe(controllers: list[Controller]) -> str:
    return ", ".join(f"{c.name} {c.transport} {c.traddr}:{c.trsvcid} {c.state}" for c in controllers) or "none"


class TestControllers:
    def test_controller_per_portal(self, node: NodePlan, portal: PortalPlan, node_facts: HostFacts) -> None:
        """Exactly one live controller reaches the planned subsystem through this portal, over the planned
        transport and service id (none: not connected; two or more to one address: a duplicate connection)."""
        ns = node.namespace
        found = _to_portal(node_facts.controllers(), node, portal)
        wanted = (ns.transport, str(portal.trsvcid), "live")
        good = [c for c in found if (c.transport, c.trsvcid, c.state) == wanted]
        if len(found) != 1 or len(good) != 1:
            fail(
                f"controllers to {ns.subsystem_nqn} at {portal.address}",
                Text(f"one {ns.transport} {portal.address}:{portal.trsvcid} live"),
                Text(_describe(found)),
            )

    def test_no_duplicate_controllers(self, node: NodePlan, node_facts: HostFacts) -> None:
        """No two fabric controllers connect this node to the same subsystem at the same address."""
        seen: dict[tuple[str, str], list[Controller]] = {}
        for c in node_facts.controllers():
            if c.fabric:
                seen.setdefault((c.subsysnqn, c.traddr), []).append(c)
        dups = {k: v for k, v in seen.items() if len(v) > 1}
        if dups:
            found = "; ".join(f"{nqn} at {addr}: {_describe(cs)}" for (nqn, addr), cs in sorted(dups.items()))
            fail("controllers per subsystem and address", Text("at most one"), Text(found))

    def test_only_planned_portals(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The planned subsystem is reached through the planned portals only (all of them with multipath)."""
        ns = node.namespace
        found = {c.traddr for c in node_facts.controllers() if c.subsysnqn == ns.subsystem_nqn}
        expect(f"portals connected for {ns.subsystem_nqn}", {p.address for p in ns.portals}, found)


class TestConnectUnit:
    def test_connect_unit_enabled(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The unit that connects the namespace at boot is enabled (its UnitFileState)."""
        expect(f"{CONNECT_UNIT} UnitFileState", "enabled", node_facts.is_enabled(CONNECT_UNIT))


class TestPathSettings:
    def test_iopolicy(self, node: NodePlan, node_facts: HostFacts) -> None:
        """The subsystem's native multipath I/O policy is the planned one (sysfs ``iopolicy``)."""
        ns = node.namespace
        found = node_facts.nvme_paths().iopolicy.get(ns.subsystem_nqn)
        if found is None:
            fail(f"iopolicy of {ns.subsystem_nqn}", ns.iopolicy, Text("not readable (subsystem or attribute absent)"))
        expect(f"iopolicy of {ns.subsystem_nqn}", ns.iopolicy, found)

    def test_path_setting(
        self, node: NodePlan, path_setting: tuple[PortalPlan, str], node_facts: HostFacts, record_property: Any
    ) -> None:
        """The controller to this portal has the planned connect setting, as sysfs shows it (timeouts in seconds
        or ``off``; ``queue_count``: at least one I/O queue and no more than ``nr_io_queues``). An attribute this
        kernel does not have is reported as not readable, by name."""
        portal, attribute = path_setting
        found = [c for c in _to_portal(node_facts.controllers(), node, portal) if c.state != "deleting"]
        if len(found) != 1:
            fail(f"controller to {portal.address}", Text("one"), Text(_describe(found)))
        name = found[0].name
        shown = node_facts.nvme_paths().attributes.get(name, {}).get(attribute)
        if shown is None:
            record_property(f"{name} {attribute}", "not readable (no such sysfs attribute on this kernel)")
            return
        settings = PathSettings.of(node.namespace)
        if attribute == "queue_count":
            problem = queue_count_problem(settings, shown)
            if problem:
                fail(f"/sys/class/nvme/{name}/queue_count", Text(f"2..{(settings.nr_io_queues or 0) + 1}"), shown)
            return
        expect(f"/sys/class/nvme/{name}/{attribute}", controller_values(settings)[attribute], shown)


class TestRoceQos:
    def test_dcb_setting(
        self,
        node: NodePlan,
        dcb_setting: tuple[str, RoceQosPlan | None, str],
        node_facts: HostFacts,
        record_property: Any,
    ) -> None:
        """The fabric NIC carries the lossless RoCE settings the switch it is cabled to was given (else the pod's
        ``fabric.roce_qos``): its DSCP values trusted into the lossless priority, PFC on that priority only, ECN
        on it. A soft-RoCE NIC takes no DCB: reported as not applicable, by name, never passed silently."""
        setting, qos, source = dcb_setting
        why = dcb_applicable(node)
        if why is not None:
            record_property(setting, why)
            return
        assert qos is not None
        dcb = node_facts.dcb()
        nic = node.fabric.interface
        if setting == "dscp-trust":
            found = {d: p for d, p in dcb.dscp_prio.items() if d in qos.dscp}
            expect(f"{nic} dcb app dscp-prio (as {source})", {d: qos.priority for d in qos.dscp}, found)
        elif setting == "pfc":
            on = {p for p, enabled in dcb.pfc.items() if enabled}
            expect(f"{nic} dcb pfc priorities on (as {source})", {qos.priority}, on)
        elif not dcb.ecn:
            record_property("ecn", f"not readable ({nic} has no ecn/roce_np or ecn/roce_rp in sysfs)")
        else:
            wanted = "1" if qos.ecn else "0"
            expect(f"{nic} ECN of priority {qos.priority} (as {source})", {k: wanted for k in dcb.ecn}, dcb.ecn)
