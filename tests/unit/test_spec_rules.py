"""One failing spec per validation rule: the error names the field and says what would be valid."""

from __future__ import annotations

import pytest
import yaml

from deploy.errors import SpecError
from deploy.loader import load_spec, load_spec_text, spec_from_dict


def problems(data: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return [str(p) for p in info.value.problems]


def explicit_nodes(data: dict, count: int = 3) -> dict:
    """Replace the generator with explicit nodes, for rules that need per-node edits."""
    data["nodes"] = [
        {
            "name": f"gpu{i:02d}",
            "ssh": {"address": f"192.0.2.{100 + i}"},
            "fabric_interface": "ens1f0np0",
            "switch": "leaf1",
            "switch_port": f"swp{i}",
        }
        for i in range(1, count + 1)
    ]
    return data


def test_reference_is_valid(reference_dict):
    spec = spec_from_dict(reference_dict)
    assert spec.pod.name == "data24-pod"


def test_unknown_key_names_field_and_suggests(reference_dict):
    reference_dict["kvcache"]["disk_budjet_gib"] = 10
    (line,) = problems(reference_dict)
    assert line.startswith("kvcache.disk_budjet_gib: unknown key")
    assert "did you mean 'disk_budget_gib'" in line


def test_unknown_key_in_nested_list(reference_dict):
    reference_dict["enclosures"][0]["ioms"][0]["ports"][0]["adress"] = "10.78.0.9"
    (line,) = problems(reference_dict)
    assert line.startswith("enclosures[0].ioms[0].ports[0].adress: unknown key")
    assert "'address'" in line


def test_yaml_syntax_error_gives_line_and_column():
    with pytest.raises(SpecError) as info:
        load_spec_text("pod:\n  name: x\nnodes: [\n", "pod.yaml")
    (p,) = info.value.problems
    assert "line" in p.message and "column" in p.message


def test_duplicate_yaml_key_is_an_error():
    with pytest.raises(SpecError) as info:
        load_spec_text("pod: {name: a}\npod: {name: b}\n")
    assert "duplicate key 'pod'" in str(info.value)


def test_duplicate_node_names(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][2]["name"] = "gpu01"
    assert any(p.startswith("nodes.gpu01: duplicate node name") for p in problems(data))


def test_duplicate_ssh_endpoint(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][1]["ssh"]["address"] = data["nodes"][0]["ssh"]["address"]
    out = [p for p in problems(data) if "SSH endpoint" in p]
    assert len(out) == 1 and out[0].startswith("nodes[0].ssh: SSH endpoint ")
    assert "is shared by 2 nodes: gpu01, gpu02 (each node needs its own)" in out[0]


def test_duplicate_fabric_address(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["fabric_address"] = "10.78.0.50"
    data["nodes"][1]["fabric_address"] = "10.78.0.50"
    assert any(p.startswith("nodes[1].fabric_address: 10.78.0.50 is used twice") for p in problems(data))


def test_duplicate_switch_port(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][1]["switch_port"] = "swp1"
    out = problems(data)
    assert any(p.startswith("nodes[0].switch_port: switch port leaf1/swp1 is cabled to 2 devices") for p in out)


def test_duplicate_host_nqn(reference_dict):
    data = explicit_nodes(reference_dict)
    for n in data["nodes"][:2]:
        n["host_nqn"] = "nqn.2024-01.com.example:host-a"
    out = problems(data)
    assert any(p.startswith("nodes[0].host_nqn: host NQN nqn.2024-01.com.example:host-a is shared") for p in out)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.99.0.5", "outside the subnet 10.78.0.0/24"),
        ("10.78.0.0", "network address"),
        ("10.78.0.255", "broadcast address"),
    ],
)
def test_address_outside_subnet_or_reserved(reference_dict, address, expected):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["fabric_address"] = address
    (line,) = [p for p in problems(data) if p.startswith("nodes[0].fabric_address")]
    assert expected in line and "10.78.0.0/24" in line


def test_portal_address_outside_subnet(reference_dict):
    reference_dict["enclosures"][0]["ioms"][1]["ports"][0]["address"] = "192.168.1.1"
    out = problems(reference_dict)
    assert any(p.startswith("enclosures[0].ioms[1].ports[0].address: 192.168.1.1 is outside") for p in out)


@pytest.mark.parametrize("mtu", [1279, 9217])
def test_mtu_range(reference_dict, mtu):
    reference_dict["fabric"]["mtu"] = mtu
    (line,) = problems(reference_dict)
    assert line.startswith("fabric.mtu:") and ("1280" in line or "9216" in line)


