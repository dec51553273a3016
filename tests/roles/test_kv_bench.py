"""The ``kv bench`` role and ``kvpod bench``'s run through the real runner, on ``@fake`` hosts whose facts and
commands are simulated: the fio command only on a mounted path with room beside LMCache's budget, the
output kept per host, one node's refusal not stopping the other, cleanup after an interrupt."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import OperationError
from pyinfra.api.host import Host
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput, OutputLine

import deploy.engine
from benchmarks.pyinfra_fake import FakeRemote, op_commands
from deploy.bench import GIB, MIB, BenchJob
from deploy.bench_run import run_bench
from deploy.engine import RunStats
from deploy.loader import load_spec
from deploy.names import BENCH_KEY
from deploy.operations.bench import bench_removed, bench_room, fio_benchmark
from deploy.plan import build_plan
from deploy.shipped import lab_spec
from roles.kv_bench import kv_bench, kv_bench_removed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FIO_JSON = (Path(__file__).parents[1] / "unit" / "data" / "fio-3.33-kvpod-bench.json").read_text()
PLAN = build_plan(load_spec(lab_spec()))
ROOM = {"mounted": True, "avail_bytes": 1_900_000_000, "lmcache_bytes": 0, "bench_bytes": 0}
SPACE_ARGS = "bench_dir=/mnt/kvcache/.kvpod-bench, lmcache_dir=/mnt/kvcache/lmcache/, path=/mnt/kvcache"


def remote(space: dict | None = ROOM, fio: str | None = "/usr/bin/fio") -> FakeRemote:
    return FakeRemote(facts={"bench.KvcacheSpace": {SPACE_ARGS: space}, "server.Which": {"command=fio": fio}})


def room_commands(space: dict | None, size: int = 64 * MIB, executing: bool = False) -> tuple[list, list]:
    job = BenchJob("/mnt/kvcache", size, 3)
    return op_commands(
        bench_room,
        remote(space),
        kwargs={"job": job, "budget_bytes": GIB, "lmcache_dir": "/mnt/kvcache/lmcache/"},
        executing=executing,
    )


def test_room_on_a_mounted_path_changes_nothing() -> None:
    assert room_commands(ROOM) == ([], ["64 MiB fits on /mnt/kvcache beside LMCache's disk budget"])


def test_fio_runs_in_the_bench_directory() -> None:
    (command,), _ = op_commands(fio_benchmark, FakeRemote(), kwargs={"job": BenchJob("/mnt/kvcache", 64 * MIB, 3)})
    assert command.startswith("sh -c ")
    assert "mountpoint -q" in command and "trap cleanup EXIT" in command
    assert "--filename=/mnt/kvcache/.kvpod-bench/fio.dat" in command
    assert "--direct=1" in command


@pytest.mark.parametrize(
    "space,size,message",
    [
        ({**ROOM, "mounted": False, "avail_bytes": None}, 64 * MIB, "/mnt/kvcache is not mounted"),
        (None, 64 * MIB, "cannot read the free space on /mnt/kvcache"),
        (ROOM, GIB, "--size 1 GiB does not fit on /mnt/kvcache"),
    ],
    ids=["not-mounted", "unreadable", "too-big"],
)
def test_room_is_refused(space: dict | None, size: int, message: str) -> None:
    with pytest.raises(OperationError, match=message):
        room_commands(space, size)
    (executing,), _ = room_commands(space, size, executing=True)  # while executing: a failing step
    assert executing.startswith("echo ") and message in executing and executing.endswith("exit 1")


def test_cleanup_operation() -> None:
    commands, _ = op_commands(bench_removed, FakeRemote(), kwargs={"directory": "/mnt/kvcache/.kvpod-bench"})
    assert len(commands) == 1 and 'rm -rf "$dir"' in commands[0]


# -- through the runner -----------------------------------------------------------------------------------


@pytest.fixture
def fake_pod(monkeypatch):
    """``@fake/<node>`` hosts: facts from FakeRemotes; the fio script prints the recorded fio JSON."""
    remotes: dict[str, FakeRemote] = {f"@fake/{n.name}": remote() for n in PLAN.nodes}

    def get_fact(self, cls, *args, **kwargs):
        return remotes[self.name].get_fact(cls, *args, **kwargs)

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        remotes[self.host.name].executed.append(text)
        if text.startswith("echo "):  # a refusal while executing
            return False, CommandOutput([OutputLine("stderr", text.split("'")[1])])
        if "fio --output-format=json" in text:
            return True, CommandOutput([OutputLine("stdout", line) for line in FIO_JSON.splitlines()])
        return True, CommandOutput([])

    monkeypatch.setattr(Host, "get_fact", get_fact)
    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    return remotes


def fake_hosts(jobs: dict[str, BenchJob]) -> list[tuple[str, dict]]:
    return [
        (f"@fake/{n.name}", {"kvpod_node": n, BENCH_KEY: jobs[n.name], "fake_delay": 0})
        for n in PLAN.nodes
        if n.name in jobs
    ]


def test_run_output_keeps_each_hosts_stdout_and_one_refusal_does_not_stop_the_other(fake_pod) -> None:
    fake_pod["@fake/node1"].facts["bench.KvcacheSpace"][SPACE_ARGS] = {**ROOM, "mounted": False}
    fake_pod["@fake/node2"].facts["server.Which"]["command=fio"] = None
    job = BenchJob("/mnt/kvcache", 64 * MIB, 3)
    results = {r.name: r for r in deploy.engine.run_output("bench", fake_hosts({"node1": job, "node2": job}), kv_bench)}
    one, two = results["@fake/node1"], results["@fake/node2"]
    assert one.status == "failed" and one.failed_step == "kv bench | room on /mnt/kvcache"
    assert one.stderr == ["kvpod: /mnt/kvcache is not mounted: refusing to benchmark the filesystem below it"]
    assert two.status == "changed"
    assert "".join(two.output["kv bench | fio on /mnt/kvcache"]).startswith("{")
    assert two.output["kv bench | fio installed"] == []
    executed = fake_pod["@fake/node2"].executed
    assert "apt-get install -y -q fio" in executed[0] and "fio --output-format=json" in executed[1]
    assert fake_pod["@fake/node1"].executed == [one_refusal(one.stderr[0])]  # nothing installed, nothing run


def one_refusal(message: str) -> str:
    return f"echo '{message}' >&2; exit 1"


def test_run_phase_without_keep_output_keeps_nothing(fake_pod) -> None:
    job = BenchJob("/mnt/kvcache", 64 * MIB, 3)
    results = deploy.engine.run_phase("bench", fake_hosts({"node1": job}), kv_bench, dry=False)
    assert results[0].status == "changed" and results[0].output == {}


@pytest.fixture
def fake_runner(monkeypatch, fake_pod):
    """``run_bench`` against the fake pod: the plan's hosts renamed to ``@fake/<node>`` on their way in and out."""
    calls: list[tuple[str, list[str]]] = []

    def renamed(run):
        def call(role, hosts, deploy_func, *args, **kwargs):
            if all(name.startswith("@fake/") for name, _ in hosts):  # run_output's own call of run_phase
                return run(role, hosts, deploy_func, *args, **kwargs)
            calls.append((deploy_func.__name__, [name for name, _ in hosts]))
            fake = [(f"@fake/{name}", {**data, "fake_delay": 0}) for name, data in hosts]
            results = run(role, fake, deploy_func, *args, **kwargs)
            for r in results:
                r.name = r.name.removeprefix("@fake/")
            return results

        return call

    monkeypatch.setattr(deploy.engine, "run_output", renamed(deploy.engine.run_output))
    monkeypatch.setattr(deploy.engine, "run_phase", renamed(deploy.engine.run_phase))
    return calls


