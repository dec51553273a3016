"""The pod map without Graphviz: the DOT source shows every node, portal and drive of the plan, marks
spares, shows per-node VLANs, and takes its colours from `kvpod up` and `kvpod verify` reports."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings

from deploy.engine import HostResult, RunReport
from deploy.errors import InputError, SpecError
from deploy.loader import load_spec, spec_from_dict
from deploy.plan import Plan, build_plan
from deploy.podmap import FILL, SPARE_FILL, build_map, plural, status_from_report
from tests.conftest import LAB, REFERENCE, ROOT, SHIPPED_SPECS
from tests.unit.test_plan_properties import pods

TWO = ROOT / "examples" / "two-enclosures" / "pod.yaml"
PER_NODE = ROOT / "examples" / "per-node-vlan" / "pod.yaml"


def plan_of(path) -> Plan:
    return build_plan(load_spec(path))


def statement(source: str, node_id: str) -> str:
    """The DOT statement that defines ``node_id`` (its label runs to the end of the line)."""
    m = re.search(rf"^\s*{re.escape(node_id)} \[label=(.*)$", source, re.M)
    assert m, f"{node_id} is not in the map"
    return m[1]


def drive_row(source: str, enclosure_index: int, slot: int) -> str:
    label = statement(source, f"enclosure_{enclosure_index}")
    m = re.search(rf'<tr><td port="d{slot}"[^>]*>.*?</tr>', label)
    assert m, f"drive {slot} is not in enclosure_{enclosure_index}"
    return m[0]


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_every_node_portal_and_drive_is_on_the_map(path):
    plan = plan_of(path)
    source = build_map(plan).source
    for n in plan.nodes:
        label = statement(source, f"node_{n.name}")
        assert f">{n.name}<" in label
        assert f"{n.fabric.address}/{n.fabric.prefix_length}" in label
        assert f"VLAN {n.fabric.vlan}" in label
        enclosure = [t.name for t in plan.targets].index(n.namespace.enclosure)
        assert f"node_{n.name}:e -> enclosure_{enclosure}:d{n.namespace.drive}:w" in source
    for i, t in enumerate(plan.targets):
        label = statement(source, f"enclosure_{i}")
        assert f">{t.name}<" in label
        for p in t.portals:
            assert f"{p.iom} {p.port}  {p.address}/{p.prefix_length}" in label
        for s in t.subsystems:
            assert (s.node or "spare") in drive_row(source, i, s.drive)
    for i, sw in enumerate(plan.switches):
        label = statement(source, f"switch_{i}")
        assert all(f">{port.port}" in label for port in sw.ports)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods())
def test_generated_pods_map_every_node_and_drive(data):
    try:
        plan = build_plan(spec_from_dict(data))
    except SpecError:
        assume(False)
    source = build_map(plan).source
    for n in plan.nodes:
        assert f"node_{n.name}:e -> enclosure_0:d{n.namespace.drive}:w" in source
    for s in plan.targets[0].subsystems:
        assert (s.node or "<i>spare</i>") in drive_row(source, 0, s.drive)


def test_the_map_is_a_pure_function_of_the_plan():
    assert build_map(plan_of(REFERENCE)).source == build_map(plan_of(REFERENCE)).source


def test_spares_are_marked_and_have_no_node():
    source = build_map(plan_of(TWO)).source
    for slot in (6, 7):
        row = drive_row(source, 1, slot)
        assert "<i>spare</i>" in row and SPARE_FILL in row
        assert f"enclosure_1:d{slot}:w" not in source
    assert "gpu14" in drive_row(source, 1, 8)  # the override: gpu14 holds slot 8, past the spares
    lab = build_map(plan_of(LAB)).source
    assert "<i>spare</i>" in drive_row(lab, 0, 3)


def test_per_node_vlans_show_on_switch_ports_and_nodes():
    plan = plan_of(PER_NODE)
    source = build_map(plan).source
    switch = statement(source, "switch_0")
    assert "VLAN 101-106 per node" in switch
    assert "swp1  · VLAN 101" in switch and "swp31  · VLAN 100" in switch
    first = plan.nodes[0]
    assert f"via {first.fabric.gateway}" in statement(source, f"node_{first.name}")
    shared = statement(build_map(plan_of(REFERENCE)).source, "switch_0")
    assert "per node" not in shared and "· VLAN" not in shared


def test_switch_ports_follow_the_enclosures_so_cables_do_not_cross():
    switch = statement(build_map(plan_of(TWO)).source, "switch_0")
    ports = re.findall(r'port="p\d+" align="left">(swp\d+)<', switch)
    assert ports == ["swp29", "swp30", *(f"swp{i}" for i in range(1, 9)), "swp31", "swp32"] + [
        f"swp{i}" for i in range(9, 15)
    ]


def up_report(plan: Plan, statuses: dict[str, str], dry: bool = False, extra: tuple[str, ...] = ()) -> str:
    hosts = [HostResult(sw.name, "switch", "unchanged") for sw in plan.switches]
    hosts += [HostResult(t.name, "target", "manual" if t.kind == "data24" else "unchanged") for t in plan.targets]
    hosts += [HostResult(n.name, "node", statuses.get(n.name, "unchanged")) for n in plan.nodes]
    hosts += [HostResult(name, "node", "failed") for name in extra]
    return json.dumps(RunReport(hosts, 1.0, None, dry).as_json(), indent=2, sort_keys=True)


class TestUpReport:
    def test_nodes_and_their_drives_take_the_run_status(self):
        plan = plan_of(TWO)
        text = up_report(plan, {"gpu02": "failed", "gpu09": "unreachable", "gpu14": "changed"}, extra=("gpu99",))
        status = status_from_report(text, plan, "up.json")
        assert status.hosts["gpu01"] == "ok" and status.hosts["gpu02"] == "failed"
        assert status.hosts["leaf1"] == "ok"
        assert "data24a" not in status.hosts  # a Data24 is configured by hand: no run status
        assert status.drives[("data24a", 2)] == "failed"
        assert status.drives[("data24b", 1)] == "unreachable"
        assert status.drives[("data24b", 8)] == "changed"
        assert ("data24b", 6) not in status.drives  # a spare has no node, so no status
        assert status.unknown_hosts == ("gpu99",)

        source = build_map(plan, status).source
        assert f'bgcolor="{FILL["failed"]}"' in statement(source, "node_gpu02")
        assert f'bgcolor="{FILL["ok"]}"' in statement(source, "node_gpu01")
        assert "<b>failed</b>" in statement(source, "node_gpu02")
        assert FILL["failed"] in drive_row(source, 0, 2)
        assert FILL["unreachable"] in drive_row(source, 1, 1)
        assert FILL["changed"] in drive_row(source, 1, 8)
        assert SPARE_FILL in drive_row(source, 1, 6)
        assert "status from kvpod up report up.json" in statement(source, "legend")

    def test_a_dry_run_says_so(self):
        plan = plan_of(LAB)
        status = status_from_report(up_report(plan, {"node1": "would-change"}, dry=True), plan, "dry.json")
        assert status.hosts["node1"] == "changed" and status.hosts["target"] == "ok"
        assert "dry run" in status.source

    def test_without_a_report_nothing_is_coloured(self):
        source = build_map(plan_of(LAB)).source
        assert not any(colour in source for colour in FILL.values())


def _case(area: str, name: str, host: str, body: str = "") -> str:
    props = (
        f'<properties><property name="kvpod_host" value="{host}" />'
        f'<property name="kvpod_area" value="{area}" /></properties>'
    )
    return f'<testcase classname="{area}.test_{area}.T" name="{name}">{props}{body}</testcase>'


FAIL = '<failure message="AssertionError: mounted device: expected nvme1n1, found nothing">...</failure>'
DOWN = '<error message="HostUnreachable: target: SSH failed">HostUnreachable</error>'
JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
    + _case("fabric", "test_vlan_mtu[node1]", "node1")
    + _case("namespace", "test_mapping[node1]", "node1")
    + _case("kv_mount", "test_mounted[node1]", "node1")
    + _case("fabric", "test_vlan_mtu[node2]", "node2")
    + _case("kv_mount", "test_mounted[node2]", "node2", FAIL)
    + _case("target", "test_allowed_hosts[target-drive01]", "target", DOWN)
    + _case("namespace", "test_subsystem_on_one_node[pod]", "pod")
    + "</testsuite></testsuites>"
)


class TestVerifyJunit:
    def test_hosts_and_drives_take_their_checks(self):
        plan = plan_of(LAB)
        status = status_from_report(JUNIT, plan, "verify.xml")
        assert status.hosts == {"node1": "ok", "node2": "failed", "target": "unreachable"}
        assert status.drives == {("target", 1): "ok", ("target", 2): "failed"}
        assert status.unknown_hosts == ()

        source = build_map(plan, status).source
        assert f'bgcolor="{FILL["ok"]}"' in statement(source, "node_node1")
        assert f'bgcolor="{FILL["failed"]}"' in statement(source, "node_node2")
        assert FILL["unreachable"] in statement(source, "enclosure_0")  # the target's own checks
        assert FILL["failed"] in drive_row(source, 0, 2)
        assert SPARE_FILL in drive_row(source, 0, 3)
        assert "status from kvpod verify verify.xml" in statement(source, "legend")

    def test_a_drive_without_checks_stays_uncoloured(self):
        plan = plan_of(LAB)
        only_fabric = JUNIT.replace('"namespace"', '"fabric"').replace('"kv_mount"', '"fabric"')
        status = status_from_report(only_fabric, plan, "verify.xml")
        assert status.drives == {}
        assert status.hosts["node2"] == "failed"


@pytest.mark.parametrize(
    "text",
    ["", "not a report", "{broken json", '{"ok": true}', '["hosts"]', "<testsuites><unclosed>", "<testsuites/>"],
    ids=["empty", "text", "bad-json", "no-hosts", "json-list", "bad-xml", "no-cases"],
)
def test_reports_kvpod_cannot_read_are_input_errors(text):
    with pytest.raises(InputError):
        status_from_report(text, plan_of(LAB), "report")


def test_plural():
    assert [plural(1, "node"), plural(24, "node"), plural(2, "switch"), plural(1, "switch")] == [
        "1 node",
        "24 nodes",
        "2 switches",
        "1 switch",
    ]