def test_switch_mtu_too_small_for_vlan_tag(reference_dict):
    reference_dict["switches"][0]["mtu"] = 9000
    (line,) = problems(reference_dict)
    assert line.startswith("switches[0].mtu: 9000 is too small") and "9004" in line


@pytest.mark.parametrize("vlan", [0, 4095])
def test_vlan_id_range(reference_dict, vlan):
    reference_dict["fabric"]["storage_vlan"] = vlan
    (line,) = problems(reference_dict)
    assert line.startswith("fabric.storage_vlan:")
    assert ("less than or equal to 4094" in line) if vlan > 1 else ("greater than or equal to 1" in line)


def test_per_node_vlan_range_too_small(reference_dict):
    reference_dict["fabric"].update(
        vlan_mode="per-node", node_vlans={"start": 101, "end": 110}, node_subnets="10.79.0.0/20"
    )
    reference_dict["switches"][0]["routed"] = True
    out = problems(reference_dict)
    assert any(p.startswith("fabric.node_vlans: range 101-110 has 10 VLANs for 24 nodes") for p in out)
    assert any("need end >= 124" in p for p in out)


def test_one_namespace_on_two_nodes_names_both(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["namespace"] = {"enclosure": "data24", "drive": 5}
    data["nodes"][2]["namespace"] = {"enclosure": "data24", "drive": 5}
    out = [p for p in problems(data) if "drive data24/5" in p]
    assert out == [
        "nodes[0].namespace: drive data24/5 is assigned to 2 nodes: gpu01, gpu03 "
        "(ext4 is not a cluster filesystem: give each node its own drive)"
    ]


def test_more_nodes_than_drives(reference_dict):
    reference_dict["enclosures"][0]["drives"] = {"count": 20, "capacity_gb": 7680}
    out = problems(reference_dict)
    assert any(p.startswith("nodes: 24 nodes but only 20 drives") for p in out)


def test_drive_the_enclosure_does_not_have(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["namespace"] = {"enclosure": "data24", "drive": 30}
    (line,) = [p for p in problems(data) if p.startswith("nodes[0].namespace.drive")]
    assert "has no drive 30" in line and "1-24" in line


def test_unknown_enclosure_in_namespace(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["namespace"] = {"enclosure": "data42", "drive": 1}
    (line,) = [p for p in problems(data) if p.startswith("nodes[0].namespace.enclosure")]
    assert "unknown enclosure 'data42'" in line and "valid: data24" in line


def test_gpu_count_not_divisible_by_tp(reference_dict):
    reference_dict["nodes"]["generate"]["gpus"] = 6
    out = problems(reference_dict)
    assert out == [
        "nodes.generate.gpus: 24 nodes (gpu01, gpu02, gpu03, gpu04, gpu05, gpu06 and 18 more): 6 GPUs cannot run "
        "tensor parallel size 4 (GPU count must be a multiple of vllm.tensor_parallel_size, e.g. 4)"
    ]


def test_disk_budget_larger_than_namespace(reference_dict):
    reference_dict["enclosures"][0]["drives"] = {"count": 24, "capacity_gb": 100}
    reference_dict["kvcache"]["disk_budget_gib"] = 100
    out = problems(reference_dict)
    assert out == [
        "kvcache.disk_budget_gib: 100 GiB does not fit the drives of 24 nodes (gpu01, gpu02, gpu03, gpu04, gpu05, "
        "gpu06 and 18 more): 100 GB (decimal) holds about 90.25 GiB after ext4 overhead (use at most 90.24)"
    ]


def test_disk_budget_counts_gib_against_decimal_drive_capacity(reference_dict):
    # a 100 GB drive is 93.13 GiB; ext4 leaves about 90.25 GiB of it
    reference_dict["enclosures"][0]["drives"] = {"count": 24, "capacity_gb": 100}
    reference_dict["kvcache"]["disk_budget_gib"] = 90
    assert spec_from_dict(reference_dict).kvcache.disk_budget_gib == 90
    reference_dict["kvcache"]["disk_budget_gib"] = 91
    lines = [p for p in problems(reference_dict) if p.startswith("kvcache.disk_budget_gib")]
    assert len(lines) == 1 and "the drives of 24 nodes" in lines[0]
    assert "holds about 90.25 GiB" in lines[0] and "use at most 90.24" in lines[0]


def test_budgets_keep_their_earlier_names(reference_dict):
    del reference_dict["kvcache"]["cpu_budget_gib"], reference_dict["kvcache"]["disk_budget_gib"]
    reference_dict["kvcache"].update(cpu_budget_gb=30, disk_budget_gb=100)
    reference_dict["vllm"]["gpu_memory_gb"] = 80
    spec = spec_from_dict(reference_dict)
    assert (spec.kvcache.cpu_budget_gib, spec.kvcache.disk_budget_gib, spec.vllm.gpu_memory_gib) == (30, 100, 80)
    reference_dict["kvcache"]["cpu_budget_gib"] = 30
    (line,) = problems(reference_dict)
    assert line.startswith("kvcache: cpu_budget_gb is the earlier name of cpu_budget_gib")


@pytest.mark.parametrize(
    "nqn",
    [
        "nqn.2024-13.com.example:x",
        "iqn.2024-01.com.example:x",
        "nqn.2024-01.com.example",
        "nqn.24-01.com:x",
        "nqn.2024-01.com.example:" + "x" * 220,
    ],
)
def test_malformed_nqn(reference_dict, nqn):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["host_nqn"] = nqn
    (line,) = problems(data)
    assert line.startswith("nodes[0].host_nqn:")
    assert "NQN" in line


def test_malformed_drive_nqn(reference_dict):
    reference_dict["enclosures"][0]["drives"] = [{"slot": 1, "capacity_gb": 7680, "nqn": "drive-one"}]
    out = problems(reference_dict)
    assert any(p.startswith("enclosures[0].drives[0].nqn: malformed NQN 'drive-one'") for p in out)


def test_data24_slot_beyond_24(reference_dict):
    reference_dict["enclosures"][0]["drives"] = [{"slot": s, "capacity_gb": 7680} for s in range(1, 26)]
    out = problems(reference_dict)
    assert any(p.startswith("enclosures[0].drives[24].slot: a Data24 has slots 1-24") for p in out)


def test_unknown_switch_reference(reference_dict):
    reference_dict["nodes"]["generate"]["switch"] = "leaf9"
    out = problems(reference_dict)
    assert out == [
        "nodes.generate.switch: 24 nodes (gpu01, gpu02, gpu03, gpu04, gpu05, gpu06 and 18 more): "
        "unknown switch 'leaf9' (valid: leaf1)"
    ]


def test_invalid_enum_lists_choices(reference_dict):
    reference_dict["fabric"]["vlan_mode"] = "private"
    (line,) = problems(reference_dict)
    assert line.startswith("fabric.vlan_mode:") and "'shared'" in line and "'per-node'" in line


def test_noatime_is_required(reference_dict):
    reference_dict["kvcache"]["mount_options"] = ["relatime"]
    (line,) = problems(reference_dict)
    assert line.startswith("kvcache.mount_options:") and "noatime" in line


def test_linux_nvmet_needs_ssh_and_device_paths(lab_dict):
    del lab_dict["enclosures"][0]["management"]
    del lab_dict["enclosures"][0]["drives"]["device_path_pattern"]
    out = problems(lab_dict)
    assert any(p.startswith("enclosures[0].management.ssh:") for p in out)
    assert any(p.startswith("enclosures[0].drives[2].device_path:") for p in out)


def test_all_problems_reported_at_once(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["gpus"] = 3
    data["nodes"][1]["fabric_address"] = "10.1.1.1"
    out = problems(data)
    assert any(p.startswith("nodes[0].gpus") for p in out)
    assert any(p.startswith("nodes[1].fabric_address") for p in out)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.300", "'10.0.0.300' is not a valid IPv4 address: octet 300 is above 255"),
        ("256.1.1.1", "'256.1.1.1' is not a valid IPv4 address: octet 256 is above 255"),
        ("1.2.3", "'1.2.3' is not a valid IPv4 address: 3 parts (an IPv4 address has 4: a.b.c.d)"),
        ("1.2.3.4.5", "'1.2.3.4.5' is not a valid IPv4 address: 5 parts"),
        ("4294967295", "'4294967295' is not a valid IPv4 address: 1 part"),
        ("10.0.0.01", "'10.0.0.01' is not a valid IPv4 address: octet 01 has a leading zero"),
    ],
)
def test_ssh_address_that_is_not_a_valid_ipv4_address(reference_dict, address, expected):
    reference_dict["switches"][0]["management"]["ssh"]["address"] = address
    (line,) = problems(reference_dict)
    assert line.startswith(f"switches[0].management.ssh.address: {expected}")


def test_management_address_that_is_not_a_valid_ipv4_address(reference_dict):
    reference_dict["enclosures"][0]["management"]["address"] = "192.0.2.300"
    (line,) = problems(reference_dict)
    assert line == "enclosures[0].management.address: '192.0.2.300' is not a valid IPv4 address: octet 300 is above 255"


def test_generated_ssh_address_that_is_not_a_valid_ipv4_address(reference_dict):
    reference_dict["nodes"]["generate"]["ssh_address"] = "192.0.2.300"
    (line,) = problems(reference_dict)
    assert line == "nodes.generate.ssh_address: '192.0.2.300' is not a valid IPv4 address: octet 300 is above 255"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("gpu_01.example.com", "label 'gpu_01' has characters other than letters, digits and '-'"),
        ("-gpu01.example.com", "label '-gpu01' starts or ends with '-'"),
        ("gpu01-.example.com", "label 'gpu01-' starts or ends with '-'"),
        ("gpu01..example.com", "empty label (two dots in a row, or a leading dot)"),
        ("g" * 64 + ".example.com", "is 64 characters (at most 63)"),
        (".".join(["a" * 63] * 4), "255 characters (a host name has at most 253)"),
        ("gpu01.example.123", "the last label '123' is all-numeric"),
        ("gpu01 .example.com", "label 'gpu01 ' has characters other than letters, digits and '-'"),
        ("", "empty host name"),
    ],
)
def test_ssh_host_name_rules(reference_dict, host, expected):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["ssh"]["address"] = host
    (line,) = problems(data)
    assert line.startswith(f"nodes[0].ssh.address: {host!r} is neither an IP address nor a valid host name: ")
    assert expected in line


