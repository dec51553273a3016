"""``kvpod up`` and the pod lock, through the real entry point: a converged simulated Data24 pod of three nodes
(the lock on a majority of its nodes) behind pyinfra's SSH connector, whose lock scripts run in a real ``sh``
on a directory per node, everything else answered by the simulated node."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pyinfra.connectors import ssh
from pyinfra.connectors.util import CommandOutput, OutputLine

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import deploy_run
from deploy import orchestrate, podlock
from deploy.cli import main
from deploy.errors import KvpodError
from deploy.facts.snapshot import END
from deploy.loader import load_spec_text
from deploy.plan import build_plan
from deploy.podlock import LockRecord, new_record, parse_record
from roles.node import node
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from fleet_spec import fleet_spec
from simhost import answer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_LOCK_HEADER = re.compile(r"^printf '%s\\n' '(@@kvpod-fact deploy\.facts\.podlock\.\w+ .*)'$")
SPEC = fleet_spec(3)
PLAN = build_plan(load_spec_text(SPEC, "fleet"))
NODES = [n.name for n in PLAN.nodes]


@pytest.fixture
def pod(tmp_path, monkeypatch):
    """The spec's path and each node's lock directory; ``down`` holds the names of nodes that do not answer."""
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(podlock, "LOCK_DIR", "/kvpod-test-lock")
    remotes = {}
    for n in PLAN.nodes:
        remotes[n.name] = fresh_node(n)
        deploy_run(node, remotes[n.name], {"kvpod_node": n})
    dirs = {name: tmp_path / "hosts" / name for name in NODES}
    down: set[str] = set()

    def connect(self) -> None:
        if self.host.name in down:
            raise ssh.ConnectError("simulated: host down")

    def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        lines = text.splitlines()
        lock_sections = [i for i, line in enumerate(lines) if _LOCK_HEADER.match(line)]
        out = answer(remotes[self.host.name], "\n".join(line for line in lines if not _LOCK_HEADER.match(line)))
        for i in lock_sections:  # the section runs in a real sh, on this node's own lock directory
            section = "\n".join(lines[i : lines.index(f"printf '\\n{END} %s\\n' \"$?\"", i) + 1])
            section = section.replace("/kvpod-test-lock", str(dirs[self.host.name]))
            done = subprocess.run(["sh", "-c", section], capture_output=True, text=True, check=False)
            out += done.stdout.splitlines()
        return True, CommandOutput([OutputLine("stdout", line) for line in out])

    monkeypatch.setattr(ssh.SSHConnector, "connect", connect)
    monkeypatch.setattr(ssh.SSHConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(ssh.SSHConnector, "disconnect", lambda self: None)
    spec = tmp_path / "pod.yaml"
    spec.write_text(SPEC)
    return spec, dirs, down


def kvpod(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["kvpod", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def plant(dirs, names, record: LockRecord) -> None:
    for name in names:
        dirs[name].mkdir(parents=True, exist_ok=True)
        (dirs[name] / f"{PLAN.pod}.json").write_text(record.line() + "\n")


def locks(dirs) -> dict[str, str]:
    return {n: parse_record(p.read_text()).token for n, d in dirs.items() for p in d.glob("*.json")}


def holder(pid: int, controller: str, now: datetime | None = None) -> LockRecord:
    now = now or datetime.now(UTC)
    return new_record(
        PLAN.pod, user="alice", controller=controller, pid=pid, pid_start=None, command="kvpod up pod.yaml", now=now
    )


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_noop_up_takes_and_releases_the_lock_in_two_commands(pod, monkeypatch, capsys, tmp_path):
    spec, dirs, _ = pod
    code, out, err = kvpod(
        monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--report", str(tmp_path / "r.json")
    )
    assert code == 0, out + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["changed_operations"] == 0
    commands = {h: v["remote_commands"] for h, v in report["hosts"].items() if v["role"] == "node"}
    assert commands == dict.fromkeys(NODES, 2)  # the state read (which takes the lock) and the release
    assert locks(dirs) == {}


def test_check_and_diff_never_touch_the_lock(pod, monkeypatch, capsys):
    spec, dirs, _ = pod
    other = holder(1, "elsewhere")
    plant(dirs, NODES, other)
    assert kvpod(monkeypatch, capsys, "check", str(spec))[0] == 0
    assert kvpod(monkeypatch, capsys, "up", str(spec), "--dry")[0] == 0
    assert locks(dirs) == dict.fromkeys(NODES, other.token)


def test_a_live_holder_refuses_the_run_with_its_record_and_exit_2(pod, monkeypatch, capsys):
    spec, dirs, _ = pod
    live = holder(os.getpid(), socket.gethostname())
    plant(dirs, NODES[:2], live)
    code, _out, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify")
    assert code == 2
    assert f"pod {PLAN.pod} is locked by another kvpod run; nothing was changed" in err
    assert f"lock on {NODES[0]}: alice@" in err and "`kvpod up pod.yaml`" in err
    assert "may still be running" in err and "Traceback" not in err
    assert locks(dirs) == dict.fromkeys(NODES[:2], live.token)  # the third node's lock was taken and given back
    code, _, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--break-lock")
    assert code == 2 and "may still be running" in err  # a live lock is never broken
    assert locks(dirs) == dict.fromkeys(NODES[:2], live.token)


@pytest.mark.parametrize("kind", ["dead process", "expired lease"])
def test_a_stale_lock_is_refused_then_broken_with_break_lock(pod, monkeypatch, capsys, kind):
    spec, dirs, _ = pod
    if kind == "dead process":
        stale = holder(dead_pid(), socket.gethostname())
    else:
        stale = holder(1, "laptop-of-bob", now=datetime.now(UTC) - timedelta(hours=2))
    plant(dirs, NODES, stale)
    code, _, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify")
    assert code == 2 and "run again with --break-lock to take it over" in err
    assert ("is gone" if kind == "dead process" else "its lease expired at") in err
    assert locks(dirs) == dict.fromkeys(NODES, stale.token)
    code, out, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--break-lock")
    assert code == 0, out + err
    assert locks(dirs) == {}


def test_one_dead_lock_host_of_three_does_not_block_the_lock(pod, monkeypatch, capsys):
    spec, dirs, down = pod
    down.add(NODES[0])
    other = holder(1, "elsewhere")
    plant(dirs, NODES[:1], other)  # whatever the dead node holds does not count
    code, _out, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify")
    assert code == 2  # the unreachable node fails the run, not the lock
    assert "locked" not in err and "cannot take the lock" not in err
    assert locks(dirs) == {NODES[0]: other.token}
    down.add(NODES[1])
    code, _, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify")
    assert code == 2
    assert f"pod {PLAN.pod}: 2 of its 3 lock host(s) down" in err
    assert f"  {NODES[0]}: " in err and f"  {NODES[1]}: " in err
    assert locks(dirs) == {NODES[0]: other.token}


def refusing(monkeypatch, down: set[str]) -> None:
    """Hosts in ``down`` refuse the connection, with the error pyinfra raises for it."""

    def connect(self) -> None:
        if self.host.name in down:
            port = self.host.data.ssh_port or 22
            raise ssh.ConnectError(
                f"Could not connect ([Errno None] Unable to connect to port {port} on {self.host.data.ssh_hostname})"
            )

    monkeypatch.setattr(ssh.SSHConnector, "connect", connect)


def test_a_lock_refused_because_hosts_are_down_names_them_and_writes_the_report(pod, monkeypatch, capsys, tmp_path):
    spec, dirs, _ = pod
    refusing(monkeypatch, {NODES[2], NODES[1]})
    report = tmp_path / "up.json"
    code, out, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--report", str(report))
    assert code == 2 and "Traceback" not in err
    addresses = {n.name: f"{n.ssh.host}:{n.ssh.port}" for n in PLAN.nodes}
    lines = err.splitlines()
    assert lines[0] == (
        f"error: pod {PLAN.pod}: 2 of its 3 lock host(s) down (the lock needs 2 answering); nothing was changed"
    )
    assert lines[1:3] == [f"  {n}: {addresses[n]}: connection refused" for n in NODES[1:]], err
    assert "cannot take the lock" not in err and err.count(NODES[1]) == 1
    run_dir = out.split("logs: ")[1].split()[0]
    saved = json.loads((tmp_path / "state").joinpath(run_dir).joinpath("report.json").read_text())
    assert saved == json.loads(report.read_text())
    assert (saved["ok"], saved["outcome"]) == (False, "refused")
    assert saved["reason"].startswith(f"pod {PLAN.pod}: 2 of its 3 lock host(s) down")
    assert {h: v["status"] for h, v in saved["hosts"].items()} == dict.fromkeys(NODES[1:], "unreachable")
    assert locks(dirs) == {}, "what was taken on the answering node is released"


def test_check_with_unreachable_hosts_lists_them_with_their_causes_and_exits_2(pod, monkeypatch, capsys, tmp_path):
    spec, _, _ = pod
    refusing(monkeypatch, {NODES[0]})
    code, out, err = kvpod(monkeypatch, capsys, "check", str(spec), "--report", str(tmp_path / "check.json"))
    assert code == 2, out + err
    n = PLAN.nodes[0]
    assert "0 host(s) differ" not in out and "1 host unreachable; 0 hosts of the others differ" in out
    mine = [line for line in out.splitlines() if n.name in line]
    assert len(mine) == 1 and f"{n.ssh.host}:{n.ssh.port}: connection refused" in mine[0], out
    assert out.count("logs: ") == 1 and out.rstrip().splitlines()[-1].startswith("logs: ")
    saved = json.loads((tmp_path / "check.json").read_text())
    assert saved["hosts"][n.name]["cause"] == "connection refused" and saved["outcome"] == "completed"


def test_a_refused_or_interrupted_run_writes_its_report_with_the_reason(pod, monkeypatch, capsys, tmp_path):
    spec, _, _ = pod
    for raised, outcome, exit_code in [
        (KvpodError("refusing the handover"), "refused", 2),
        (KeyboardInterrupt(), "interrupted", 130),
    ]:

        def stop(plan, handover, opts, raised=raised):
            raise raised

        monkeypatch.setattr(orchestrate, "check_handover", stop)
        report = tmp_path / f"{outcome}.json"
        code, out, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify", "--report", str(report))
        assert code == exit_code, out + err
        saved = json.loads(report.read_text())
        assert (saved["ok"], saved["outcome"]) == (False, outcome)
        assert saved["reason"] == ("refusing the handover" if outcome == "refused" else "interrupted (Ctrl-C)")
        assert out.count("logs: ") == 1


@pytest.mark.parametrize(
    ("raised", "exit_code"), [(KeyboardInterrupt(), 130), (KvpodError("refusing the handover"), 2)]
)
def test_the_lock_is_released_when_the_run_is_interrupted_or_refuses(pod, monkeypatch, capsys, raised, exit_code):
    spec, dirs, _ = pod
    taken = {}

    def stop(plan, handover, opts):
        taken.update(locks(dirs))  # the lock is held while the run decides
        raise raised

    monkeypatch.setattr(orchestrate, "check_handover", stop)
    code, _, err = kvpod(monkeypatch, capsys, "up", str(spec), "--yes", "--no-verify")
    assert code == exit_code and "Traceback" not in err
    assert set(taken) == set(NODES) and len(set(taken.values())) == 1
    assert locks(dirs) == {}


def test_reassign_is_refused_before_it_edits_the_spec_or_writes_its_journal(pod, monkeypatch, capsys, tmp_path):
    spec, dirs, _ = pod
    live = holder(os.getpid(), socket.gethostname())
    plant(dirs, NODES, live)
    code, _, err = kvpod(monkeypatch, capsys, "reassign", str(spec), "--drive", "data24-01/5", "--to", NODES[0])
    assert code == 2 and f"pod {PLAN.pod} is locked by another kvpod run" in err
    assert spec.read_text() == SPEC
    assert not (tmp_path / "state" / "journal").exists()
    assert locks(dirs) == dict.fromkeys(NODES, live.token)


def test_bench_holds_the_lock_while_it_writes_and_is_refused_by_a_live_holder(pod, monkeypatch, capsys):
    """``kvpod bench`` writes onto every mount: it takes the pod lock first and gives it back afterwards."""
    import deploy.cli.bench
    from deploy.bench import build_report

    spec, dirs, _ = pod
    held: list[dict[str, str]] = []

    def run_bench(plan, limit, size_bytes, runtime_s, run_dir=None):
        held.append(locks(dirs))
        return build_report(plan, size_bytes, runtime_s, [], run_dir)

    monkeypatch.setattr(deploy.cli.bench, "run_bench", run_bench)
    code, _, err = kvpod(monkeypatch, capsys, "bench", str(spec), "--size", "64M", "--runtime", "1")
    assert len(held) == 1 and len(held[0]) == len(NODES) and len(set(held[0].values())) == 1, err
    assert locks(dirs) == {}, "released after the benchmark"

    live = holder(os.getpid(), "elsewhere")
    plant(dirs, NODES, live)
    code, _, err = kvpod(monkeypatch, capsys, "bench", str(spec), "--size", "64M", "--runtime", "1", "--break-lock")
    assert code == 2 and f"pod {PLAN.pod} is locked by another kvpod run" in err
    assert len(held) == 1, "no node was benchmarked"
    assert locks(dirs) == dict.fromkeys(NODES, live.token)


def test_check_and_diff_of_a_cumulus_switch_stage_nothing(pod, monkeypatch, capsys, tmp_path):
    """``check``, ``diff`` and ``up --dry`` on a pod with an NVUE switch whose configuration differs: every command
    the switch gets runs in a real ``sh`` with ``nv`` logging its arguments; it is only ever asked to show."""
    import yaml

    spec, _, _ = pod
    data = yaml.safe_load(spec.read_text())
    data["switches"][0].update(kind="cumulus-nvue", management={"ssh": {"address": "192.0.2.50"}})
    spec.write_text(yaml.safe_dump(data))
    shim, log = tmp_path / "bin", tmp_path / "nv.log"
    shim.mkdir()
    (shim / "nv").write_text(
        f"#!/bin/sh\necho \"$*\" >> '{log}'\n"
        'case "$*" in "config show"*) printf -- "- set:\\n    interface: {}\\n" ;; esac\n'
    )
    (shim / "nv").chmod(0o755)
    node_shell = ssh.SSHConnector.run_shell_command

    def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
        if self.host.name != "leaf1":
            return node_shell(self, command, print_output, print_input, **kwargs)
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        env = {"PATH": f"{shim}:/usr/bin:/bin", "HOME": str(tmp_path)}
        done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, check=False, env=env)
        return done.returncode == 0, CommandOutput([OutputLine("stdout", line) for line in done.stdout.splitlines()])

    monkeypatch.setattr(ssh.SSHConnector, "run_shell_command", run_shell_command)
    assert kvpod(monkeypatch, capsys, "check", str(spec))[0] == 1  # the switch differs from the plan
    assert kvpod(monkeypatch, capsys, "diff", str(spec))[0] == 0
    assert kvpod(monkeypatch, capsys, "up", str(spec), "--dry")[0] == 0
    asked = log.read_text().splitlines()
    assert asked and set(asked) == {"config diff", "config show -r applied -o yaml"}, asked
