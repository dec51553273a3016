"""The CLI through typer's runner: exit codes, JSON plan, problems as lines, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from deploy.cli import app
from tests.conftest import REFERENCE

runner = CliRunner()


def write(tmp_path, data) -> str:
    path = tmp_path / "pod.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_validate_reference_exits_0():
    result = runner.invoke(app, ["validate", str(REFERENCE)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "24 nodes" in result.output


def test_plan_json_of_reference():
    result = runner.invoke(app, ["plan", str(REFERENCE), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    nodes = data["nodes"]
    assert len(nodes) == 24
    assert len({n["namespace"]["subsystem_nqn"] for n in nodes}) == 24
    assert len({n["fabric"]["address"] for n in nodes}) == 24
    assert {n["fabric"]["mtu"] for n in nodes} == {9000}
    assert {e["lmcache"]["max_local_cpu_size"] for n in nodes for e in n["engines"]} == {7.5}


def test_plan_without_spec_uses_embedded_reference():
    result = runner.invoke(app, ["plan", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["pod"] == "data24-pod"


def test_plan_table_lists_every_node():
    result = runner.invoke(app, ["plan", str(REFERENCE)])
    assert result.exit_code == 0
    assert all(f"gpu{i:02d}" in result.output for i in range(1, 25))


def test_one_drive_on_two_nodes_exits_1_naming_both(tmp_path, reference_dict):
    reference_dict["nodes"]["overrides"] = {"gpu07": {"namespace": {"enclosure": "data24", "drive": 3}}}
    result = runner.invoke(app, ["validate", write(tmp_path, reference_dict)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if "drive data24/3" in line]
    assert lines == [
        "nodes.overrides.gpu07.namespace: drive data24/3 is assigned to 2 nodes: gpu03, gpu07 "
        "(ext4 is not a cluster filesystem: give each node its own drive)"
    ]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "content",
    ["pod: [unclosed\n", "just a string\n", "", "pod: {name: x}\n", "{pod: {name: UPPER}, enclosures: 3, nodes: 4}\n"],
)
def test_bad_input_never_tracebacks(tmp_path, content):
    result = runner.invoke(app, ["validate", write(tmp_path, content)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.strip()


def test_out_of_range_octet_in_ssh_address_exits_1(tmp_path, reference_dict):
    reference_dict["switches"][0]["management"]["ssh"]["address"] = "10.0.0.300"
    result = runner.invoke(app, ["validate", write(tmp_path, reference_dict)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "switches[0].management.ssh.address: '10.0.0.300' is not a valid IPv4 address: octet 300 is above 255"
    )


def test_missing_file_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "file not found" in result.stderr


def test_size_of_reference_matches_the_brief():
    result = runner.invoke(app, ["size", str(REFERENCE), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    node = data["node"]
    assert node["kv_bytes_per_token"] == 327680
    assert node["session_gib"] == 10  # 320 KiB x 32768 tokens
    # 4 x 80 GiB x 0.90 - 70e9 x 2 bytes of weights
    assert node["kv_pages_gib"] == pytest.approx(288 - 140e9 / 2**30)
    # the node budgets in GiB, as LMCache allocates them: 4 engines of 7.5 GiB DRAM and 25 GiB disk
    assert (node["max_local_cpu_size"], node["max_local_disk_size"]) == (7.5, 25)
    assert node["cpu_bytes_per_node"] == 30 * 2**30 and node["disk_bytes_per_node"] == 100 * 2**30
    assert (node["sessions_vram"], node["sessions_dram"], node["sessions_disk"]) == (15, 3, 10)
    assert [(r["drives"], r["gpus"], r["sessions"], r["note"]) for r in data["fleet"]] == [
        (1, 4, 16, ""),
        (6, 24, 96, ""),
        (12, 48, 192, ""),
        (24, 96, 384, "this pod"),
        (48, 192, 768, ""),
    ]


def test_size_unknown_model_asks_for_shape(tmp_path, reference_dict):
    reference_dict["vllm"]["model"] = "acme/mystery-model"
    result = runner.invoke(app, ["size", write(tmp_path, reference_dict)])
    assert result.exit_code == 1 and "vllm.model_shape" in result.stderr


def test_installed_console_script_runs():
    """The real entry point (not the runner): exit code and stderr as a user sees them."""
    bad = subprocess.run(
        [sys.executable, "-c", "from deploy.cli import main; main()", "validate", "/nonexistent/pod.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "file not found" in bad.stderr and "Traceback" not in bad.stderr


def test_switch_render_prints_the_nvue_patch():
    result = runner.invoke(app, ["switch", "render", str(REFERENCE)])
    assert result.exit_code == 0
    assert "- set:" in result.stdout and "swp24" in result.stdout and "description: gpu24" in result.stdout


def test_target_sheet_and_csv():
    sheet = runner.invoke(app, ["target", "sheet", str(REFERENCE)])
    assert sheet.exit_code == 0 and "data24-drive24" in sheet.stdout
    csv = runner.invoke(app, ["target", "sheet", str(REFERENCE), "--csv"])
    rows = [r for r in csv.stdout.splitlines() if r.startswith("subsystem,")]
    assert len(rows) == 24