def test_ipv6_with_zone_is_not_a_host_name(reference_dict):
    reference_dict["switches"][0]["management"]["ssh"]["address"] = "fe80::1%eth0"
    (line,) = problems(reference_dict)
    assert line.startswith("switches[0].management.ssh.address: 'fe80::1%eth0' is not a valid IPv6 address")


@pytest.mark.parametrize(
    "host", ["gpu01", "gpu01.example.com", "gpu01.example.com.", "GPU-01.Example.COM", "1.2.3.4a", "2001:db8::5"]
)
def test_valid_ssh_host_names(reference_dict, host):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["ssh"]["address"] = host
    spec = spec_from_dict(data)
    assert spec.nodes[0].ssh.address in (host, "2001:db8::5")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "gpu01\n", "'gpu01\\n' is not a valid name"),
        ("fabric_interface", "eth1\n", "control character U+000A at position 4"),
        ("host_nqn", "nqn.2024-01.com.example:host-a\n", "control character U+000A"),
    ],
)
def test_trailing_newline_is_not_part_of_a_valid_value(reference_dict, field, value, expected):
    data = explicit_nodes(reference_dict)
    data["nodes"][0][field] = value
    assert any(p.startswith(f"nodes[0].{field}: {expected}") for p in problems(data))


# --- every problem is one line, whatever the spec holds ---


