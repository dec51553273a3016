"""The plan: a pure, deterministic function of the spec, with the reference architecture's numbers."""

from __future__ import annotations

import json

import pytest
from netaddr import IPAddress, IPNetwork

from deploy.loader import load_spec, spec_from_dict
from deploy.plan import build_plan
from tests.conftest import REFERENCE, SHIPPED_SPECS


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_every_shipped_spec_validates_and_plans(path):
    plan = build_plan(load_spec(path))
    assert plan.nodes


def test_reference_plan_has_24_distinct_nodes():
    plan = build_plan(load_spec(REFERENCE))
    assert len(plan.nodes) == 24
    assert len({(n.namespace.enclosure, n.namespace.drive) for n in plan.nodes}) == 24
    assert len({n.namespace.subsystem_nqn for n in plan.nodes}) == 24
    assert len({n.fabric.address for n in plan.nodes}) == 24
    assert {n.fabric.mtu for n in plan.nodes} == {9000}
    assert {n.lmcache.max_local_cpu_size for n in plan.nodes} == {7.5}
    assert {n.lmcache.max_local_disk_size for n in plan.nodes} == {25}
    assert {n.vllm.tensor_parallel_size for n in plan.nodes} == {4}
    assert {n.vllm.max_model_len for n in plan.nodes} == {32768}
    assert {n.fabric.socket_buffer_bytes for n in plan.nodes} == {134217728}


def test_portals_first_then_nodes():
    plan = build_plan(load_spec(REFERENCE))
    assert [p.address for p in plan.targets[0].portals] == ["10.78.0.1", "10.78.0.2"]
    assert plan.nodes[0].fabric.address == "10.78.0.3"
    assert plan.nodes[-1].fabric.address == "10.78.0.26"


def test_multipath_gives_every_node_both_iom_portals():
    plan = build_plan(load_spec(REFERENCE))
    assert all([p.iom for p in n.namespace.portals] == ["iom-a", "iom-b"] for n in plan.nodes)


def test_multipath_off_keeps_one_portal(reference_dict):
    reference_dict["fabric"]["multipath"] = False
    plan = build_plan(spec_from_dict(reference_dict))
    assert all(len(n.namespace.portals) == 1 for n in plan.nodes)


def test_same_spec_gives_byte_identical_plan():
    assert build_plan(load_spec(REFERENCE)).to_json() == build_plan(load_spec(REFERENCE)).to_json()


def test_host_nqn_is_derived_from_pod_and_node(reference_dict):
    a = build_plan(spec_from_dict(reference_dict)).nodes[0].host_nqn
    reference_dict["pod"]["name"] = "other-pod"
    b = build_plan(spec_from_dict(reference_dict)).nodes[0].host_nqn
    assert a.startswith("nqn.2014-08.org.nvmexpress:uuid:") and a != b


def test_explicit_address_is_kept_and_skipped_by_auto(reference_dict):
    reference_dict["nodes"]["overrides"] = {"gpu02": {"fabric_address": "10.78.0.3"}}
    plan = build_plan(spec_from_dict(reference_dict))
    assert plan.node("gpu02").fabric.address == "10.78.0.3"
    assert plan.node("gpu01").fabric.address == "10.78.0.4"


def test_spare_drives_admit_no_host(lab_dict):
    plan = build_plan(spec_from_dict(lab_dict))
    subs = plan.targets[0].subsystems
    assert [s.node for s in subs] == ["node1", "node2", None]
    assert subs[2].allowed_host_nqn is None
    assert subs[0].allowed_host_nqn == plan.node("node1").host_nqn


def test_per_node_vlan_plan():
    plan = build_plan(load_spec(REFERENCE.parent.parent.parent / "examples" / "per-node-vlan" / "pod.yaml"))
    vlans = [n.fabric.vlan for n in plan.nodes]
    assert vlans == list(range(101, 107))
    for n in plan.nodes:
        net = IPNetwork(f"{n.fabric.address}/{n.fabric.prefix_length}")
        assert IPAddress(n.fabric.gateway) in net and n.fabric.routes == ["10.78.0.0/24"]
    svis = {v.id: v.svi_address for v in plan.switches[0].vlans}
    assert svis[100] == "10.78.0.254"


