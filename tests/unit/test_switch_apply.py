"""Switch operations fed with fixture facts: which commands they yield, and what they refuse.

Each operation's generator runs against a fake host whose facts are given in order (a fact read a
second time, after a command ran, takes the next value), as pyinfra runs it at execution time.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager

import pytest
from pyinfra.api import OperationError
from pyinfra.context import ctx_host

from deploy.loader import load_spec
from deploy.plan import SwitchPlan, SwitchPortPlan, SwitchVlanPlan, build_plan
from deploy.switches import driver_for
from deploy.switches.cumulus_nvue.apply import NvueAppliedConfig, NvueConfigDiff, apply_patch
from deploy.switches.cumulus_nvue.render import diff_is_empty, patch_differences
from deploy.switches.linux_bridge.apply import LinuxBridgeState, bridge_ports
from deploy.switches.linux_bridge.render import (
    BridgeState,
    Link,
    link_commands,
    parse_state,
    state_command,
    vlan_commands,
)
from tests.conftest import REFERENCE


class FakeHost:
    """Stands in for pyinfra's host: facts come from lists, noops are recorded."""

    name = "fixture"

    def __init__(self, facts: dict[type, list]):
        self.facts = {cls: list(values) for cls, values in facts.items()}
        self.reads: list[tuple[type, dict]] = []
        self.noops: list[str] = []

    def get_fact(self, cls, *args, **kwargs):
        self.reads.append((cls, kwargs))
        values = self.facts[cls]
        return values.pop(0) if len(values) > 1 else values[0]

    def noop(self, description: str) -> None:
        self.noops.append(description)


@contextmanager
def fake_host(facts: dict[type, list]):
    h = FakeHost(facts)
    with ctx_host.use(h):
        yield h


def run(op, facts: dict[type, list], **kwargs) -> tuple[list[str], FakeHost]:
    with fake_host(facts) as h:
        return [str(c) for c in op._inner(**kwargs)], h


# --- cumulus-nvue ------------------------------------------------------------------------------------

PATCH = "/tmp/kvpod-nvue-patch.yaml"
DIFF = "- set:\n    interface:\n      swp1:\n        link:\n          mtu: 9216\n"
WANTED = (
    "# kvpod: NVUE patch\n- set:\n    bridge:\n      domain:\n        br_default:\n          vlan:\n"
    "            '100': {}\n    interface:\n      swp1:\n        bridge:\n          domain:\n"
    "            br_default:\n              access: 100\n        description: gpu01 ens1f0np0\n"
    "        link:\n          mtu: 9216\n          state:\n            up: {}\n"
)
# `nv config show -r applied -o yaml` as Cumulus Linux 5.x prints it: a header document, then the whole applied
# configuration under one `set` (more than kvpod manages: other ports, the system, services).
APPLIED = """- header:
    model: VX
    nvue-api-version: nvue_v1
    rev-id: 1.0
    version: Cumulus Linux 5.9.1
- set:
    bridge:
      domain:
        br_default:
          vlan:
            '10': {}
            '100': {}
    interface:
      eth0:
        ip:
          vrf: mgmt
        type: eth
      swp1:
        bridge:
          domain:
            br_default:
              access: 100
        description: gpu01 ens1f0np0
        link:
          mtu: 9216
          state:
            up: {}
        type: swp
      swp2:
        link:
          state:
            up: {}
        type: swp
    system:
      hostname: leaf1
"""


def nvue_switch() -> SwitchPlan:
    plan = build_plan(load_spec(REFERENCE))
    return next(sw for sw in plan.switches if sw.kind == "cumulus-nvue")


def test_nvue_converged_switch_yields_no_command_and_stages_nothing():
    cmds, h = run(apply_patch, {NvueConfigDiff: [""], NvueAppliedConfig: [APPLIED]}, patch=WANTED, path=PATCH)
    assert cmds == []
    assert h.noops == ["switch configuration already matches the plan"]
    assert h.reads == [(NvueConfigDiff, {}), (NvueAppliedConfig, {})]


