"""``kvpod bench`` through typer's runner: input errors exit 1 before any host is contacted, the table and
the JSON file, exit 2 when a node failed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import deploy.cli.bench
from deploy.bench import GIB, MIB, NodeBench, Phase, build_report
from deploy.cli import app
from deploy.podlock_run import PodLock
from tests.conftest import LAB

runner = CliRunner()
NOT_MOUNTED = "kvpod: /mnt/kvcache is not mounted"


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path / "state"))


def node(name: str, write: float, read: float) -> NodeBench:
    return NodeBench(name, "target", "ok", Phase(write, 9000.0, GIB, 1.5, 4.25), Phase(read, 9500.0, GIB, 1.2, 3.5))


@pytest.fixture
def fake_bench(monkeypatch):
    """``run_bench`` answering ``nodes``; records what it was asked."""
    calls = []
    answer: list[NodeBench] = []

    def run_bench(plan, limit, size_bytes, runtime_s, run_dir=None):
        calls.append((limit, size_bytes, runtime_s))
        return build_report(plan, size_bytes, runtime_s, [*answer], run_dir)

    monkeypatch.setattr(deploy.cli.bench, "run_bench", run_bench)
    # the pod lock (tests/cli/test_cli_lock.py takes it for real): taken before, released after the benchmark
    monkeypatch.setattr(PodLock, "acquire", lambda self, break_lock, stats=None: calls.append(("lock", break_lock)))
    monkeypatch.setattr(PodLock, "release", lambda self, stats=None: calls.append(("release",)))
    return calls, answer


@pytest.mark.parametrize(
    "args,message",
    [
        (["--limit", "node9"], "--limit: unknown node node9 (valid: node1, node2)"),
        (["--size", "lots"], "--size 'lots': expected a size like 64M"),
        (["--size", "100K"], "at least 512 KiB"),
        (["--runtime", "0"], "--runtime '0': expected a duration from 1 second to 24 h"),
    ],
)
def test_input_errors_exit_1_before_any_host_is_contacted(fake_bench, args, message) -> None:
    calls, _ = fake_bench
    result = runner.invoke(app, ["bench", str(LAB), *args])
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert calls == []


def test_invalid_spec_exits_1(tmp_path, fake_bench) -> None:
    bad = tmp_path / "pod.yaml"
    bad.write_text("pod: {name: x}\nnodez: []\n")
    result = runner.invoke(app, ["bench", str(bad)])
    assert result.exit_code == 1
    assert fake_bench[0] == []


def test_table_and_json(tmp_path, fake_bench) -> None:
    calls, answer = fake_bench
    answer += [node("node1", 1.5, 2.25), node("node2", 1.25, 2.0)]
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", str(LAB), "--size", "64M", "--runtime", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert calls == [("lock", False), (None, 64 * MIB, 3), ("release",)]
    text = result.stdout
    assert "node1" in text and "node2" in text and "Σ target" in text
    assert "2.75" in text and "4.25" in text  # aggregate write and read GB/s
    assert "12.5" in text and "150" in text  # the reference figures beside them
    assert "100 GbE per node" in text
    data = json.loads(out.read_text())
    assert data["ok"] is True
    assert data["nodes"]["node1"]["read"]["gbps"] == 2.25
    assert data["aggregate"]["target"]["write_gbps"] == 2.75
    assert data["job"]["size_bytes"] == 64 * MIB and data["job"]["runtime_s"] == 3


def test_a_failed_node_exits_2_and_says_why(tmp_path, fake_bench) -> None:
    _, answer = fake_bench
    answer += [
        node("node1", 1.5, 2.25),
        NodeBench("node2", "target", "failed", error=f"kv bench | fio on /mnt/kvcache: {NOT_MOUNTED}"),
    ]
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", str(LAB), "--limit", "node1", "--limit", "node2", "--json", str(out)])
    assert result.exit_code == 2
    assert f"node2 failed: kv bench | fio on /mnt/kvcache: {NOT_MOUNTED}" in result.stdout
    assert fake_bench[0][1] == (["node1", "node2"], GIB, 30)  # the defaults: 1 GiB, 30 s
    assert json.loads(out.read_text())["nodes"]["node2"]["status"] == "failed"


def test_a_node_far_below_its_peers_is_flagged(fake_bench) -> None:
    _, answer = fake_bench
    answer += [node("node1", 1.5, 2.25), node("node2", 1.5, 2.0), node("node3", 1.4, 0.5)]
    result = runner.invoke(app, ["bench", str(LAB)])
    assert result.exit_code == 0
    assert "node3 is far below its peers (read under 50% of the median node)" in result.stdout
    assert "slow read" in result.stdout
