"""``kvpod drill`` through typer's runner, behind a recording runner: input errors exit 1 before any host is
contacted; every step in order on the right hosts; exit 0 when every node passes, 2 when one fails; the portal put
back and the fio files removed when the drill is interrupted (Ctrl-C, SIGTERM) or a step breaks."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import deploy.drill_run
import deploy.engine
from deploy.cli import app
from deploy.engine import HostResult
from deploy.podlock_run import PodLock
from tests.conftest import LAB

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "drill"
BOTH = ["path live traddr=10.78.0.1,trsvcid=4420", "path live traddr=10.78.0.2,trsvcid=4420"]


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path / "state"))


class Recorded:
    """The runner's ``run_output`` replaced: each step's role and hosts recorded, answers from recorded outputs."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, list[str]]] = []
        self.answers: dict[str, list[str]] = {
            "start": BOTH,
            "down": ["waited=600ms", "reached=1"],
            "back": ["waited=2200ms", "reached=1", *BOTH],
            "finish": (DATA / "finish-pass.txt").read_text().splitlines(),
        }
        self.override: dict[tuple[str, str], list[str]] = {}  # (step, node) -> answer
        self.raise_at: str | None = None  # a step that raises KeyboardInterrupt
        self.failing: set = set()  # steps that fail on every host, or (step, host)
        self.lock: list[str] = []

    def run_output(self, role: str, hosts, deploy_func, **_) -> list[HostResult]:
        what = role.removeprefix("drill ")
        self.steps.append((what, [name for name, _ in hosts]))
        if what == self.raise_at:
            raise KeyboardInterrupt
        out = []
        for name, _ in hosts:
            if what in self.failing or (what, name) in self.failing:
                out.append(HostResult(name, role, status="failed", stderr=[f"kvpod: {what} broke"]))
                continue
            lines = self.override.get((what, name), self.answers.get(what, []))
            out.append(HostResult(name, role, status="changed", output={what: list(lines)}))
        return out


@pytest.fixture
def pod(monkeypatch) -> Recorded:
    rec = Recorded()
    monkeypatch.setattr(deploy.engine, "run_output", rec.run_output)
    monkeypatch.setattr(deploy.drill_run, "_sleep", lambda s: rec.steps.append(("sleep", [str(s)])))
    monkeypatch.setattr(PodLock, "acquire", lambda self, break_lock, stats=None: rec.lock.append("acquire"))
    monkeypatch.setattr(PodLock, "release", lambda self, stats=None: rec.lock.append("release"))
    return rec


