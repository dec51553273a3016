"""The one pipeline: a single ordered list of phases that the survey evaluates and the apply runs, job for job."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import Inventory

from deploy.engine import HostResult
from deploy.names import RELEASE_KEY
from deploy.pipeline import phases
from deploy.pipeline.jobs import LOCAL, HostJob, Scope, UpOptions
from deploy.pipeline.phases import PHASES, Phase, evaluations, reads_for, runs, survey_hosts
from deploy.pipeline.restarts import ROLLED_OUT, remember_pending
from deploy.release import ReleaseRequest
from deploy.rollout import Rollout
from deploy.statedir import load_pending_restarts, save_applied_plan, save_pending_restarts
from tests.cli.test_up_wiring import handovers, lab_text, plan_of
from tests.recorded_pod import RecordedPod, install, kvpod

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_phases_are_one_ordered_list() -> None:
    assert [p.name for p in PHASES] == ["switch", "release", "target", "node"]
    assert [p.checkpoint for p in PHASES] == [None, "release", "target", "nodes"]
    assert [p.stops for p in PHASES] == [True, True, True, False], "only the last phase lets the rollout go on"


def test_the_survey_reads_each_host_once_with_every_read_of_its_jobs() -> None:
    plan = plan_of(lab_text())
    limited = Scope(plan, UpOptions(limit=["node1"]))
    hosts = survey_hosts(limited.whole_pod(), [])
    names = [name for name, _, _ in hosts]
    assert LOCAL not in names, "the lab's bridge is surveyed on its own"
    assert sorted(names) == ["node1", "node2", "target"], "--limit or not, the handover needs every node read"
    node = next(j for j in PHASES[-1].jobs(limited.whole_pod()) if j.name == "node2")
    assert dict((n, r) for n, _, r in hosts)["node2"] == list(node.reads)


def test_each_nodes_reads_are_worked_out_once_for_the_survey_and_the_run(monkeypatch) -> None:
    import roles.node

    plan = plan_of(lab_text())
    real, asked = roles.node.reads, []
    monkeypatch.setattr(roles.node, "reads", lambda part: asked.append(part.name) or real(part))
    reach = Scope(plan, UpOptions()).whole_pod()
    surveyed = PHASES[-1].jobs(reach)
    run = PHASES[-1].jobs(reach.decided(UpOptions(limit=["node2"]), None))
    assert sorted(asked) == ["node1", "node2"]
    assert [j.name for j in run] == ["node2"]
    assert run[0].reads == next(j.reads for j in surveyed if j.name == "node2") == tuple(real(plan.nodes[1]))
    assert PHASES[-1].jobs(Scope(plan, UpOptions())) and len(asked) == 4, "a scope of its own works them out anew"


def test_a_releasing_node_is_evaluated_once_with_both_deploys_and_local_jobs_apart(monkeypatch) -> None:
    from roles.node import node
    from roles.node_release import node_release, reads

    base = lab_text()
    _, new_text, _ = handovers()["swap"]
    plan = plan_of(new_text)
    r1, r2 = ReleaseRequest(None, "/mnt/kvcache"), ReleaseRequest(None, "/mnt/kvcache", purge=True)
    handover = type("H", (), {"releases": {"node1": r1, "node2": r2}})()
    scope = Scope(plan, UpOptions(), plan_of(base), handover)
    walk = dict((p.name, items) for p, items in evaluations(scope))
    assert [(e.job.name, e.deploys) for e in walk["release"]] == [
        ("node1", (node_release, node)),
        ("node2", (node_release, node)),
    ]
    assert walk["release"][0].payload[RELEASE_KEY] is r1 and "kvpod_wipe" in walk["release"][0].payload
    releases = PHASES[1].jobs(scope)
    assert [j.reads for j in releases] == [tuple(reads(r1)), tuple(reads(r2))], "a release reads in one command"
    assert walk["node"] == [], "already evaluated in the release phase"
    assert [e.job.name for e in walk["switch"]] == [LOCAL]


def _job(name: str, deploy, payload: dict | None = None, reads: tuple = ()) -> HostJob:
    return HostJob(name, {"ssh_hostname": name} if name != LOCAL else {}, payload or {}, deploy, reads, name)


def test_runs_group_hosts_by_deploy_a_host_once_and_serial_phases_one_by_one() -> None:
    def a() -> None: ...

    def b() -> None: ...

    jobs = [_job("h1", a), _job(LOCAL, a), _job("h2", b), _job(LOCAL, a), _job("h3", a)]
    grouped = runs(Phase("x", lambda s: jobs), jobs)
    assert [[j.name for j in r] for r in grouped] == [["h1", LOCAL, "h3"], ["h2"], [LOCAL]]
    assert [[j.name for j in r] for r in runs(Phase("x", lambda s: jobs, serial=True), jobs)] == [
        ["h1"],
        [LOCAL],
        ["h2"],
        [LOCAL],
        ["h3"],
    ]


def test_a_run_finds_each_hosts_reads_in_the_host_data_pyinfra_hands_back() -> None:
    """The reads of a job are looked up by the plan objects its host data carry, through pyinfra's own host data."""
    plan = plan_of(lab_text())
    run = PHASES[-1].jobs(Scope(plan, UpOptions()))
    lookup = reads_for(run)
    assert lookup is not None
    inventory = Inventory(([(j.name, j.host_data) for j in run], {}))
    assert {h.name: lookup(h.data.dict()) for h in inventory} == {j.name: list(j.reads) for j in run}
    assert all(lookup(h.data.dict()) for h in inventory)
    release = [_job("node1", None, {RELEASE_KEY: object()})]
    assert reads_for(release) is None, "a deploy without reads reads live, with no snapshot command"


