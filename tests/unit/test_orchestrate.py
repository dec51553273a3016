"""Pure parts of the orchestration: the handover refusal rules, the journal, the rollout around unreachable nodes."""

from __future__ import annotations

import pytest

from deploy.engine import HostResult, RunStats
from deploy.errors import KvpodError
from deploy.loader import load_spec, load_spec_text
from deploy.pipeline.handover import Handover, _moved_from, check_handover, survey
from deploy.pipeline.jobs import UpOptions
from deploy.pipeline.restarts import rolling_restarts
from deploy.plan import build_plan
from deploy.reassignment import parse_drive, plan_reassignment
from deploy.spec_edit import set_node_namespaces
from deploy.statedir import load_applied_plan, read_journal, save_applied_plan, write_journal
from tests.conftest import LAB, REFERENCE


def handover(**kw) -> Handover:
    base = {"releases": {}, "live": {}, "removed": [], "unreachable_holders": []}
    return Handover(**(base | kw))


def test_removed_node_holding_a_drive_needs_prune():
    plan = build_plan(load_spec(LAB))
    h = handover(live={"node3": {"nqn.x"}}, removed=["node3"])
    with pytest.raises(KvpodError, match="--prune"):
        check_handover(plan, h, UpOptions())
    check_handover(plan, h, UpOptions(prune=True))


def test_unreachable_old_holder_needs_force():
    plan = build_plan(load_spec(LAB))
    h = handover(unreachable_holders=["node1"])
    with pytest.raises(KvpodError, match="--force-unreachable"):
        check_handover(plan, h, UpOptions())
    check_handover(plan, h, UpOptions(force_unreachable=True))


def test_moved_from_names_the_old_holders():
    text = LAB.read_text()
    old = build_plan(load_spec_text(text))
    r = plan_reassignment(load_spec_text(text), parse_drive("target/1"), "node2", swap=True)
    new = build_plan(load_spec_text(set_node_namespaces(text, r.assignments)))
    assert _moved_from(old, new) == {"node1", "node2"}
    assert _moved_from(old, old) == set()
    assert _moved_from(None, new) == set()


def test_journal_and_applied_plan_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path))
    assert read_journal("p") is None
    write_journal("p", {"request": {"drive": "t/1"}, "last_step": "spec"})
    assert read_journal("p")["last_step"] == "spec"
    write_journal("p", None)
    assert read_journal("p") is None
    plan = build_plan(load_spec(REFERENCE))
    save_applied_plan(plan)
    assert load_applied_plan(plan.pod) == plan


# -- a node that cannot be reached ----------------------------------------------------------------------


class FakeSurvey:
    """What the survey read: per reachable node the NVMe subsystems it holds; the target's host access."""

    def __init__(self, held: dict[str, set[str]], admitted: dict[str, list[str]] | None = None):
        self.held, self.admitted = held, admitted

    def reachable(self, name: str) -> bool:
        return name in self.held or (name == "target" and self.admitted is not None)

    def read(self, name: str, fact, **kwargs):
        if name == "target":
            return {"subsystems": {nqn: {"allowed_hosts": hosts} for nqn, hosts in self.admitted.items()}}
        return {nqn: {"controllers": [{"transport": "rdma"}], "namespaces": []} for nqn in self.held[name]}


def swapped_plan():
    text = LAB.read_text()
    r = plan_reassignment(load_spec_text(text), parse_drive("target/1"), "node2", swap=True)
    return build_plan(load_spec_text(set_node_namespaces(text, r.assignments)))


def test_an_unreachable_node_is_neither_released_nor_passed_over(monkeypatch):
    """A dead node keeps its drive: it is never read as having let go of it, and a move of its drive is refused."""
    plan = build_plan(load_spec(LAB))
    nqn = {n.name: n.namespace.subsystem_nqn for n in plan.nodes}
    monkeypatch.setattr("deploy.pipeline.handover.load_applied_plan", lambda pod: plan)
    alive = FakeSurvey({"node1": {nqn["node1"]}})

    same = survey(plan, UpOptions(), alive)
    assert same.live == {"node1": {nqn["node1"]}, "node2": None}
    assert same.releases == {} and same.unreachable_holders == []
    check_handover(plan, same, UpOptions())  # nothing of node2's moves: the run goes on without it

    moved = survey(swapped_plan(), UpOptions(), alive)
    assert set(moved.releases) == {"node1"} and moved.unreachable_holders == ["node2"]
    with pytest.raises(KvpodError, match="node2 cannot be reached"):
        check_handover(swapped_plan(), moved, UpOptions())


def test_rollout_leaves_out_unreachable_nodes_and_reports_one_lost_while_restarting(monkeypatch):
    plan = build_plan(load_spec(LAB))
    results = [
        HostResult("node1", "node", status="changed", restart_pending=True),
        HostResult("node2", "node", status="unreachable", restart_pending=True, note="SSH connection lost"),
    ]
    batches: list[list[str]] = []

    def run_phase(role, hosts, deploy, **kwargs):
        batches.append([name for name, _ in hosts])
        return [HostResult(name, role, status="unreachable", note="SSH connection lost") for name, _ in hosts]

    monkeypatch.setattr("deploy.pipeline.restarts.run_phase", run_phase)
    rollout = rolling_restarts(plan, results, UpOptions(), None, RunStats())
    assert batches == [["node1"]]
    assert rollout is not None and rollout.stopped_after == 1
    assert [(f.node, f.unit, f.journal) for f in rollout.failed] == [("node1", "kvpod-vllm@0.service", [])]
    assert [(r.name, r.status, r.failed_step) for r in results] == [
        ("node1", "unreachable", "vLLM restart"),
        ("node2", "unreachable", None),
    ]


def test_without_an_applied_plan_the_targets_access_names_a_dead_holder(monkeypatch):
    """Another operator's machine has no applied plan: the target's host access still says who may hold what."""
    plan = build_plan(load_spec(LAB))
    node = {n.name: n for n in plan.nodes}
    monkeypatch.setattr("deploy.pipeline.handover.load_applied_plan", lambda pod: None)
    access = {n.namespace.subsystem_nqn: [n.host_nqn] for n in plan.nodes}
    alive = FakeSurvey({"node1": {node["node1"].namespace.subsystem_nqn}}, access)

    assert survey(plan, UpOptions(), alive).unreachable_holders == []
    moved = survey(swapped_plan(), UpOptions(), alive)
    assert moved.unreachable_holders == ["node2"]
    with pytest.raises(KvpodError, match="node2 cannot be reached"):
        check_handover(swapped_plan(), moved, UpOptions())
