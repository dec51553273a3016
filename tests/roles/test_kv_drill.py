"""``kvpod drill``'s run through the real runner and the ``kv drill`` role, on ``@fake`` hosts whose facts and
commands are simulated: every step reaches the right host with its script, a node without room refuses before fio
is installed or started, and an interrupt in the middle still puts the portal back and removes the fio files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api.host import Host
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput, OutputLine

import deploy.drill_run
import deploy.engine
from benchmarks.pyinfra_fake import FakeRemote
from deploy import drill as d
from deploy.drill_run import run_drill
from deploy.engine import RunStats
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.shipped import lab_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PLAN = build_plan(load_spec(lab_spec()))
FINISH = (Path(__file__).parents[1] / "unit" / "data" / "drill" / "finish-pass.txt").read_text()
ROOM = {"mounted": True, "avail_bytes": 1_900_000_000, "lmcache_bytes": 0, "bench_bytes": 0}
SPACE_ARGS = "bench_dir=/mnt/kvcache/.kvpod-drill, lmcache_dir=/mnt/kvcache/lmcache/, path=/mnt/kvcache"
A, B = (p.address for p in PLAN.targets[0].portals)
PATHS = f"path live traddr={A},trsvcid=4420\npath live traddr={B},trsvcid=4420"


def answer(text: str) -> str:
    """What a step prints, told apart by its script."""
    if "setsid fio" in text:
        return PATHS
    if "reached=$reached" in text:
        return f"waited=1500ms\nreached=1\n{PATHS}"
    if "errors-begin" in text:
        return FINISH
    return ""


@pytest.fixture
def fake_pod(monkeypatch):
    """``@fake/<host>`` hosts: the plan's nodes and target renamed on their way into the runner and out."""
    remotes = {
        f"@fake/{name}": FakeRemote(
            facts={"bench.KvcacheSpace": {SPACE_ARGS: ROOM}, "server.Which": {"command=fio": "/usr/bin/fio"}}
        )
        for name in ("node1", "node2", "target")
    }
    interrupt = {"at": None}

    def get_fact(self, cls, *args, **kwargs):
        return remotes[self.name].get_fact(cls, *args, **kwargs)

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        remotes[self.host.name].executed.append(text)
        if text.startswith("echo "):  # a refusal while executing
            return False, CommandOutput([OutputLine("stderr", text.split("'")[1])])
        if interrupt["at"] and interrupt["at"] in text:
            raise KeyboardInterrupt
        return True, CommandOutput([OutputLine("stdout", line) for line in answer(text).splitlines()])

    run = deploy.engine.run_output

    def renamed(role, hosts, deploy_func, **kwargs):
        fake = [(f"@fake/{name}", {**data, "fake_delay": 0}) for name, data in hosts]
        results = run(role, fake, deploy_func, **kwargs)
        for r in results:
            r.name = r.name.removeprefix("@fake/")
        return results

    monkeypatch.setattr(Host, "get_fact", get_fact)
    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(deploy.engine, "run_output", renamed)
    monkeypatch.setattr(deploy.drill_run, "_sleep", lambda seconds: None)
    return remotes, interrupt


def steps(remote: FakeRemote) -> list[str]:
    """The drill's steps a host ran, by what their scripts do."""
    names = {
        "setsid fio": "start",
        "! live_on": "down",
        "reached=$reached": "back",
        "errors-begin": "finish",
        "kill -KILL": "cleanup",
        ".links\nmkdir": "take away",
        "ln -s": "restore",
    }
    out = []
    for text in remote.executed:
        found = [name for key, name in names.items() if key in text]
        if "mkdir -p /run/kvpod" in text:
            found = ["take away"]
        out.append(found[0] if found else text.split(" ", 1)[0])
    return out


def test_a_round_through_the_runner(fake_pod) -> None:
    remotes, _ = fake_pod
    (rnd,) = d.plan_rounds(PLAN, "target/iom-a/p1")
    said: list[str] = []
    report = run_drill(PLAN, [rnd], 10, 10.0, said.append)
    assert report.ok, [n.reasons for n in report.nodes]
    assert [(n.node, n.paths_before, n.back_after_s) for n in report.nodes] == [
        ("node1", "2/2 live", 1.5),
        ("node2", "2/2 live", 1.5),
    ]
    assert steps(remotes["@fake/node1"]) == ["start", "down", "back", "finish"]
    assert steps(remotes["@fake/target"]) == ["take away", "restore"]
    assert "ports/1" in remotes["@fake/target"].executed[0]
    assert any("unlinked from their subsystems" in line for line in said)


def test_a_node_without_room_refuses_before_fio_is_installed_or_started(fake_pod) -> None:
    remotes, _ = fake_pod
    remotes["@fake/node2"].facts["bench.KvcacheSpace"][SPACE_ARGS] = {**ROOM, "avail_bytes": 1_000_000_000}
    remotes["@fake/node2"].facts["server.Which"]["command=fio"] = None
    report = run_drill(PLAN, d.plan_rounds(PLAN, "target/iom-a/p1"), 10, 10.0, lambda _: None)
    two = report.nodes[1]
    assert two.status == "failed" and "does not fit on /mnt/kvcache" in two.reasons[0]
    assert steps(remotes["@fake/node2"]) == ["echo", "cleanup"]  # the refusal, then the round's cleanup
    assert report.nodes[0].status == "passed"


@pytest.mark.parametrize("at", ["! live_on", "reached=$reached"], ids=["while-down", "while-coming-back"])
def test_an_interrupt_puts_the_portal_back_and_removes_the_files(fake_pod, at) -> None:
    remotes, interrupt = fake_pod
    interrupt["at"] = at
    with pytest.raises(KeyboardInterrupt):
        run_drill(PLAN, d.plan_rounds(PLAN, "target/iom-a/p1"), 10, 10.0, lambda _: None)
    assert steps(remotes["@fake/target"]) == ["take away", "restore"]
    for node in ("@fake/node1", "@fake/node2"):
        assert steps(remotes[node])[-1] == "cleanup", remotes[node].executed
        assert 'rm -rf "$dir"' in remotes[node].executed[-1]


def test_a_round_reads_each_node_once(fake_pod, monkeypatch) -> None:
    """The start of a round hands the runner the role's reads (room, fio): one state read per node; the other steps
    read nothing, so the round reads no fact live."""
    remotes, _ = fake_pod
    stats = RunStats()
    run = deploy.engine.run_output
    monkeypatch.setattr(deploy.engine, "run_output", lambda *args, **kwargs: run(*args, **kwargs, stats=stats))
    assert run_drill(PLAN, d.plan_rounds(PLAN, "target/iom-a/p1"), 10, 10.0, lambda _: None).ok
    assert {name: getattr(r, "snapshots", 0) for name, r in remotes.items()} == {
        "@fake/node1": 1,
        "@fake/node2": 1,
        "@fake/target": 0,
    }
    assert stats.live_reads == {}