def test_nvue_differing_switch_applies():
    applied = APPLIED.replace("mtu: 9216", "mtu: 1500")
    cmds, h = run(apply_patch, {NvueConfigDiff: [""], NvueAppliedConfig: [applied]}, patch=WANTED, path=PATCH)
    assert cmds == [f"nv config patch {PATCH}", "nv config apply -y"]
    assert h.noops == []


def test_nvue_unreadable_applied_config_applies():
    cmds, _ = run(apply_patch, {NvueConfigDiff: [""], NvueAppliedConfig: [None]}, patch=WANTED, path=PATCH)
    assert cmds == [f"nv config patch {PATCH}", "nv config apply -y"]


def test_nvue_refuses_foreign_pending_changes():
    with pytest.raises(OperationError, match="pending NVUE changes"):
        run(apply_patch, {NvueConfigDiff: [DIFF], NvueAppliedConfig: [APPLIED]}, patch=WANTED, path=PATCH)


def test_the_switch_read_is_read_only():
    """Every command that reads a Cumulus switch (the state read of check, diff, up --dry) only shows."""
    from deploy.switches.cumulus_nvue.apply import reads

    for read in reads(nvue_switch()):
        fact = read.fact()
        command = fact.command(**read.arguments()) if callable(fact.command) else fact.command
        text = str(command)
        for word in ("nv config patch", "nv config detach", "nv config apply", "nv set", "nv unset"):
            assert word not in text, (read, text)


def test_patch_differences_of_the_applied_config():
    assert patch_differences(WANTED, APPLIED) == []
    assert patch_differences(WANTED, APPLIED.replace("mtu: 9216", "mtu: 1500")) == [
        "interface.swp1.link.mtu: 1500, planned 9216"
    ]
    assert patch_differences(WANTED, APPLIED.replace("'100': {}", "'101': {}")) == [
        "bridge.domain.br_default.vlan.100: absent"
    ]
    assert patch_differences(WANTED, "") == [
        "bridge: absent",
        "interface: absent",
    ]
    assert patch_differences(WANTED, "not: [valid") is None
    assert patch_differences(WANTED, "just text") is None


def test_patch_differences_of_a_rendered_patch_against_itself_as_applied():
    """A switch on which the rendered patch was applied shows no difference (keys as ints or strings alike)."""
    patch = driver_for("cumulus-nvue").render(nvue_switch(), None)
    applied = "- header: {rev-id: 1.0}\n" + re.sub(r"'(\d+)'", r"\1", patch.split("\n", 2)[2])
    assert "'100'" in patch and "'100'" not in applied
    assert patch_differences(patch, applied) == []
    assert patch_differences(patch, applied.replace("mtu: 9216", "mtu: 9000", 1))


@pytest.mark.parametrize("text", ["", "  \n", "[]", "{}", "- set: {}", "- unset: {}\n"])
def test_diff_is_empty(text):
    assert diff_is_empty(text)


@pytest.mark.parametrize("text", [DIFF, "- unset:\n    qos:\n      roce: {}\n", "not: [valid"])
def test_diff_is_not_empty(text):
    assert not diff_is_empty(text)


def test_nvue_fact_command_and_processing():
    fact = NvueConfigDiff()
    assert fact.command() == "nv config diff"
    assert fact.process(["", "- set:", "    qos: {}", ""]) == "- set:\n    qos: {}"


# --- linux-bridge ------------------------------------------------------------------------------------

NS, BR = "kvpod-lab", "fabric0"


def plan(ports: dict[str, bool] | None = None, netns: str | None = NS) -> SwitchPlan:
    ports = {"kvl-target": False, "kvl-node1": True} if ports is None else ports
    return SwitchPlan(
        name="fabric",
        kind="linux-bridge",
        ssh=None,
        mtu=9216,
        bridge=BR,
        netns=netns,
        roce_qos=False,
        routed=False,
        vlans=[SwitchVlanPlan(id=100, name="lab-storage", svi_address=None, prefix_length=24)],
        ports=[
            SwitchPortPlan(port=p, description=p, access_vlan=100, tagged=t, mtu=9216, peer=f"node:{p}")
            for p, t in ports.items()
        ],
    )


