"""Target sheet (text and CSV) against golden files, and the target driver interface."""

from __future__ import annotations

import csv
import io
import sys
import types
from pathlib import Path

import pytest

from deploy.errors import KvpodError
from deploy.loader import load_spec
from deploy.plan import Plan, build_plan
from deploy.targets import ManualTarget, driver_for
from deploy.targets.section import SPARE
from deploy.targets.sheet import CSV_COLUMNS, render_target_csv, render_target_sheet
from tests.golden import assert_golden

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference() -> Plan:
    return build_plan(load_spec(ROOT / "inventories" / "reference" / "pod.yaml"))


@pytest.fixture(scope="module")
def lab() -> Plan:
    return build_plan(load_spec(ROOT / "inventories" / "lab" / "pod.yaml"))


def test_golden_reference_sheet(reference):
    assert_golden("reference-target-sheet.txt", render_target_sheet(reference))


def test_golden_reference_csv(reference):
    assert_golden("reference-target-sheet.csv", render_target_csv(reference))


def test_sheet_lists_every_port_and_subsystem(reference):
    text = render_target_sheet(reference)
    t = reference.targets[0]
    for p in t.portals:
        assert f"{p.address}/{p.prefix_length}" in text
        assert f"{p.switch} {p.switch_port}" in text
    for s in t.subsystems:
        line = next(line for line in text.splitlines() if s.nqn in line)
        assert (s.allowed_host_nqn or SPARE) in line
        if s.node:
            assert line.rstrip().endswith(s.node)
    assert "no public API" in text and "kvpod up" in text


def test_spares_admit_no_host(lab):
    text = render_target_sheet(lab)
    spare = next(line for line in text.splitlines() if "target-drive03" in line)
    assert SPARE in spare
    rows = list(csv.DictReader(io.StringIO(render_target_csv(lab))))
    row = next(r for r in rows if r["subsystem_nqn"].endswith("target-drive03"))
    assert row["spare"] == "yes" and row["allowed_host_nqn"] == "" and row["node"] == ""


def test_csv_sections(reference):
    rows = list(csv.DictReader(io.StringIO(render_target_csv(reference))))
    assert list(rows[0]) == CSV_COLUMNS
    t = reference.targets[0]
    assert [r["section"] for r in rows] == ["port"] * len(t.portals) + ["subsystem"] * len(t.subsystems)
    ports = [r for r in rows if r["section"] == "port"]
    assert [(r["iom"], r["address"], r["tagged"], r["switch_port"]) for r in ports] == [
        ("iom-a", "10.78.0.1", "no", "swp31"),
        ("iom-b", "10.78.0.2", "no", "swp32"),
    ]
    subs = [r for r in rows if r["section"] == "subsystem"]
    assert sum(r["spare"] == "no" for r in subs) == len(reference.nodes)


def test_per_node_sheet_has_routes():
    plan = build_plan(load_spec(ROOT / "examples" / "per-node-vlan" / "pod.yaml"))
    assert "10.79.0.0/24 via 10.78.0.254" in render_target_sheet(plan)
    rows = list(csv.DictReader(io.StringIO(render_target_csv(plan))))
    assert [(r["destination"], r["gateway"]) for r in rows if r["section"] == "route"] == [
        ("10.79.0.0/24", "10.78.0.254")
    ]


def test_managed_target_sheet_says_kvpod_configures_it(lab):
    text = render_target_sheet(lab)
    assert "kvpod configures this enclosure itself" in text
    assert "eth1.100" in text and "/srv/nvmet/drive1.img" in text


def test_data24_deploy_is_manual():
    driver = driver_for("data24")
    assert driver.managed is False
    with pytest.raises(ManualTarget, match="kvpod target sheet"):
        driver.deploy()
    assert isinstance(ManualTarget("x"), KvpodError)


def test_linux_nvmet_role_is_imported_only_when_deploying(monkeypatch):
    calls: list[str] = []
    fake = types.ModuleType("roles.nvmet_target")
    fake.nvmet_target = lambda: calls.append("deployed")
    monkeypatch.setitem(sys.modules, "roles.nvmet_target", fake)
    driver = driver_for("linux-nvmet")
    assert driver.managed is True
    driver.deploy()
    assert calls == ["deployed"]


def test_unknown_enclosure_kind_is_a_clear_error():
    with pytest.raises(KvpodError, match="no driver for enclosure kind 'eseries'"):
        driver_for("eseries")
