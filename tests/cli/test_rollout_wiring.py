"""The health-gated rollout of ``kvpod up`` through the real command line and orchestration, behind a recording
runner (``tests/recorded_pod.py``): batches of at most ``--max-unavailable`` engines, a batch that does not become
healthy stops the rollout (exit 2, the report names its engines with their journal), and bad option values are
refused with exit 1 before any host is reached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.names import RESTART_ENGINES_KEY
from deploy.statedir import save_applied_plan
from tests.cli.test_up_wiring import lab_text, plan_of
from tests.recorded_pod import RecordedPod, install, kvpod

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

UNIT = "kvpod-vllm@0.service"


def three_nodes() -> str:
    """The lab spec with three nodes (its target has three drives), one engine each (4 GPUs at TP 4)."""
    text = lab_text()
    assert "\n    count: 2\n" in text and "\n    gpus: 8 " in text
    return text.replace("\n    count: 2\n", "\n    count: 3\n").replace("\n    gpus: 8 ", "\n    gpus: 4 ")


@pytest.fixture
def rollout_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``run(*args, unhealthy=set())``: every node's config changed (a restart due on each), then ``kvpod up``."""

    def run(*args: str, unhealthy: set[str] = frozenset()) -> tuple[RecordedPod, int, str, dict]:
        text = three_nodes()
        plan = plan_of(text)
        pod = RecordedPod.as_applied(plan)
        pod.restart_pending = {n.name for n in plan.nodes}
        pod.unhealthy = set(unhealthy)
        install(monkeypatch, pod, tmp_path / "state")
        save_applied_plan(plan)
        spec = tmp_path / "pod.yaml"
        spec.write_text(text)
        report = tmp_path / "report.json"
        code, out = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--report", str(report), *args)
        return pod, code, out, json.loads(report.read_text()) if report.exists() else {}

    return run


def restart_batches(pod: RecordedPod) -> list[list[str]]:
    return [s.hosts for s in pod.phases() if s.role == "restart"]


@pytest.mark.parametrize(
    ("args", "batches"),
    [
        ((), [["node1"], ["node2"], ["node3"]]),
        (("--max-unavailable", "1"), [["node1"], ["node2"], ["node3"]]),
        (("--max-unavailable", "2"), [["node1", "node2"], ["node3"]]),
        (("--max-unavailable", "67%"), [["node1", "node2"], ["node3"]]),
        (("--max-unavailable", "10%"), [["node1"], ["node2"], ["node3"]]),
        (("--max-unavailable", "100%"), [["node1", "node2", "node3"]]),
        (("--batch", "2"), [["node1", "node2"], ["node3"]]),
        (("--batch", "2", "--max-unavailable", "2"), [["node1", "node2"], ["node3"]]),
    ],
)
def test_each_batch_restarts_at_most_max_unavailable_engines(rollout_pod, args, batches) -> None:
    pod, code, out, report = rollout_pod(*args)
    assert code == 0, out
    assert restart_batches(pod) == batches
    for step in pod.phases():
        if step.role == "restart":
            assert all(data[RESTART_ENGINES_KEY] == [UNIT] for data in step.data.values())
    assert report["rollout"]["completed_batches"] == len(batches)
    assert report["rollout"]["stopped_after_batch"] is None and report["rollout"]["failed_engines"] == []
    assert all("vLLM restarted (rolling)" in report["hosts"][n]["changes"] for n in ("node1", "node2", "node3"))


def test_an_unhealthy_batch_stops_the_rollout_and_the_report_names_its_engines(rollout_pod) -> None:
    pod, code, out, report = rollout_pod("--max-unavailable", "1", unhealthy={"node1"})
    assert code == 2, out
    assert restart_batches(pod) == [["node1"]], "no later batch is restarted"
    assert "rollout stopped after batch 1 of 3" in out and f"node1/{UNIT}" in out
    assert f"node1 {UNIT} journal line 20" in out
    rollout = report["rollout"]
    assert rollout["stopped_after_batch"] == 1 and rollout["completed_batches"] == 0
    assert rollout["batches"] == [[f"node1/{UNIT}"], [f"node2/{UNIT}"], [f"node3/{UNIT}"]]
    (failed,) = rollout["failed_engines"]
    assert failed["node"] == "node1" and failed["unit"] == UNIT
    assert failed["detail"] == "GET /health answered 503"
    assert failed["journal"] == [f"node1 {UNIT} journal line {i}" for i in range(1, 21)]
    hosts = report["hosts"]
    assert hosts["node1"]["status"] == "failed" and hosts["node1"]["failed_step"] == "vLLM restart: not healthy"
    for name in ("node2", "node3"):
        assert hosts[name]["status"] == "changed" and hosts[name]["restart_pending"] is True
        assert hosts[name]["note"] == "restart not rolled out: the rollout stopped after batch 1 of 3"
        assert "vLLM restarted (rolling)" not in hosts[name]["changes"]


