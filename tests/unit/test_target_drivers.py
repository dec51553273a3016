"""Targets dispatch through the driver registry; several enclosures on one server; the kill hook's selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import deploy
from pyinfra.operations import files

from deploy import targets
from deploy.engine import RunStats
from deploy.hosts import target_hosts
from deploy.loader import load_spec_text
from deploy.orchestrate import run_jobs
from deploy.pipeline.jobs import Scope, UpOptions
from deploy.pipeline.phases import TARGET
from deploy.plan import Plan, build_plan
from deploy.shipped import lab_spec
from deploy.targets import HOST_DATA_KEY, TargetDriver, current_targets, managed_groups
from deploy.verify_runner import target_names
from roles.nvmet_target import nvmet_ports, reads
from tests.fault_hooks import kill_selected
from tests.two_enclosures import SECOND, SECOND_PORTAL, second_nqn, two_enclosures

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOY = "toy-shelf"


def _toy_plan(managed: bool, marker_dir: Path, monkeypatch) -> Plan:
    """The lab plan with its enclosure of a kind registered here alone (managed: configured on @local)."""

    @deploy("toy shelf")
    def toy_shelf() -> None:
        for t in current_targets():
            files.file(name=f"{t.name} configured", path=str(marker_dir / f"{t.name}.configured"), touch=False)

    class ToyShelf(TargetDriver):
        kind = TOY

        def deploy(self) -> None:
            toy_shelf()

    ToyShelf.managed = managed
    monkeypatch.setitem(targets._REGISTRY._drivers, TOY, ToyShelf())
    plan = build_plan(load_spec_text(lab_spec().read_text()))
    toy = plan.targets[0].model_copy(update={"kind": TOY, "ssh": None})
    return plan.model_copy(update={"targets": [toy]})


def test_a_registered_kind_runs_in_the_target_phase(tmp_path, monkeypatch):
    plan = _toy_plan(True, tmp_path, monkeypatch)
    assert [name for name, _ in target_hosts(plan)] == ["@local"]
    first = run_jobs(TARGET, Scope(plan, UpOptions()), None, RunStats())
    assert [(r.name, r.status) for r in first] == [("target", "changed")], [(r.stderr, r.note) for r in first]
    assert (tmp_path / "target.configured").exists()
    again = run_jobs(TARGET, Scope(plan, UpOptions()), None, RunStats())
    assert [(r.name, r.status) for r in again] == [("target", "unchanged")]
    assert target_names(plan) == []  # verify logs in only where the driver says it is checked on its host


def test_an_unmanaged_registered_kind_is_manual(tmp_path, monkeypatch):
    plan = _toy_plan(False, tmp_path, monkeypatch)
    assert target_hosts(plan) == []
    results = run_jobs(TARGET, Scope(plan, UpOptions()), None, RunStats())
    assert [(r.name, r.status) for r in results] == [("target", "manual")]
    assert not (tmp_path / "target.configured").exists()


@pytest.fixture(scope="module")
def two() -> Plan:
    return build_plan(load_spec_text(two_enclosures(lab_spec().read_text())))


def test_two_enclosures_on_one_server_share_one_host(two):
    (name, data), *rest = target_hosts(two)
    assert not rest and name == "target"
    assert [t.name for t in data[HOST_DATA_KEY]] == ["target", SECOND]
    assert [[t.name for t in g] for g in managed_groups(two)] == [["target", SECOND]]


def test_two_enclosures_keep_the_lab_addresses_and_number_ports_per_server(two):
    lab = build_plan(load_spec_text(lab_spec().read_text()))
    assert {n.name: n.fabric.address for n in two.nodes} == {n.name: n.fabric.address for n in lab.nodes}
    assert two.targets[0].portals == lab.targets[0].portals
    ports = nvmet_ports(two.targets)
    assert len({p["port_id"] for p in ports}) == len(ports) == 3
    shelf = next(p for p in ports if p["traddr"] == SECOND_PORTAL)
    assert shelf["subsystems"] == [second_nqn(1), second_nqn(2)]  # a port serves its own enclosure only
    node2 = next(n for n in two.nodes if n.name == "node2")
    assert node2.namespace.subsystem_nqn == second_nqn(1)
    assert [p.address for p in node2.namespace.portals] == [SECOND_PORTAL]


def test_enclosures_without_a_shared_server_keep_their_own_port_numbers():
    lab = lab_spec().read_text()
    text = two_enclosures(lab).replace("        port: 2201\n        key", "        port: 2299\n        key", 1)
    plan = build_plan(load_spec_text(text.replace("port: 2201", "port: 2298")))
    assert [p.port_id for t in plan.targets for p in t.portals] == [1, 2, 1]
    assert len(target_hosts(plan)) == 2


def test_one_read_covers_both_enclosures_and_one_networkd_file_set_per_nic(two):
    out = reads(two.targets)
    paths = {dict(r.kwargs).get("path") for r in out} - {None}
    networkd = {p for p in paths if p.startswith("/etc/systemd/network/")}
    assert len(networkd) == 3  # eth1: parent, VLAN netdev, VLAN network
    backing = {p for p in paths if p.startswith("/srv/nvmet/")}
    assert f"/srv/nvmet/{SECOND}-drive1.img" in backing and "/srv/nvmet/drive3.img" in backing


@pytest.mark.parametrize(
    ("spec", "moment", "host", "names", "selected"),
    [
        ("after:ext4 on", "after", "node1", {"ext4 on nqn.x:d1"}, True),
        ("after:ext4 on", "before", "node1", {"ext4 on nqn.x:d1"}, False),
        ("before:mnt-kvcache.mount", "before", "node2", {"mnt-kvcache.mount"}, True),
        ("before:mnt-kvcache.mount", "before", "node2", {"mnt-kvcache.mount enabled"}, True),
        ("after@node2:d2 connected", "after", "node2", {"nqn.x:d1 connected", "nqn.x:d2 connected"}, True),
        ("after@node2:d2 connected", "after", "node1", {"nqn.x:d1 connected", "nqn.x:d2 connected"}, False),
        ("after:connected", "after", "node1", {"boot-time connect script"}, False),
        ("after:", "after", "node1", {"anything"}, False),
        ("ext4 on", "after", "node1", {"ext4 on nqn.x:d1"}, False),
        (None, "after", "node1", {"ext4 on nqn.x:d1"}, False),
    ],
)
def test_kill_hook_selection(spec, moment, host, names, selected):
    assert kill_selected(spec, moment, host, names) is selected
