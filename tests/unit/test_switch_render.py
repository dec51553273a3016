"""Switch rendering: golden files for the shipped pods, and the NVUE/bridge structure they must have."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.errors import KvpodError
from deploy.loader import load_spec, spec_from_dict
from deploy.plan import Plan, build_plan
from deploy.switches import driver_for, render_switch_configs
from deploy.switches.cumulus_nvue.render import nvue_tree
from tests.golden import assert_golden

ROOT = Path(__file__).resolve().parents[2]


def plan_of(path: str) -> Plan:
    return build_plan(load_spec(ROOT / path))


@pytest.fixture(scope="module")
def reference() -> Plan:
    return plan_of("inventories/reference/pod.yaml")


@pytest.fixture(scope="module")
def per_node() -> Plan:
    return plan_of("examples/per-node-vlan/pod.yaml")


@pytest.fixture(scope="module")
def lab() -> Plan:
    return plan_of("inventories/lab/pod.yaml")


def test_golden_reference_nvue(reference):
    assert_golden("reference-nvue.yaml", render_switch_configs(reference)["leaf1"])


def test_golden_per_node_vlan_nvue(per_node):
    assert_golden("per-node-vlan-nvue.yaml", render_switch_configs(per_node)["leaf1"])


def test_golden_lab_linux_bridge(lab):
    assert_golden("lab-linux-bridge.sh", render_switch_configs(lab)["fabric"])


def test_rendering_is_deterministic(reference, per_node, lab):
    for plan in (reference, per_node, lab):
        assert render_switch_configs(plan) == render_switch_configs(plan.model_copy(deep=True))


def test_nvue_patch_is_one_set_list(reference):
    doc = yaml.safe_load(render_switch_configs(reference)["leaf1"])
    assert isinstance(doc, list) and len(doc) == 1 and set(doc[0]) == {"set"}
    assert doc[0]["set"] == nvue_tree(reference.switches[0])


def test_nvue_reference_ports(reference):
    sw = reference.switches[0]
    tree = nvue_tree(sw)
    interfaces = tree["interface"]
    assert set(interfaces) == {p.port for p in sw.ports}  # shared VLAN, not routed: no SVI
    assert list(interfaces)[:3] == ["swp1", "swp2", "swp3"] and list(interfaces)[-2:] == ["swp31", "swp32"]
    for p in sw.ports:
        iface = interfaces[p.port]
        assert iface["description"] == p.description
        assert iface["link"] == {"mtu": 9216, "state": {"up": {}}}
        member = iface["bridge"]["domain"]["br_default"]
        if p.tagged:
            assert member == {"untagged": "none", "vlan": {"100": {}}}
        else:
            assert member == {"access": 100}
    assert tree["bridge"] == {"domain": {"br_default": {"vlan": {"100": {}}}}}
    assert tree["qos"] == {"roce": {"enable": "on", "mode": "lossless"}}


def test_nvue_per_node_vlans_and_svis(per_node):
    sw = per_node.switches[0]
    tree = nvue_tree(sw)
    assert list(tree["bridge"]["domain"]["br_default"]["vlan"]) == [str(v) for v in range(100, 107)]
    svis = {k: v for k, v in tree["interface"].items() if k.startswith("vlan")}
    assert list(svis) == [f"vlan{v}" for v in range(100, 107)]
    assert svis["vlan100"] == {"ip": {"address": {"10.78.0.254/24": {}}}, "type": "svi", "vlan": 100}
    assert svis["vlan101"]["ip"]["address"] == {"10.79.0.1/29": {}}
    for n in per_node.nodes:
        member = tree["interface"][n.fabric.switch_port]["bridge"]["domain"]["br_default"]
        assert member == {"untagged": "none", "vlan": {str(n.fabric.vlan): {}}}
        assert n.fabric.gateway in str(svis[f"vlan{n.fabric.vlan}"])


def test_nvue_options_follow_the_plan(reference):
    sw = reference.switches[0].model_copy(update={"roce_qos": False, "bridge": "br_pod"})
    tree = nvue_tree(sw)
    assert "qos" not in tree
    assert set(tree["bridge"]["domain"]) == {"br_pod"}
    assert all("br_pod" in i["bridge"]["domain"] for i in tree["interface"].values())


def test_lab_script_is_valid_shell(lab):
    script = render_switch_configs(lab)["fabric"]
    assert script.startswith("#!/bin/sh\n")
    for port in ("kvl-target", "kvl-node1", "kvl-node2"):
        assert f"ip -n kvpod-lab link set {port} master fabric0 mtu 9216 up" in script
        assert f"bridge -n kvpod-lab vlan add vid 100 dev {port}\n" in script
    if shutil.which("sh"):
        subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_unmanaged_switch_renders_a_comment(reference):
    sw = reference.switches[0].model_copy(update={"kind": "none"})
    text = driver_for("none").render(sw, reference)
    assert all(line.startswith("#") for line in text.splitlines())
    assert "manages nothing" in text and "swp31: access VLAN 100" in text and "swp1: tagged VLAN 100" in text


def test_unknown_switch_kind_is_a_clear_error():
    with pytest.raises(KvpodError, match="no driver for switch kind 'sonic'"):
        driver_for("sonic")
    with pytest.raises(KvpodError, match="not a valid driver name"):
        driver_for("../x")


def test_drivers_resolve_by_kind():
    for kind in ("cumulus-nvue", "linux-bridge", "none"):
        assert driver_for(kind).kind == kind


def test_nvue_lossless_priority_comes_from_fabric_roce_qos(reference_dict):
    """One place sets the lossless priority: the NVUE patch and the nodes' NICs both take fabric.roce_qos."""
    reference_dict["fabric"]["roce_qos"] = {"priority": 4, "dscp": [24, 26], "ecn": True}
    plan = build_plan(spec_from_dict(reference_dict))
    qos = nvue_tree(plan.switches[0])["qos"]
    assert qos["pfc"] == {"default-global": {"switch-priority": {"4": {}}}}
    assert qos["mapping"]["default-global"] == {
        "trust": "l3",
        "dscp": {"24": {"switch-priority": 4}, "26": {"switch-priority": 4}},
    }
    assert qos["congestion-control"] == {"default-global": {"traffic-class": {"4": {"ecn": "enable"}}}}
    node = plan.nodes[0]
    assert (node.fabric.roce_qos.priority, node.fabric.roce_qos.dscp) == (4, [24, 26])
    assert node.namespace.tos == 24 << 2


def test_nvue_roce_profile_alone_when_the_plan_is_its_defaults(reference):
    """Priority 3, DSCP 26 and ECN are what NVUE's RoCE profile sets: the patch stays the profile alone."""
    assert reference.switches[0].roce is not None and reference.switches[0].roce.priority == 3
    assert nvue_tree(reference.switches[0])["qos"] == {"roce": {"enable": "on", "mode": "lossless"}}
