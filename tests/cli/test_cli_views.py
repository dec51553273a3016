"""``kvpod plan`` readable at 80 columns (with its switch section; ``--wide`` for every value), ``kvpod size``'s
fleet table around the spec's own size, ``--version`` and the help's flags."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from deploy.cli import app, shared
from tests.conftest import LAB, REFERENCE, ROOT

runner = CliRunner()


@pytest.fixture
def columns_80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.out, "width", 80)


@pytest.mark.parametrize(
    "spec", [REFERENCE, LAB, ROOT / "examples" / "per-node-vlan" / "pod.yaml"], ids=lambda p: p.parent.name
)
def test_plan_fits_80_columns(columns_80, spec) -> None:
    result = runner.invoke(app, ["plan", str(spec)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert {"nodes", "enclosures", "switches"} <= {line.strip() for line in lines}


def test_plan_says_once_what_every_node_shares(columns_80) -> None:
    out = runner.invoke(app, ["plan", str(REFERENCE)]).stdout
    assert "every node: mount /mnt/kvcache (noatime)" in out
    assert out.count("/mnt/kvcache") == 1
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*gpu\d\d\s", line)]
    assert len(rows) == 24 and rows[9] == ["gpu10", "10.78.0.12/24", "leaf1/swp10", "data24/10"]
    assert "leaf1    cumulus-nvue, RoCE QoS   9216   100     24 nodes on swp1..swp24" in out
    assert "2 portals on swp31..swp32" in out
    assert "data24 NQNs: nqn.2024-01.com.example.pod:data24-driveNN" in out


def test_a_value_that_differs_between_nodes_is_a_column(columns_80) -> None:
    out = runner.invoke(app, ["plan", str(ROOT / "examples" / "per-node-vlan" / "pod.yaml")]).stdout
    header = next(line for line in out.splitlines() if line.strip().startswith("node "))
    assert header.split()[-1] == "vlan" and "every node: vlan" not in out
    assert "spare drives" in out and "7-24" in out


def test_plan_wide_shows_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.out, "width", 400)
    out = runner.invoke(app, ["plan", str(LAB), "--wide"]).stdout
    for value in (
        "root@127.0.0.1:2202",
        "nqn.2014-08.org.nvmexpress:uuid:",
        "nqn.2024-01.io.kvpod.lab:target-drive01",
        "3: nqn.2024-01.io.kvpod.lab:target-drive03",
        "eth1 (soft-roce)",
    ):
        assert value in out
    assert "switch ports" in out and "enclosure:target/iom-a/p1" in out


@pytest.mark.parametrize(
    ("spec", "rows"),
    [
        (REFERENCE, [(1, ""), (6, ""), (12, ""), (24, "this pod"), (48, "")]),
        (LAB, [(1, ""), (2, "this pod"), (3, "every drive of the spec"), (6, "")]),
        (
            ROOT / "examples" / "two-enclosures" / "pod.yaml",
            [(1, ""), (6, ""), (12, ""), (14, "this pod"), (16, "every drive of the spec"), (24, "")],
        ),
    ],
    ids=lambda v: getattr(v, "parent", None) and v.parent.name,
)
def test_size_fleet_table_is_built_around_the_spec(spec, rows) -> None:
    result = runner.invoke(app, ["size", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    fleet = json.loads(result.stdout)["fleet"]
    assert [(r["nodes"], r["note"]) for r in fleet] == rows


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"kvpod \d+\.\d+\.\d+\S*\n", result.stdout)


def commands(group, path=()):
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name)


ALL = list(commands(typer.main.get_command(app)))


@pytest.mark.parametrize("argv", ALL, ids=" ".join)
def test_help_shows_no_type_hint_on_flags(argv) -> None:
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout and "[default: True]" not in result.stdout


def test_reassign_yes_is_a_flag_that_defaults_to_asking() -> None:
    out = runner.invoke(app, ["reassign", "--help"], env={"COLUMNS": "200"}).stdout
    line = next(line for line in out.splitlines() if "--yes" in line)
    assert "do not ask before moving" in line and "default" not in line