def test_unusual_key_is_quoted_in_the_path(reference_dict):
    reference_dict["kvcache"]["disk budget:\ngb"] = 10
    (line,) = problems(reference_dict)
    assert line.startswith("kvcache['disk budget:\\ngb']: unknown key 'disk budget:\\ngb'")
    assert "\n" not in line


def test_override_for_a_name_that_is_not_generated_is_quoted(reference_dict):
    reference_dict["nodes"]["overrides"] = {"gpu 01": {"gpus": 8}}
    (line,) = problems(reference_dict)
    assert line == "nodes.overrides['gpu 01']: no generated node has this name (generated: gpu01..gpu24)"


def test_line_breaks_in_quoted_values_are_escaped(reference_dict):
    data = explicit_nodes(reference_dict)
    data["nodes"][0]["host_id"] = data["nodes"][1]["host_id"] = "id\u2028one"
    out = problems(data)
    assert "nodes[0].host_id: control character U+2028 at position 2 (no spec value may hold one)" in out
    assert all(len(p.splitlines()) == 1 for p in out)


def test_a_large_wrong_value_is_abbreviated(reference_dict):
    reference_dict["pod"]["name"] = [list(range(1000))] * 1000
    (line,) = problems(reference_dict)
    assert line.startswith("pod.name: Input should be a valid string (got [[0, 1, 2, 3, 4, 5, ...], ")
    assert len(line) < 250