def link(name, kind=None, mtu=1500, master=None, up=False, filtering=False) -> Link:
    return Link(name=name, kind=kind, mtu=mtu, master=master, up=up, vlan_filtering=filtering)


def converged_links(filtering: bool = False) -> dict[str, Link]:
    return {
        BR: link(BR, "bridge", 9216, up=True, filtering=filtering),
        "kvl-target": link("kvl-target", "tun", 9216, BR, True),
        "kvl-node1": link("kvl-node1", "tun", 9216, BR, True),
    }


CONVERGED_VLANS = {"kvl-target": {100: frozenset({"PVID", "Egress Untagged"})}, "kvl-node1": {100: frozenset()}}


def test_fresh_ports_and_missing_bridge_no_filtering():
    fresh = BridgeState(links={"kvl-target": link("kvl-target", "tun"), "kvl-node1": link("kvl-node1", "tun")})
    after = BridgeState(links={**converged_links(), **fresh.links}, filtering_supported=False)
    cmds, h = run(bridge_ports, {LinuxBridgeState: [fresh, after]}, plan=plan())
    assert cmds == [
        f"ip -n {NS} link add {BR} type bridge",
        f"ip -n {NS} link set kvl-target master {BR} mtu 9216 up",
        f"ip -n {NS} link set kvl-node1 master {BR} mtu 9216 up",
        f"ip -n {NS} link set {BR} mtu 9216 up",
    ]
    assert len(h.reads) == 2  # read again once the bridge exists, for its VLAN filtering knob
    assert h.noops and "no bridge VLAN filtering" in h.noops[0]


def test_converged_without_filtering_yields_nothing():
    cmds, h = run(bridge_ports, {LinuxBridgeState: [BridgeState(links=converged_links())]}, plan=plan())
    assert cmds == []
    assert len(h.noops) == 1


def test_only_the_differing_port_changes():
    links = converged_links()
    links["kvl-node1"] = link("kvl-node1", "tun", 1500, BR, True)
    cmds, _ = run(bridge_ports, {LinuxBridgeState: [BridgeState(links=links)]}, plan=plan())
    assert cmds == [f"ip -n {NS} link set kvl-node1 master {BR} mtu 9216 up"]


def test_filtering_enabled_then_vlans_set():
    before = BridgeState(
        links=converged_links(filtering=False),
        vlans={"kvl-target": {1: frozenset({"PVID", "Egress Untagged"})}, "kvl-node1": {1: frozenset({"PVID"})}},
        filtering_supported=True,
    )
    after = BridgeState(links=converged_links(filtering=True), vlans=before.vlans, filtering_supported=True)
    cmds, h = run(bridge_ports, {LinuxBridgeState: [before, after]}, plan=plan())
    assert cmds == [
        f"ip -n {NS} link set {BR} type bridge vlan_filtering 1 || true",
        f"bridge -n {NS} vlan add vid 100 dev kvl-target pvid untagged",
        f"bridge -n {NS} vlan del vid 1 dev kvl-target",
        f"bridge -n {NS} vlan add vid 100 dev kvl-node1",
        f"bridge -n {NS} vlan del vid 1 dev kvl-node1",
    ]
    assert h.noops == []


def test_kernel_refusing_filtering_is_a_noop_not_a_failure():
    before = BridgeState(links=converged_links(filtering=False), filtering_supported=True)
    cmds, h = run(bridge_ports, {LinuxBridgeState: [before, before]}, plan=plan())
    assert cmds == [f"ip -n {NS} link set {BR} type bridge vlan_filtering 1 || true"]
    assert h.noops and "refused" in h.noops[0]


def test_converged_with_filtering_yields_nothing():
    state = BridgeState(links=converged_links(filtering=True), vlans=CONVERGED_VLANS, filtering_supported=True)
    cmds, h = run(bridge_ports, {LinuxBridgeState: [state]}, plan=plan())
    assert cmds == [] and h.noops == []


def test_port_flags_corrected():
    vlans = {"kvl-target": {100: frozenset()}, "kvl-node1": {100: frozenset({"PVID", "Egress Untagged"})}}
    state = BridgeState(links=converged_links(filtering=True), vlans=vlans, filtering_supported=True)
    assert vlan_commands(plan(), state) == [
        f"bridge -n {NS} vlan add vid 100 dev kvl-target pvid untagged",
        f"bridge -n {NS} vlan add vid 100 dev kvl-node1",
    ]


