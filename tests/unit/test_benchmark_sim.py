"""The fleet benchmark's simulated hosts print what the real tools print: kvpod's own state-read parser
turns their answer into values under which a converged node needs no change and no further read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pyinfra.api.deploy import add_deploy

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import deploy_run, fake_state
from deploy.engine import RunStats, SnapshotReader
from deploy.facts.snapshot import parse_snapshot, snapshot_script
from deploy.loader import load_spec, load_spec_text
from deploy.operations import planned_commands
from deploy.plan import build_plan
from deploy.shipped import lab_spec, reference_spec
from roles.node import node
from roles.node import reads as node_reads
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from fleet_spec import fleet_spec
from simhost import answer


def plans():
    yield from (build_plan(load_spec(p)).nodes[0] for p in (lab_spec(), reference_spec()))
    yield build_plan(load_spec(ROOT / "examples" / "per-node-vlan" / "pod.yaml")).nodes[1]
    yield build_plan(load_spec_text(fleet_spec(30), "fleet")).nodes[-1]


@pytest.mark.parametrize("plan", list(plans()), ids=lambda p: p.name)
def test_simulated_answer_parses_to_a_converged_node(plan) -> None:
    remote = fresh_node(plan)
    deploy_run(node, remote, {"kvpod_node": plan})
    values = parse_snapshot(answer(remote, snapshot_script(node_reads(plan))))
    state, host = fake_state(remote, {"kvpod_node": plan})
    stats = RunStats()
    SnapshotReader(state, host, stats).seed(values)
    add_deploy(state, node, host=host)
    assert [c for _, cmds in planned_commands(state, host) for c in cmds] == []
    assert stats.live_reads == {}


def test_fleet_spec_sizes() -> None:
    plan = build_plan(load_spec_text(fleet_spec(384), "fleet"))
    assert len(plan.nodes) == 384 and len(plan.targets) == 16
    assert len({n.namespace.subsystem_nqn for n in plan.nodes}) == 384


def test_fleet_spec_is_written_where_the_benchmark_reads_it(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(fleet_spec(2))
    assert [n.name for n in build_plan(load_spec(tmp_path / "pod.yaml")).nodes] == ["gpu001", "gpu002"]
