"""``kvpod up`` on the lab's two nodes of two engines each, behind a recording runner (``tests/recorded_pod.py``):
the rollout restarts only the engines the node phase left due, in restart order and health-gated; the report
names them; a stopped rollout keeps exactly the engines still due, and the next run restarts those alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.names import RESTART_ENGINES_KEY
from deploy.statedir import load_pending_units, pending_restarts_path, save_applied_plan
from tests.cli.test_up_wiring import lab_text, plan_of
from tests.recorded_pod import RecordedPod, install, kvpod

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

E0, E1 = "kvpod-vllm@0.service", "kvpod-vllm@1.service"
POD = "kvpod-lab"


@pytest.fixture
def lab_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """The applied lab pod; node1's engine 1 changed (its LMCache env file), node2's engines all changed."""
    text = lab_text()
    plan = plan_of(text)
    assert [n.engine_units() for n in plan.nodes] == [[E0, E1], [E0, E1]]
    pod = RecordedPod.as_applied(plan)
    pod.restart_pending = {"node1", "node2"}
    pod.restart_units = {"node1": [E1], "node2": [E0, E1]}
    install(monkeypatch, pod, tmp_path / "state")
    save_applied_plan(plan)
    (tmp_path / "pod.yaml").write_text(text)

    def run(command: str, *args: str) -> tuple[int, str, dict]:
        report = tmp_path / f"{command}.json"
        report.unlink(missing_ok=True)
        options = ("--yes", "--no-verify") if command == "up" else ()
        spec = str(tmp_path / "pod.yaml")
        code, out = kvpod(monkeypatch, capsys, command, spec, *options, "--report", str(report), *args)
        return code, out, json.loads(report.read_text()) if report.exists() else {}

    return pod, run


def restarted(pod: RecordedPod) -> list[dict[str, list[str]]]:
    """Each restart batch: the engine units it restarted, per node."""
    return [{n: d[RESTART_ENGINES_KEY] for n, d in s.data.items()} for s in pod.phases() if s.role == "restart"]


def converged_again(pod: RecordedPod) -> None:
    """The configuration is on every node now: the next survey finds nothing to change."""
    pod.steps.clear()
    pod.unhealthy = set()
    pod.status = dict.fromkeys(["@local", "target", "node1", "node2"], "unchanged")


def test_only_the_changed_engines_restart_one_batch_at_a_time(lab_pod) -> None:
    pod, run = lab_pod
    code, out, report = run("up")
    assert code == 0, out
    assert restarted(pod) == [{"node1": [E1]}, {"node2": [E0]}, {"node2": [E1]}], "node1's engine 0 keeps running"
    rollout = report["rollout"]
    assert rollout["batches"] == [[f"node1/{E1}"], [f"node2/{E0}"], [f"node2/{E1}"]]
    assert rollout["completed_batches"] == 3 and rollout["failed_engines"] == []
    for name in ("node1", "node2"):
        host = report["hosts"][name]
        assert host["restart_pending"] is False and host["restart_units"] == []
        assert "vLLM restarted (rolling)" in host["changes"]
    assert load_pending_units(POD) == {}


def test_a_whole_node_batch_still_takes_only_the_due_engines(lab_pod) -> None:
    pod, run = lab_pod
    code, out, report = run("up", "--max-unavailable", "2")
    assert code == 0, out
    assert restarted(pod) == [{"node1": [E1]}, {"node2": [E0, E1]}]
    assert report["rollout"]["batches"] == [[f"node1/{E1}"], [f"node2/{E0}", f"node2/{E1}"]]


def test_a_stopped_rollout_keeps_exactly_the_engines_still_due(lab_pod) -> None:
    """node2's engine 0 restarted healthy, its engine 1 did not: only engine 1 is still due on node2; the rerun
    restarts it alone and forgets the record."""
    pod, run = lab_pod
    pod.unhealthy = {f"node2/{E1}"}
    code, out, report = run("up")
    assert code == 2, out
    assert restarted(pod) == [{"node1": [E1]}, {"node2": [E0]}, {"node2": [E1]}]
    assert [(f["node"], f["unit"]) for f in report["rollout"]["failed_engines"]] == [("node2", E1)]
    assert report["hosts"]["node2"]["restart_units"] == [E1]
    assert load_pending_units(POD) == {"node2": [E1]}
    converged_again(pod)
    code, out, report = run("up")
    assert code == 0, out
    assert restarted(pod) == [{"node2": [E1]}], "node1 restarted healthy; node2's engine 0 too"
    assert load_pending_units(POD) == {}


def test_an_engine_that_came_back_healthy_in_a_stopped_batch_is_no_longer_due(lab_pod) -> None:
    """node2's two engines restart in one batch; engine 0 serves again, engine 1 does not: engine 1 alone stays
    due, and the rerun restarts it alone."""
    pod, run = lab_pod
    pod.unhealthy = {f"node2/{E1}"}
    code, out, report = run("up", "--max-unavailable", "2")
    assert code == 2, out
    assert restarted(pod) == [{"node1": [E1]}, {"node2": [E0, E1]}]
    assert [(f["node"], f["unit"]) for f in report["rollout"]["failed_engines"]] == [("node2", E1)]
    assert load_pending_units(POD) == {"node2": [E1]}
    converged_again(pod)
    code, out, report = run("up", "--max-unavailable", "2")
    assert code == 0, out
    assert restarted(pod) == [{"node2": [E1]}]
    assert load_pending_units(POD) == {}


def test_a_rollout_stopped_at_its_first_batch_leaves_each_nodes_engines_due(lab_pod) -> None:
    pod, run = lab_pod
    pod.unhealthy = {"node1"}
    code, out, report = run("up")
    assert code == 2, out
    assert restarted(pod) == [{"node1": [E1]}]
    assert load_pending_units(POD) == {"node1": [E1], "node2": [E0, E1]}
    converged_again(pod)
    code, out, report = run("check")
    assert code == 1 and "restart kvpod-vllm@1.service" in out, "the diff names the engines still due"
    assert {n: report["hosts"][n]["restart_units"] for n in ("node1", "node2")} == {"node1": [E1], "node2": [E0, E1]}
    assert all(report["hosts"][n]["restart_pending"] for n in ("node1", "node2"))
    assert restarted(pod) == []
    code, out, _ = run("up", "--limit", "node1")
    assert code == 0, out
    assert restarted(pod) == [{"node1": [E1]}]
    assert load_pending_units(POD) == {"node2": [E0, E1]}, "the other node's engines stay due, exactly"


def test_an_engine_due_this_run_joins_the_ones_left_due(lab_pod) -> None:
    pod, run = lab_pod
    pod.unhealthy = {"node1"}
    run("up")
    converged_again(pod)
    pod.status["node1"] = "would-change"  # this run changes node1's engine 0 (its env file)
    pod.restart_pending, pod.restart_units = {"node1"}, {"node1": [E0]}
    code, out, _ = run("up", "--limit", "node1", "--max-unavailable", "2")
    assert code == 0, out
    assert restarted(pod) == [{"node1": [E0, E1]}]


def test_a_record_without_engines_restarts_every_engine_of_its_node(lab_pod) -> None:
    """A record kept by a release that named nodes only still restarts that node (all of its engines)."""
    pod, run = lab_pod
    path = pending_restarts_path(POD)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(["node2"]))
    converged_again(pod)
    code, out, _ = run("up")
    assert code == 0, out
    assert restarted(pod) == [{"node2": [E0]}, {"node2": [E1]}]
    assert load_pending_units(POD) == {}