def test_missing_netns_and_ports_fail_clearly():
    with pytest.raises(OperationError, match="does not exist"):
        run(bridge_ports, {LinuxBridgeState: [BridgeState(netns_exists=False)]}, plan=plan())
    state = BridgeState(links={BR: link(BR, "bridge")})
    with pytest.raises(OperationError, match="ports kvl-target, kvl-node1 do not exist"):
        run(bridge_ports, {LinuxBridgeState: [state]}, plan=plan())
    with pytest.raises(OperationError, match="could not read"):
        run(bridge_ports, {LinuxBridgeState: [None]}, plan=plan())


def test_a_non_bridge_link_named_like_the_bridge_is_refused():
    links = {**converged_links(), BR: link(BR, "veth", 9216, up=True)}
    with pytest.raises(OperationError, match="not a bridge"):
        run(bridge_ports, {LinuxBridgeState: [BridgeState(links=links)]}, plan=plan())


def test_svis_are_reported_not_configured():
    routed = plan().model_copy(
        update={"vlans": [SwitchVlanPlan(id=100, name="s", svi_address="10.78.0.254", prefix_length=24)]}
    )
    cmds, h = run(bridge_ports, {LinuxBridgeState: [BridgeState(links=converged_links())]}, plan=routed)
    assert cmds == []
    assert "does not route; no SVI for VLAN 100 (10.78.0.254/24)" in h.noops[0]


def test_remote_host_without_netns_uses_plain_commands():
    state = BridgeState(links={"eth2": link("eth2", None, 1500)})
    assert link_commands(plan({"eth2": True}, netns=None), state) == [
        f"ip link add {BR} type bridge",
        f"ip link set eth2 master {BR} mtu 9216 up",
        f"ip link set {BR} mtu 9216 up",
    ]
    assert "ip netns exec" not in state_command(None, BR)
    assert f"ip netns exec {NS} test -e /sys/class/net/{BR}/bridge/vlan_filtering" in state_command(NS, BR)


def test_parse_state_from_ip_and_bridge_json():
    links = [
        {
            "ifname": BR,
            "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
            "mtu": 9216,
            "linkinfo": {"info_kind": "bridge", "info_data": {"vlan_filtering": 1}},
        },
        {
            "ifname": "kvl-node1",
            "flags": ["BROADCAST", "UP"],
            "mtu": 9216,
            "master": BR,
            "linkinfo": {"info_kind": "tun"},
        },
        {"ifname": "lo", "flags": ["LOOPBACK"], "mtu": 65536},
    ]
    vlans = [
        {"ifname": BR, "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]}]},
        {"ifname": "kvl-node1", "vlans": [{"vlan": 100}, {"vlan": 200, "vlanEnd": 202, "flags": ["PVID"]}]},
    ]
    lines = ["#kvpod:links", json.dumps(links), "#kvpod:vlans", json.dumps(vlans), "#kvpod:filtering", "1"]
    state = parse_state(lines)
    assert state.netns_exists and state.filtering_supported
    assert state.links[BR] == Link(BR, "bridge", 9216, None, True, True)
    assert state.links["kvl-node1"] == Link("kvl-node1", "tun", 9216, BR, True, False)
    assert state.links["lo"].up is False
    assert state.vlans["kvl-node1"] == {
        100: frozenset(),
        200: frozenset({"PVID"}),
        201: frozenset({"PVID"}),
        202: frozenset({"PVID"}),
    }
    assert parse_state(["#kvpod:no-netns"]).netns_exists is False
    assert parse_state(["#kvpod:links", "[]", "#kvpod:vlans", "[]", "#kvpod:filtering", "0"]) == BridgeState()


def test_unmanaged_switch_deploy_is_a_noop():
    with fake_host({}) as h:
        h.data = {"kvpod_switch": plan().model_copy(update={"kind": "none"})}
        driver_for("none").deploy()
    assert h.noops == ["switch fabric: kind none, nothing to configure"]