# --- the loader refuses what cannot be a spec, with the line and column ---


def load_problem(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "pod.yaml")
    (problem,) = info.value.problems
    return str(problem)


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_billion_laughs_is_refused():
    assert load_problem(BILLION_LAUGHS) == (
        "pod.yaml: the document holds 490329064 values once its aliases are expanded "
        "(at most 100000; a pod spec has a few thousand)"
    )


def test_aliases_of_a_long_text_are_refused():
    text = "a: &a " + "x" * 100_000 + "\nb: [" + ", ".join(["*a"] * 200) + "]\n"
    assert load_problem(text).startswith("pod.yaml: the document holds 20100002 characters of text once its aliases")


def test_alias_inside_its_own_value_is_refused():
    assert load_problem("pod: &a {name: *a}\n") == (
        "pod.yaml: YAML syntax error at line 1, column 6: an alias refers to a value that contains it (a cycle)"
    )


def test_nesting_deeper_than_the_bound_is_refused():
    assert load_problem("pod: " + "[" * 5000 + "]" * 5000 + "\n") == (
        "pod.yaml: YAML syntax error at line 1, column 55: values nested deeper than 50 levels"
    )
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 60))
    assert load_problem(chain) == (
        "pod.yaml: the document nests values 62 levels deep once its aliases are expanded (at most 50)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pod: {name: 1" + "0" * 5000 + "}\n", "line 1, column 13: cannot read '1000"),
        ("pod: {name: 2024-13-45}\n", "line 1, column 13: cannot read '2024-13-45' as timestamp: month must be in"),
        ("pod: {name: !!int x}\n", "line 1, column 13: cannot read 'x' as int"),
        ("pod: {? [a, b] : c}\n", "line 1, column 9: a list cannot be a mapping key"),
        ("pod:\n  name: a\x00\n", "line 2, column 10: character #x0000: special characters are not allowed"),
    ],
)
def test_unreadable_yaml_value_gives_line_and_column(text, expected):
    assert load_problem(text).startswith(f"pod.yaml: YAML syntax error at {expected}")