def drill(*args: str):
    return runner.invoke(app, ["drill", str(LAB), "failover", *args])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--portal", "target/iom-c/p1"], "--portal 'target/iom-c/p1': unknown portal (valid: target/iom-a/p1, "),
        (["--duration", "5"], "--duration 5: shorter than the stall threshold (10 s)"),
        (["--duration", "10", "--max-stall", "-1"], "--max-stall -1: expected a positive number"),
        (["--duration", "1000"], "fabric.ctrl_loss_tmo = 900 s"),
    ],
)
def test_input_errors_exit_1_before_any_host_is_contacted(pod, args, message) -> None:
    result = drill(*args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert pod.steps == [] and pod.lock == []


def test_unknown_scenario_exits_1(pod) -> None:
    result = runner.invoke(app, ["drill", str(LAB), "flood"])
    assert result.exit_code == 1 and "scenario 'flood': unknown (valid: failover)" in result.stderr
    assert pod.steps == []


def test_each_iom_in_turn_every_step_in_order_and_exit_0(pod, tmp_path) -> None:
    out = tmp_path / "drill.json"
    result = drill("--duration", "12", "--json", str(out))
    assert result.exit_code == 0, result.output
    steps = [s for s, _ in pod.steps if s != "sleep"]
    one = ["start", "take away", "down", "restore", "back", "finish"]
    assert steps == one + one
    assert pod.lock == ["acquire", "release"]
    assert ("sleep", ["12"]) in pod.steps
    targets = [hosts for s, hosts in pod.steps if s in ("take away", "restore")]
    assert targets == [["target"]] * 4
    doc = json.loads(out.read_text())
    assert doc["ok"] and doc["rounds"] == ["target/iom-a/p1", "target/iom-b/p1"] and doc["max_stall_s"] == 10
    assert [(r["portal"], r["node"], r["status"]) for r in doc["results"]] == [
        ("target/iom-a/p1", "node1", "passed"),
        ("target/iom-a/p1", "node2", "passed"),
        ("target/iom-b/p1", "node1", "passed"),
        ("target/iom-b/p1", "node2", "passed"),
    ]
    assert "passed" in result.stdout and "target/iom-b/p1" in result.stdout


def test_a_single_path_node_fails_the_drill_with_exit_2(pod, tmp_path) -> None:
    """node1 has one path: it stalls the whole outage; node2 passes; the table and the reasons say so."""
    pod.override[("start", "node1")] = BOTH[:1]
    text = (DATA / "finish-pass.txt").read_text()
    doc = json.loads(text[text.index("{") :])
    doc["jobs"][0]["write"]["lat_ns"]["max"] = 12_300_000_000  # the whole outage as one write's latency
    pod.override[("finish", "node1")] = [*text[: text.index("{")].splitlines(), *json.dumps(doc).splitlines()]
    out = tmp_path / "drill.json"
    result = drill("--portal", "target/iom-b/p1", "--duration", "10", "--json", str(out))
    assert result.exit_code == 2, result.output
    results = {r["node"]: r for r in json.loads(out.read_text())["results"]}
    assert results["node2"]["status"] == "passed"
    assert results["node1"]["status"] == "failed" and results["node1"]["max_stall_s"] == 12.3
    assert "I/O stalled 12.3 s (threshold 10 s)" in results["node1"]["reasons"]
    assert "node1 (target/iom-b/p1): I/O stalled 12.3 s" in result.stdout


@pytest.mark.parametrize("at", ["down", "back"])
def test_ctrl_c_puts_the_portal_back_and_removes_the_files(pod, at) -> None:
    pod.raise_at = at
    result = drill("--duration", "10")
    assert result.exit_code == 130, result.output  # interrupted
    steps = [s for s, _ in pod.steps if s != "sleep"]
    restored = steps.count("restore")
    assert steps[: steps.index(at) + 1] == ["start", "take away", "down", "restore", "back"][: steps.index(at) + 1]
    assert steps[-2:] == ["restore", "cleanup"] if at == "down" else steps[-1] == "cleanup"
    assert restored == 1  # once: after its restore step, the round does not restore again
    assert dict(pod.steps)["cleanup"] == ["node1", "node2"]
    assert pod.lock == ["acquire", "release"]


def test_sigterm_during_the_hold_puts_the_portal_back(pod, monkeypatch) -> None:
    def hold(seconds):
        pod.steps.append(("sleep", [str(seconds)]))
        if seconds == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(deploy.drill_run, "_sleep", hold)
    result = drill("--duration", "10")
    assert result.exit_code == 130, result.output  # interrupted
    steps = [s for s, _ in pod.steps if s != "sleep"]
    assert steps == ["start", "take away", "down", "restore", "cleanup"]
    assert signal.getsignal(signal.SIGTERM) is not deploy.drill_run._raise_interrupt  # the handler was put back


def test_a_failing_take_away_still_restores_and_cleans_up(pod) -> None:
    pod.failing.add("take away")
    result = drill("--duration", "10")
    assert result.exit_code == 2  # a host failure: one line, exit 2
    assert "take away on target failed" in result.output
    steps = [s for s, _ in pod.steps if s != "sleep"]
    assert steps == ["start", "take away", "restore", "cleanup"]


def test_a_node_that_refuses_to_start_fails_and_is_not_drilled_further(pod) -> None:
    pod.failing.add(("start", "node1"))
    result = drill("--portal", "target/iom-a/p1", "--duration", "10")
    assert result.exit_code == 2
    assert "start: kvpod: start broke" in result.stdout
    later = {s: hosts for s, hosts in pod.steps if s in ("down", "back", "finish", "cleanup")}
    assert later == {"down": ["node2"], "back": ["node2"], "finish": ["node2"], "cleanup": ["node1"]}


def test_when_no_node_starts_no_portal_is_taken_away(pod) -> None:
    pod.failing.add("start")
    result = drill("--portal", "target/iom-a/p1", "--duration", "10")
    assert result.exit_code == 2
    assert [s for s, _ in pod.steps if s != "sleep"] == ["start", "cleanup"]


def test_a_failing_restore_still_removes_the_files(pod) -> None:
    pod.raise_at = "back"
    pod.failing.add("restore")
    result = drill("--portal", "target/iom-a/p1", "--duration", "10")
    assert result.exit_code != 0
    assert [s for s, _ in pod.steps if s != "sleep"][-2:] == ["restore", "cleanup"]