def test_an_unhealthy_second_batch_stops_after_it(rollout_pod) -> None:
    pod, code, out, report = rollout_pod("--max-unavailable", "2", unhealthy={"node2"})
    assert code == 2, out
    assert restart_batches(pod) == [["node1", "node2"]]
    assert "rollout stopped after batch 1 of 2" in out
    assert [f["node"] for f in report["rollout"]["failed_engines"]] == ["node2"]
    assert report["hosts"]["node1"]["status"] == "changed" and not report["hosts"]["node1"]["restart_pending"]
    assert report["hosts"]["node3"]["restart_pending"] is True


def test_a_rerun_rolls_out_the_restarts_a_stopped_rollout_left(rollout_pod, tmp_path: Path, monkeypatch, capsys):
    """The stopped run's new configuration is on every node already, so the rerun finds nothing to change: the
    restarts it left due (the unhealthy node's and the ones never rolled out) are remembered and rolled out."""
    from deploy.statedir import load_pending_restarts

    pod, code, out, _ = rollout_pod("--max-unavailable", "1", unhealthy={"node1"})
    assert code == 2, out
    assert load_pending_restarts("kvpod-lab") == {"node1", "node2", "node3"}
    pod.steps.clear()
    pod.unhealthy = set()
    pod.status = dict.fromkeys(["@local", "target", "node1", "node2", "node3"], "unchanged")
    spec = tmp_path / "pod.yaml"
    check, out = kvpod(monkeypatch, capsys, "check", str(spec))
    assert check == 1 and "vLLM restart pending" in out, "a restart still due is drift"
    assert pod.phases() == []
    code, out = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--max-unavailable", "2")
    assert code == 0, out
    assert restart_batches(pod) == [["node1", "node2"], ["node3"]]
    assert [s.role for s in pod.phases()] == ["restart", "restart"], "nothing else runs on a converged pod"
    assert load_pending_restarts("kvpod-lab") == set()
    pod.steps.clear()
    code, out = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify")
    assert code == 0 and pod.phases() == [], "converged: nothing restarts again"


def test_a_limited_run_keeps_the_other_nodes_restarts_due(rollout_pod, tmp_path: Path, monkeypatch, capsys):
    from deploy.statedir import load_pending_restarts

    pod, code, out, _ = rollout_pod("--max-unavailable", "1", unhealthy={"node1"})
    assert code == 2, out
    pod.steps.clear()
    pod.unhealthy = set()
    pod.status = dict.fromkeys(["@local", "target", "node1", "node2", "node3"], "unchanged")
    code, out = kvpod(monkeypatch, capsys, "up", str(tmp_path / "pod.yaml"), "--yes", "--no-verify", "--limit", "node1")
    assert code == 0, out
    assert restart_batches(pod) == [["node1"]]
    assert load_pending_restarts("kvpod-lab") == {"node2", "node3"}


# -- option values: refused before any host --------------------------------------------------------------------


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pyinfra connection attempt fails the test."""
    import deploy.engine.session

    def refuse(*args, **kwargs):
        raise AssertionError("a host connection was attempted")

    monkeypatch.setattr(deploy.engine.session, "connect_all", refuse)


@pytest.mark.parametrize("option", ["--max-unavailable", "--batch"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "0%", "150%", "1.5", "%", ""])
def test_a_bad_rollout_option_is_refused_with_exit_1_before_any_host(rollout_pod, no_connection, option, value):
    pod, code, out, _ = rollout_pod(option, value)
    assert code == 1, out
    assert f"{option} {value!r}" in out and "at least 1" in out and "at most 100" in out
    assert "Traceback" not in out
    assert pod.touched() == []


def test_batch_and_max_unavailable_that_disagree_are_refused(rollout_pod, no_connection) -> None:
    pod, code, out, _ = rollout_pod("--batch", "2", "--max-unavailable", "1")
    assert code == 1 and "--batch is another name for --max-unavailable" in out
    assert pod.touched() == []


def test_the_cli_runner_sees_exit_1_and_no_orchestration(tmp_path: Path, monkeypatch, no_connection) -> None:
    """Through typer's runner as well: the option is checked in the command itself, before the run starts."""
    import deploy.orchestrate
    from deploy.cli import app

    monkeypatch.setattr(deploy.orchestrate, "bring_up", lambda *a, **k: pytest.fail("the run started"))
    spec = tmp_path / "pod.yaml"
    spec.write_text(lab_text())
    result = CliRunner().invoke(app, ["up", str(spec), "--yes", "--max-unavailable", "0"])
    assert result.exit_code == 1, result.output
    assert "--max-unavailable '0'" in result.output


def test_reassign_checks_its_batch_before_any_host(tmp_path: Path, monkeypatch, no_connection) -> None:
    from deploy.cli import app

    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path / "state"))
    spec = tmp_path / "pod.yaml"
    spec.write_text(lab_text())
    result = CliRunner().invoke(app, ["reassign", str(spec), "--drive", "target/3", "--to", "node1", "--batch", "0%"])
    assert result.exit_code == 1, result.output
    assert "--batch '0%'" in result.output
    assert spec.read_text() == lab_text(), "the spec is not edited"