def test_lmcache_yaml_mode_for_nested_settings(reference_dict):
    reference_dict["kvcache"]["lmcache_extra"] = {"extra_config": {"save_decode_cache": True}}
    lm = build_plan(spec_from_dict(reference_dict)).nodes[0].lmcache
    assert lm.config_mode == "yaml" and lm.config_file == "/etc/kvpod/lmcache@0.yaml"


def test_plan_json_has_the_documented_keys():
    data = json.loads(build_plan(load_spec(REFERENCE)).to_json())
    node = data["nodes"][0]
    for key in ("name", "host_nqn"):
        assert key in node
    assert {"interface", "address", "vlan", "mtu"} <= node["fabric"].keys()
    assert {"enclosure", "drive", "subsystem_nqn"} <= node["namespace"].keys()
    assert {"path", "options"} <= node["mount"].keys()
    engine = node["engines"][0]
    assert {"chunk_size", "local_cpu", "max_local_cpu_size", "local_disk", "max_local_disk_size"} <= engine[
        "lmcache"
    ].keys()
    assert {"index", "unit", "port", "gpus", "cuda_visible_devices", "health_url", "models_url", "disk_dir"} <= set(
        engine
    )
    assert {"cpu_budget_gib", "disk_budget_gib"} <= engine.keys()
    assert {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len"} <= node["vllm"].keys()
    assert "switches" in data and "targets" in data


def test_four_gpus_at_tp4_run_one_engine(reference_dict):
    (node,) = build_plan(spec_from_dict(reference_dict)).nodes[:1]
    (engine,) = node.engines
    assert (engine.index, engine.unit, engine.port, engine.gpus) == (0, "kvpod-vllm@0.service", 8000, [0, 1, 2, 3])
    assert (engine.health_url, engine.models_url) == ("http://127.0.0.1:8000/health", "http://127.0.0.1:8000/v1/models")
    assert engine.disk_dir == "/mnt/kvcache/lmcache/engine0"
    assert engine.lmcache.local_disk == "file:///mnt/kvcache/lmcache/engine0/"
    assert (engine.cpu_budget_gib, engine.disk_budget_gib) == (30, 100)
    assert (engine.lmcache.env_file, engine.lmcache.config_file) == ("/etc/kvpod/lmcache@0.env", None)


def test_eight_gpus_at_tp4_run_two_engines_with_their_own_gpus_ports_files_and_budgets(reference_dict):
    reference_dict["nodes"]["generate"]["gpus"] = 8
    node = build_plan(spec_from_dict(reference_dict)).nodes[0]
    assert [e.unit for e in node.engines] == ["kvpod-vllm@0.service", "kvpod-vllm@1.service"]
    assert [e.cuda_visible_devices for e in node.engines] == ["0,1,2,3", "4,5,6,7"]
    assert [e.port for e in node.engines] == [8000, 8001]
    assert [e.health_url for e in node.engines] == ["http://127.0.0.1:8000/health", "http://127.0.0.1:8001/health"]
    assert [e.disk_dir for e in node.engines] == ["/mnt/kvcache/lmcache/engine0", "/mnt/kvcache/lmcache/engine1"]
    assert [e.lmcache.env_file for e in node.engines] == ["/etc/kvpod/lmcache@0.env", "/etc/kvpod/lmcache@1.env"]
    # the node's 30 GiB DRAM and 100 GiB disk budgets are split between the engines, then over each one's 4 ranks
    assert {(e.cpu_budget_gib, e.disk_budget_gib) for e in node.engines} == {(15, 50)}
    assert {(e.lmcache.max_local_cpu_size, e.lmcache.max_local_disk_size) for e in node.engines} == {(3.75, 12.5)}


def test_every_engine_port_must_be_a_port(reference_dict):
    from deploy.errors import SpecError
    from deploy.validate import check_pod

    reference_dict["nodes"]["generate"]["gpus"] = 8
    reference_dict["vllm"]["port"] = 65535
    with pytest.raises(SpecError) as info:
        check_pod(spec_from_dict(reference_dict))
    (problem,) = info.value.problems  # one line for the 24 generated nodes
    assert problem.path == "nodes.generate.gpus" and "24 nodes" in problem.message
    assert "2 engines need ports 65535..65536" in problem.message