def test_run_bench_parses_every_node(fake_runner, tmp_path) -> None:
    report = run_bench(PLAN, None, 2 * MIB, 1, run_dir=tmp_path)
    assert report.ok
    assert [(n.node, n.status) for n in report.nodes] == [("node1", "ok"), ("node2", "ok")]
    assert all(n.write and n.write.gbps > 0 and n.read and n.read.gbps > 0 for n in report.nodes)
    (agg,) = report.aggregates
    assert agg.name == "target" and agg.nodes == 2
    assert agg.write_gbps == pytest.approx(2 * report.nodes[0].write.gbps)  # type: ignore[union-attr]
    assert fake_runner == [("kv_bench", ["node1", "node2"])]


def test_run_bench_reports_a_refusing_node(fake_runner, fake_pod) -> None:
    fake_pod["@fake/node2"].facts["bench.KvcacheSpace"][SPACE_ARGS] = {**ROOM, "avail_bytes": 10 * MIB}
    report = run_bench(PLAN, None, 64 * MIB, 3)
    assert not report.ok
    two = report.nodes[1]
    assert two.status == "failed" and "does not fit on /mnt/kvcache" in (two.error or "")
    assert report.aggregates[0].nodes == 1


def test_a_node_without_an_answer_is_cleaned_up(fake_runner, fake_pod, monkeypatch) -> None:
    """No output and no stderr from the fio step (a timeout, a dropped connection): stop it, remove its files."""
    answer = FakeConnector.run_shell_command

    def silent(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        if self.host.name == "@fake/node2" and "fio --output-format=json" in text:
            assert kwargs.get("_timeout") == 2 * 3 + 600
            return False, CommandOutput([])
        return answer(self, command, *args, **kwargs)

    monkeypatch.setattr(FakeConnector, "run_shell_command", silent)
    report = run_bench(PLAN, None, 64 * MIB, 3)
    assert [n.status for n in report.nodes] == ["ok", "failed"]
    assert "no answer within 606 s or the connection dropped" in (report.nodes[1].error or "")
    assert fake_runner == [("kv_bench", ["node1", "node2"]), ("kv_bench_removed", ["node2"])]
    assert 'rm -rf "$dir"' in fake_pod["@fake/node2"].executed[-1]


def test_run_bench_with_limit(fake_runner) -> None:
    report = run_bench(PLAN, ["node2"], 2 * MIB, 1)
    assert [n.node for n in report.nodes] == ["node2"]
    assert fake_runner == [("kv_bench", ["node2"])]


def test_an_interrupt_stops_the_benchmarks_and_removes_their_files(monkeypatch) -> None:
    calls = []

    def interrupted(role, hosts, deploy_func, **kwargs):
        calls.append(("run_output", deploy_func, [n for n, _ in hosts]))
        raise KeyboardInterrupt

    def phase(role, hosts, deploy_func, **kwargs):
        calls.append(("run_phase", deploy_func, [n for n, _ in hosts]))
        return []

    monkeypatch.setattr(deploy.engine, "run_output", interrupted)
    monkeypatch.setattr(deploy.engine, "run_phase", phase)
    with pytest.raises(KeyboardInterrupt):
        run_bench(PLAN, None, 64 * MIB, 3)
    assert calls == [
        ("run_output", kv_bench, ["node1", "node2"]),
        ("run_phase", kv_bench_removed, ["node1", "node2"]),
    ]


def test_run_bench_reads_each_node_once(fake_runner, fake_pod, monkeypatch) -> None:
    """``kvpod bench`` hands the runner the role's reads: the room and fio checks come from one state read per node."""
    stats = RunStats()
    run = deploy.engine.run_output
    monkeypatch.setattr(deploy.engine, "run_output", lambda *args, **kwargs: run(*args, **kwargs, stats=stats))
    assert run_bench(PLAN, None, 2 * MIB, 1).ok
    assert {name: getattr(r, "snapshots", 0) for name, r in fake_pod.items()} == {"@fake/node1": 1, "@fake/node2": 1}
    assert stats.live_reads == {}
