"""Linux nvmet target (configfs): each subsystem admits only its planned host; ports as planned, subsystems linked."""

from __future__ import annotations

import pytest
from verify_expect import NVMET_ROOT, Text, expect, fail
from verify_facts import HostFacts
from verify_parse import NvmetState

from deploy.plan import SubsystemPlan, TargetPlan, TargetPortalPlan

pytestmark = pytest.mark.area("target")


def nvmet(facts: HostFacts) -> NvmetState:
    state = facts.nvmet(NVMET_ROOT)
    if not state.present:
        fail(NVMET_ROOT, Text("present (nvmet loaded, configfs mounted)"), Text("absent"))
    return state


class TestSubsystems:
    def test_planned_subsystems(
        self, target: TargetPlan, co_hosted_targets: list[TargetPlan], target_facts: HostFacts
    ) -> None:
        """The target's host exports exactly the planned subsystems: one per drive of each enclosure it serves."""
        wanted = {s.nqn for t in co_hosted_targets for s in t.subsystems}
        expect("nvmet subsystems", wanted, set(nvmet(target_facts).subsystems))

    def test_any_host_refused(self, target: TargetPlan, subsystem: SubsystemPlan, target_facts: HostFacts) -> None:
        """The subsystem does not admit any host (attr_allow_any_host = 0)."""
        sub = nvmet(target_facts).subsystems.get(subsystem.nqn)
        expect(f"{subsystem.nqn} attr_allow_any_host", "0", sub.allow_any_host if sub else Text("no subsystem"))

    def test_allowed_hosts(self, target: TargetPlan, subsystem: SubsystemPlan, target_facts: HostFacts) -> None:
        """The subsystem admits exactly its planned node's host NQN (a spare drive admits none)."""
        sub = nvmet(target_facts).subsystems.get(subsystem.nqn)
        wanted = {subsystem.allowed_host_nqn} if subsystem.allowed_host_nqn else set()
        expect(f"{subsystem.nqn} allowed_hosts", wanted, sub.allowed_hosts if sub else Text("no subsystem"))

    def test_namespace(self, target: TargetPlan, subsystem: SubsystemPlan, target_facts: HostFacts) -> None:
        """The subsystem's planned namespace is enabled on the planned backing device."""
        sub = nvmet(target_facts).subsystems.get(subsystem.nqn)
        ns = sub.namespaces.get(str(subsystem.nsid)) if sub else None
        wanted = f"{subsystem.device_path or 'a device'} enabled"
        found = Text(f"{ns[0]} {'enabled' if ns[1] == '1' else 'disabled'}") if ns else Text("no such namespace")
        if not ns or ns[1] != "1" or (subsystem.device_path and ns[0] != subsystem.device_path):
            fail(f"namespace {subsystem.nsid} of {subsystem.nqn}", Text(wanted), found)


def ports_at(state: NvmetState, portal: TargetPortalPlan) -> dict[str, dict]:
    return {
        pid: {"attrs": p.attrs, "subsystems": p.subsystems}
        for pid, p in state.ports.items()
        if p.attrs.get("addr_traddr") == portal.address and p.attrs.get("addr_trsvcid") == str(portal.trsvcid)
    }


class TestPorts:
    def test_port(self, target: TargetPlan, target_portal: TargetPortalPlan, target_facts: HostFacts) -> None:
        """A port listens at the planned address and service id for each planned transport (IPv4)."""
        ports = ports_at(nvmet(target_facts), target_portal).values()
        found = {(p["attrs"].get("addr_trtype"), p["attrs"].get("addr_adrfam")) for p in ports}
        expect(
            f"ports at {target_portal.address}:{target_portal.trsvcid}",
            {(t, "ipv4") for t in target_portal.transports},
            found,
        )

    def test_port_subsystems(
        self, target: TargetPlan, target_portal: TargetPortalPlan, target_facts: HostFacts
    ) -> None:
        """Every planned subsystem is linked to the port, and nothing else is."""
        ports = ports_at(nvmet(target_facts), target_portal)
        if not ports:
            fail(f"port at {target_portal.address}:{target_portal.trsvcid}", Text("present"), Text("absent"))
        wanted = {s.nqn for s in target.subsystems}
        for pid, port in sorted(ports.items()):
            expect(f"subsystems linked to port {pid} ({target_portal.address})", wanted, port["subsystems"])
