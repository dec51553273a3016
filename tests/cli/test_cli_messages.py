"""Error output that scales: one line per distinct problem, counted where it hits many nodes, names in numeric
order, and the spec's own words (no model class names). Each spec is the reference pod with one mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deploy.cli import app
from tests.conftest import REFERENCE

FIRST_SIX = "gpu01, gpu02, gpu03, gpu04, gpu05, gpu06 and 18 more"


def validate(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    spec = tmp_path / "pod.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(spec)])
    return result.exit_code, result.stderr.splitlines()


def edited(old: str, new: str) -> str:
    text = REFERENCE.read_text()
    assert old in text
    return text.replace(old, new)


def as_yaml(change) -> str:
    data = yaml.safe_load(REFERENCE.read_text())
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


CASES = {
    "one port for every generated node": (
        edited("switch_port: swp{n}", "switch_port: swp1"),
        "nodes.generate.switch_port: 24 nodes get the same port 'swp1' on leaf1 (use {n} for the node number, "
        "e.g. 'swp{n}')",
    ),
    "a disk budget no drive holds": (
        edited("disk_budget_gib: 100", "disk_budget_gib: 8000"),
        f"kvcache.disk_budget_gib: 8000 GiB does not fit the drives of 24 nodes ({FIRST_SIX}): 7680 GB (decimal) "
        "holds about 6968.27 GiB after ext4 overhead (use at most 6968.27)",
    ),
    "one SSH endpoint for every node": (
        edited("ssh_address: 192.0.2.101", "ssh_address: 192.0.2.101\n    ssh_address_step: 0"),
        f"nodes.generate.ssh_address_step: 24 nodes share the SSH endpoint 192.0.2.101:22 ({FIRST_SIX}; each node "
        "needs its own: give ssh_address_step or ssh_port_step above 0)",
    ),
    "a GPU count that tensor parallelism cannot use": (
        edited("    gpus: 4", "    gpus: 3"),
        f"nodes.generate.gpus: 24 nodes ({FIRST_SIX}): 3 GPUs cannot run tensor parallel size 4 (GPU count must "
        "be a multiple of vllm.tensor_parallel_size, e.g. 4)",
    ),
    "a subnet too small": (
        edited("subnet: 10.78.0.0/24 ", "subnet: 10.78.0.0/28 "),
        "fabric.subnet: 10.78.0.0/28 has 14 host addresses: 12 more addresses needed, for gpu13, gpu14, gpu15, "
        "gpu16, gpu17, gpu18 and 6 more (use a larger fabric.subnet)",
    ),
    "a section left empty": (
        as_yaml(lambda d: d.update(pod=None)),
        "pod: expected a mapping with keys name (got null)",
    ),
    "an address where a mapping belongs": (
        as_yaml(lambda d: d["switches"][0]["management"].update(ssh="192.0.2.101")),
        "switches[0].management.ssh: expected a mapping with keys address (optional: port, user, key, sudo, "
        "known_hosts_file, strict_host_key_checking) (got '192.0.2.101')",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_per_distinct_problem(tmp_path: Path, case: str) -> None:
    text, line = CASES[case]
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [line, "spec invalid: 1 problem"]


def test_no_model_class_name_in_any_message(tmp_path: Path) -> None:
    def wrong_types(d: dict) -> None:
        d.update(fabric=5, kvcache=[1], pod=None)
        d["nodes"] = [7]

    code, lines = validate(tmp_path, as_yaml(wrong_types))
    assert code == 1 and lines[-1] == "spec invalid: 4 problems"
    assert lines[0] == "pod: expected a mapping with keys name (got null)"
    assert lines[1].startswith("fabric: expected a mapping with keys mtu, vlan_mode, ")
    assert "instance of" not in "\n".join(lines)
    assert "nodes[0]: expected a mapping with keys name, ssh, fabric_interface (optional: rdma, " in lines[2]


def twelve_nodes(**node_changes) -> str:
    data = yaml.safe_load(REFERENCE.read_text())
    gen = data["nodes"]["generate"]
    nodes = []
    for n in range(1, 13):
        node = {
            "name": f"node{n}",
            "ssh": {"address": f"192.0.2.{100 + n}"},
            "fabric_interface": gen["fabric_interface"],
            "switch": "leaf1",
            "switch_port": f"swp{n}",
        }
        node.update(node_changes.get(f"node{n}", {}))
        nodes.append(node)
    data["nodes"] = nodes
    return yaml.safe_dump(data, sort_keys=False)


def test_problems_and_names_in_numeric_order(tmp_path: Path) -> None:
    text = twelve_nodes(node10={"gpus": 3}, node2={"gpus": 3}, node11={"switch_port": "swp3"})
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [
        "nodes[1].gpus: 3 GPUs cannot run tensor parallel size 4 (GPU count must be a multiple of "
        "vllm.tensor_parallel_size, e.g. 4)",
        "nodes[2].switch_port: switch port leaf1/swp3 is cabled to 2 devices: nodes[2], nodes[10] (one device per "
        "port)",
        "nodes[9].gpus: 3 GPUs cannot run tensor parallel size 4 (GPU count must be a multiple of "
        "vllm.tensor_parallel_size, e.g. 4)",
        "spec invalid: 3 problems",
    ]


def test_limit_lists_the_valid_nodes_in_numeric_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path / "state"))
    spec = tmp_path / "pod.yaml"
    spec.write_text(twelve_nodes())
    result = CliRunner().invoke(app, ["check", str(spec), "--limit", "node13"])
    assert result.exit_code == 1
    valid = ", ".join(f"node{n}" for n in range(1, 13))
    assert result.stderr == f"error: --limit: unknown node node13 (valid: {valid})\n"


def test_fabric_interface_has_no_default(tmp_path: Path) -> None:
    """A missing NIC is an error, not eth1: on a node whose eth1 is another network, kvpod would take it over."""
    nic = "the NIC on the storage fabric, e.g. ens1f0np0 (no default: `ip -br link` on the node lists them)"
    code, lines = validate(tmp_path, edited("    fabric_interface: ens1f0np0\n", ""))
    assert (code, lines) == (
        1,
        [f"nodes.generate.fabric_interface: required but missing: {nic}", "spec invalid: 1 problem"],
    )
    text = twelve_nodes()
    code, lines = validate(tmp_path, text.replace("  fabric_interface: ens1f0np0\n", "", 1))
    assert (code, lines) == (1, [f"nodes[0].fabric_interface: required but missing: {nic}", "spec invalid: 1 problem"])


def test_counts_are_pluralised(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    result = CliRunner().invoke(app, ["validate", str(ROOT / "examples" / "single-node" / "pod.yaml")])
    assert result.stdout == "valid: pod single, 1 node, 1 drive, 0 switches\n"
    result = CliRunner().invoke(app, ["validate", str(REFERENCE)])
    assert result.stdout == "valid: pod data24-pod, 24 nodes, 24 drives, 1 switch\n"