def test_merge_keys_are_read(lab_dict):
    text = yaml.safe_dump(lab_dict, sort_keys=False).replace("kind: linux-nvmet\n", "<<: {kind: linux-nvmet}\n")
    assert "<<:" in text
    assert load_spec_text(text).enclosures[0].kind == "linux-nvmet"


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_bytes(b"pod:\n  name: \xff\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: not UTF-8 text: byte #xff at offset 13"


# --- numbers are finite and bounded, patterns fill in only their placeholder ---


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_capacity_must_be_finite(reference_dict, value):
    reference_dict["enclosures"][0]["drives"]["capacity_gb"] = value
    (line,) = problems(reference_dict)
    assert line.startswith("enclosures[0].drives.capacity_gb: Input should be a finite number")


def test_budget_above_one_petabyte(reference_dict):
    reference_dict["kvcache"]["cpu_budget_gib"] = 1e308
    (line,) = problems(reference_dict)
    assert line == "kvcache.cpu_budget_gib: Input should be less than or equal to 1000000 (got 1e+308)"


@pytest.mark.parametrize(
    ("field", "pattern", "expected"),
    [
        ("name", "gpu{x}", "'gpu{x}': {x} is not a placeholder kvpod fills in (use {n} or {n:02d})"),
        ("name", "gpu{n.real}", "'gpu{n.real}': {n.real} is not a placeholder"),
        ("name", "gpu{n:>999999999}", "'gpu{n:>999999999}': {n:>999999999} is not a placeholder"),
        ("switch_port", "swp{n!r}", "'swp{n!r}': {n!r} is not a placeholder"),
        ("switch_port", "swp{", "'swp{' is not a valid pattern: Single '{' encountered in format string"),
    ],
)
def test_generator_patterns(reference_dict, field, pattern, expected):
    reference_dict["nodes"]["generate"][field] = pattern
    (line,) = problems(reference_dict)
    assert line.startswith(f"nodes.generate.{field}: {expected}")


def test_device_path_pattern(lab_dict):
    lab_dict["enclosures"][0]["drives"]["device_path_pattern"] = "/srv/nvmet/{drive}.img"
    (line,) = problems(lab_dict)
    assert line.startswith("enclosures[0].drives.device_path_pattern: '/srv/nvmet/{drive}.img': {drive} is not a")
    assert "(use {slot} or {slot:02d})" in line


def test_generated_ssh_addresses_past_the_address_space(reference_dict):
    reference_dict["nodes"]["generate"].update(ssh_address="255.255.255.250", ssh_address_step=1)
    (line,) = problems(reference_dict)
    assert line.startswith("nodes.generate: ssh_address_step 1: node 24 would be past the last IPv4 address")


def test_lmcache_extra_keys_are_strings(reference_dict):
    reference_dict["kvcache"]["lmcache_extra"] = {1: "a", "save_decode_cache": True}
    (line,) = problems(reference_dict)
    assert line == "kvcache.lmcache_extra[1]: Input should be a valid string (got 1)"


def test_kvcache_path_with_a_line_break(reference_dict):
    reference_dict["kvcache"]["path"] = "/mnt/kv\ncache"
    (line,) = problems(reference_dict)
    assert line.startswith("kvcache.path: control character U+000A at position 7")


def test_model_shape_and_context_length_are_bounded(reference_dict):
    reference_dict["vllm"]["model_shape"] = {"layers": 10**400, "kv_heads": 8, "head_dim": 128, "params_billion": 70}
    reference_dict["vllm"]["max_model_len"] = 10**10
    out = problems(reference_dict)
    assert any(p.startswith("vllm.model_shape.layers: Input should be less than or equal to 1000000") for p in out)
    assert "vllm.max_model_len: Input should be less than or equal to 1000000000 (got 10000000000)" in out


# -- multipath, reconnect and RoCE QoS -------------------------------------------------------------------------


def test_path_settings_default_to_the_kernels_fabrics_defaults_and_queue_depth(reference_dict):
    fab = spec_from_dict(reference_dict).fabric
    assert (fab.iopolicy, fab.ctrl_loss_tmo, fab.reconnect_delay) == ("queue-depth", 600, 10)
    assert (fab.fast_io_fail_tmo, fab.keep_alive_tmo, fab.nr_io_queues, fab.roce_qos) == (-1, 5, None, None)


def test_iopolicy_names_the_valid_policies(reference_dict):
    reference_dict["fabric"]["iopolicy"] = "service-time"
    (line,) = problems(reference_dict)
    assert line.startswith("fabric.iopolicy:")
    assert "'numa'" in line and "'round-robin'" in line and "'queue-depth'" in line


def test_fast_io_fail_must_be_below_ctrl_loss(reference_dict):
    reference_dict["fabric"].update(ctrl_loss_tmo=60, fast_io_fail_tmo=60)
    (line,) = problems(reference_dict)
    assert "fast_io_fail_tmo: 60 is not below ctrl_loss_tmo 60 (use -1 or 0-59" in line


def test_fast_io_fail_any_value_when_controllers_are_kept_forever(reference_dict):
    reference_dict["fabric"].update(ctrl_loss_tmo=-1, fast_io_fail_tmo=600)
    assert spec_from_dict(reference_dict).fabric.fast_io_fail_tmo == 600


def test_reconnect_delay_not_above_ctrl_loss(reference_dict):
    reference_dict["fabric"].update(ctrl_loss_tmo=30, reconnect_delay=60)
    (line,) = problems(reference_dict)
    assert "reconnect_delay: 60 is above ctrl_loss_tmo 30 (use 1-30" in line


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("keep_alive_tmo", 0, "greater than or equal to 1"),
        ("keep_alive_tmo", 600, "less than or equal to 120"),
        ("nr_io_queues", 0, "greater than or equal to 1"),
        ("fast_io_fail_tmo", -2, "greater than or equal to -1"),
    ],
)
def test_connect_numbers_have_ranges(reference_dict, field, value, valid):
    reference_dict["fabric"][field] = value
    (line,) = problems(reference_dict)
    assert line.startswith(f"fabric.{field}:") and valid in line


@pytest.mark.parametrize(
    ("qos", "where", "says"),
    [
        ({"priority": 8}, "fabric.roce_qos.priority", "less than or equal to 7"),
        ({"dscp": [64]}, "fabric.roce_qos.dscp", "64 is not a DSCP value (0-63)"),
        ({"dscp": [26, 26]}, "fabric.roce_qos.dscp", "repeats a value"),
        ({"dscp": []}, "fabric.roce_qos.dscp", "at least 1"),
    ],
)
def test_roce_qos_values(reference_dict, qos, where, says):
    reference_dict["fabric"]["roce_qos"] = qos
    (line,) = problems(reference_dict)
    assert line.startswith(where) and says in line