# -- the survey and the apply walk the same list ---------------------------------------------------------------


@pytest.fixture
def up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    def run(kind: str) -> RecordedPod:
        applied_text, new_text, args = handovers()[kind]

        pod = RecordedPod.as_applied(plan_of(applied_text))
        install(monkeypatch, pod, tmp_path / "state")
        save_applied_plan(plan_of(applied_text))
        spec = tmp_path / "pod.yaml"
        spec.write_text(new_text)
        code, out = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", *args)
        assert code == 0, out
        return pod

    return run


def walked(pod: RecordedPod) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(role, host) as the survey evaluated them, and as the apply ran them (each host at its first phase), in the
    order of the phases (the survey evaluates the machine running kvpod after the remote hosts)."""
    order = [p.name for p in phases.PHASES]
    evaluated = sorted(
        ((s.role, s.hosts[0]) for s in pod.steps if s.kind == "evaluate"), key=lambda e: order.index(e[0])
    )
    applied: list[tuple[str, str]] = []
    for s in pod.phases():
        applied += [(s.role, h) for h in s.hosts if h not in {a for _, a in applied} or h == LOCAL]
    return evaluated, applied


@pytest.mark.parametrize("kind", ["swap", "node-removed", "enclosure-removed"])
def test_the_survey_and_the_apply_walk_the_same_jobs_in_the_same_order(up, kind: str) -> None:
    evaluated, applied = walked(up(kind))
    assert evaluated == applied


def test_a_phase_added_to_the_list_is_surveyed_and_applied(up, monkeypatch) -> None:
    """A new phase goes into the one list: the survey reads and evaluates its hosts, the apply runs them, in order."""

    def extra_deploy() -> None: ...

    extra = Phase("extra", lambda scope: [HostJob("extra-host", {}, {"x": 1}, extra_deploy, (), "extra-host")])
    monkeypatch.setattr(phases, "PHASES", (*PHASES[:3], extra, PHASES[3]))
    pod = up("swap")
    assert "extra-host" in pod.steps[0].hosts, "the survey reads it"
    evaluated, applied = walked(pod)
    assert evaluated == applied
    assert pod.phase_order() == ["switch", "release", "target", "extra", "node"]
    assert ("extra", "extra-host") in evaluated


# -- the restarts still due ------------------------------------------------------------------------------------


def test_a_restart_is_forgotten_only_for_the_nodes_the_rollout_names(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path))
    plan = plan_of(lab_text())
    save_pending_restarts(plan.pod, {"node1", "node2"})
    results = [
        HostResult("node1", "node", status="changed", changes=[ROLLED_OUT]),
        HostResult("node2", "node", status="changed", changes=[ROLLED_OUT]),  # the text alone proves nothing
    ]
    rollout = Rollout(1, [["node1/kvpod-vllm@0.service"]], completed=1, rolled_out={"node1"})
    remember_pending(plan, results, rollout)
    assert load_pending_restarts(plan.pod) == {"node2"}
    remember_pending(plan, results, None)
    assert load_pending_restarts(plan.pod) == {"node2"}
