"""Reconfiguration and namespace reassignment in the lab (two nodes, one drive each, one spare).

Runs after test_lab_e2e.py on the same lab. Each test edits its own copy of the lab spec (same pod, so
the applied plan and the journal carry over). A sampler watches both nodes during every reassignment and
records any moment at which one subsystem is mounted on two nodes.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.statedir import read_journal

from .conftest import LAB_SPEC, kvpod, report
from .lab_checks import Canaries, SampleLog, parse_read_files, read_files_command

pytestmark = pytest.mark.lab

MOUNTED_NQN = (
    "d=$(findmnt -n -o SOURCE /mnt/kvcache 2>/dev/null) && "
    "cat /sys/block/$(basename $d)/device/subsysnqn 2>/dev/null || true"
)


class MountSampler:
    """Polls, about every second, which subsystem each node has mounted; remembers every overlap.

    A read that fails (SSH error, timeout) is recorded as an error, never as "not mounted": a round with an
    error cannot show an overlap, so :meth:`assert_no_overlap` also wants enough successful samples and no errors.
    """

    def __init__(self, hosts, nodes: list[str]):
        self.hosts, self.nodes = hosts, nodes
        self.log = SampleLog(list(nodes))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, node: str) -> str | BaseException:
        try:
            result = self.hosts.lab.run(node, MOUNTED_NQN, timeout=20)
        except Exception as exc:  # SSH timed out or could not start
            return exc
        if result.returncode != 0:  # the command itself cannot fail (|| true): ssh did (255)
            return RuntimeError(f"exit {result.returncode}: {result.stderr.strip()[-200:]}")
        return result.stdout.strip()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.log.record({n: self._read(n) for n in self.nodes})
            self._stop.wait(1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def assert_no_overlap(self, min_samples: int = 3, allowed_errors: dict[str, int] | None = None) -> None:
        """No subsystem was seen on two nodes, in at least ``min_samples`` successful reads of every node, with
        no failed read (beyond ``allowed_errors`` per node, for a node stopped on purpose)."""
        problems = self.log.problems(min_samples, allowed_errors)
        assert problems == [], problems


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "pod.yaml"
    shutil.copy(LAB_SPEC, path)
    return path


def holders(hosts) -> dict[str, str]:
    return {n: hosts.sh(n, MOUNTED_NQN, check=False).strip() for n in ("node1", "node2")}


def nqn(slot: int) -> str:
    return f"nqn.2024-01.io.kvpod.lab:target-drive{slot:02d}"


@pytest.fixture(scope="module")
def canaries() -> Canaries:
    """Files written onto the drives during this module, by the drive that holds them."""
    return Canaries()


def write_canary(hosts, canaries: Canaries, node: str, name: str, text: str) -> None:
    """Write a one-line file onto the drive ``node`` has mounted now, and remember it by that drive."""
    drive = holders(hosts)[node]
    hosts.sh(node, f"echo {text} > /mnt/kvcache/{name} && sync")
    canaries.record(drive, name, text)


def assert_canaries(hosts, canaries: Canaries) -> None:
    """Every canary is read back from its drive, on whichever node holds that drive now."""
    now = holders(hosts)
    for node, files in canaries.expected(now).items():
        found = parse_read_files(hosts.sh(node, read_files_command("/mnt/kvcache", sorted(files))))
        assert found == files, f"{node} holds {now[node]}: canaries {found}, written {files}"


def test_lmcache_budget_change_touches_only_lmcache_and_restarts_one_node_at_a_time(hosts, spec, tmp_path):
    """A manual change on node2 first: `kvpod check` reports it as drift. Then a budget change: `kvpod up` rewrites
    only the LMCache env files (node2's drifted one with them) and restarts one node at a time; `check` then finds
    no drift."""
    hosts.sh("node2", "sed -i 's/^LMCACHE_CHUNK_SIZE=.*/LMCACHE_CHUNK_SIZE=512/' /etc/kvpod/lmcache@0.env")
    drift = kvpod("check", str(spec))
    assert drift.code == 1 and "node2" in drift.out and "LMCACHE_CHUNK_SIZE=256" in drift.out
    spec.write_text(spec.read_text().replace("  cpu_budget_gib: 1\n", "  cpu_budget_gib: 2\n"))
    engines = "kvpod-vllm@0 kvpod-vllm@1"
    pids = {n: hosts.sh(n, f"systemctl show -p MainPID --value {engines}").split() for n in ("node1", "node2")}
    run = kvpod("up", str(spec), "--yes", "--no-verify", "--max-unavailable", "2", "--report", str(tmp_path / "r.json"))
    assert run.code == 0, run.out[-3000:]
    data = report(tmp_path / "r.json")
    assert data["rollout"]["batches"] == [[f"{n}/kvpod-vllm@{i}.service" for i in (0, 1)] for n in ("node1", "node2")]
    for name in ("node1", "node2"):
        host = data["hosts"][name]
        assert host["changes"] == [
            "kvpod node | lmcache | LMCache env file of engine 0",
            "kvpod node | lmcache | LMCache env file of engine 1",
            "vLLM restarted (rolling)",
        ], host
        for index in (0, 1):  # 2 GiB split between two engines, then over four ranks
            assert "LMCACHE_MAX_LOCAL_CPU_SIZE=0.25" in hosts.sh(name, f"cat /etc/kvpod/lmcache@{index}.env")
        now = hosts.sh(name, f"systemctl show -p MainPID --value {engines}").split()
        assert len(now) == 2 and not set(now) & set(pids[name]), "both engines restarted"
    assert {h["changed_operations"] for n, h in data["hosts"].items() if n not in ("node1", "node2")} == {0}
    log = (Path(run.out.split("logs: ")[1].split()[0]) / "pyinfra.log").read_text()
    restarts = log.count("--> Starting operation: vllm restart | engines restarted and healthy")
    assert restarts == 2, "one batch per node: its two engines"
    for n in ("node1", "node2"):
        assert "LMCACHE_CHUNK_SIZE=256" in hosts.sh(n, "cat /etc/kvpod/lmcache@0.env"), f"{n}: drift left"
    assert kvpod("check", str(spec)).code == 0


FAULT = "/var/tmp/kvpod-standin-unhealthy-8001"  # the stand-in's lab-only fault: engine 1's /health answers 503
UNITS = "kvpod-vllm@0.service kvpod-vllm@1.service"
UNIT_RUN = f"systemctl show -p InvocationID -p ActiveEnterTimestamp -p MainPID --value {UNITS}"
HEALTH = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).status)' "


def engine_run(hosts, node: str, unit: str) -> list[str]:
    """One engine's current run: its systemd invocation and main PID (both change when it restarts)."""
    return hosts.sh(node, f"systemctl show -p InvocationID -p MainPID --value {unit}").split()


def test_an_engine_that_does_not_become_healthy_stops_the_rollout_after_its_batch(hosts, spec, tmp_path):
    """node1's engine 1 (in the first batch: node1's two engines) cannot become healthy: the rollout stops there
    with exit 2, the report names that engine with its journal, node2's engines are not restarted and keep
    serving; node1's engine 0 came back healthy, so only engine 1 stays due there. Without the fault a rerun
    rolls out exactly the restarts the stopped rollout left: node1's engine 1 (engine 0 keeps its process) and
    node2's two engines."""
    text = spec.read_text()
    assert "  cpu_budget_gib: 2\n" in text and "\n  port: 8000\n" in text
    edited = text.replace("  cpu_budget_gib: 2\n", "  cpu_budget_gib: 3\n")
    spec.write_text(edited.replace("\n  port: 8000\n", "\n  port: 8000\n  health_timeout_s: 30\n"))
    health = {n.name: [e.health_url for e in n.engines] for n in build_plan(load_spec(spec)).nodes}
    before = {n: hosts.sh(n, UNIT_RUN).split() for n in ("node1", "node2")}
    hosts.sh("node1", f"touch {FAULT}")
    try:
        run = kvpod(
            "up", str(spec), "--yes", "--no-verify", "--max-unavailable", "2", "--report", str(tmp_path / "r.json")
        )
        assert run.code == 2, run.out[-3000:]
        assert "rollout stopped after batch 1 of 2" in run.out and "node1/kvpod-vllm@1.service" in run.out
        data = report(tmp_path / "r.json")
        rollout = data["rollout"]
        assert rollout["stopped_after_batch"] == 1 and rollout["completed_batches"] == 0
        (failed,) = rollout["failed_engines"]
        assert (failed["node"], failed["unit"]) == ("node1", "kvpod-vllm@1.service")
        assert failed["detail"] == "GET /health answered 503", failed
        assert 0 < len(failed["journal"]) <= 20
        assert any(f"lab fault: {FAULT} exists" in line for line in failed["journal"]), failed["journal"]
        assert data["hosts"]["node1"]["status"] == "failed"
        assert data["hosts"]["node1"]["restart_units"] == ["kvpod-vllm@1.service"], "engine 0 came back healthy"
        assert data["hosts"]["node2"]["restart_pending"] is True
        assert data["hosts"]["node2"]["restart_units"] == ["kvpod-vllm@0.service", "kvpod-vllm@1.service"]
        assert "vLLM restarted (rolling)" not in data["hosts"]["node2"]["changes"]
        assert hosts.sh("node1", UNIT_RUN).split() != before["node1"], "node1's engine was restarted"
        assert hosts.sh("node2", UNIT_RUN).split() == before["node2"], "node2's engine was not touched"
        assert [hosts.sh("node2", HEALTH + url).strip() for url in health["node2"]] == ["200", "200"]
        kept = engine_run(hosts, "node1", "kvpod-vllm@0.service")
        left = engine_run(hosts, "node1", "kvpod-vllm@1.service")
    finally:
        hosts.sh("node1", f"rm -f {FAULT}")
        spec.write_text(edited)  # the short health timeout was for this run only
    rerun = kvpod(
        "up", str(spec), "--yes", "--no-verify", "--max-unavailable", "2", "--report", str(tmp_path / "again.json")
    )
    assert rerun.code == 0, rerun.out[-3000:]
    again = report(tmp_path / "again.json")
    assert again["rollout"]["batches"] == [
        ["node1/kvpod-vllm@1.service"],
        ["node2/kvpod-vllm@0.service", "node2/kvpod-vllm@1.service"],
    ]
    assert engine_run(hosts, "node1", "kvpod-vllm@0.service") == kept, "node1's engine 0 kept running"
    assert engine_run(hosts, "node1", "kvpod-vllm@1.service") != left, "node1's engine 1 restarted"
    for name in ("node1", "node2"):  # nothing else changed: the restarts the stopped rollout left are rolled out
        assert again["hosts"][name]["changes"] == ["vLLM restarted (rolling)"], again["hosts"][name]
        assert [hosts.sh(name, HEALTH + url).strip() for url in health[name]] == ["200", "200"]
    assert hosts.sh("node2", UNIT_RUN).split() != before["node2"], "node2 now runs the new budget"
    assert kvpod("check", str(spec)).code == 0, "no restart left pending"


def test_a_spec_with_one_drive_on_two_nodes_is_rejected_before_anything_runs(spec, tmp_path):
    from deploy.spec_edit import set_node_namespaces

    bad = tmp_path / "bad.yaml"
    bad.write_text(set_node_namespaces(spec.read_text(), {"node2": ("target", 1)}))
    run = kvpod("up", str(bad), "--yes")
    assert run.code == 1 and "assigned to 2 nodes: node1, node2" in run.out


def crashing(step: str, *args: str):
    """``kvpod ARGS`` killed (SIGKILL) right after the handover step ``step``."""
    os.environ["KVPOD_CRASH_AFTER"] = step
    try:
        return kvpod(*args)
    finally:
        del os.environ["KVPOD_CRASH_AFTER"]


def test_interrupted_swap_is_finished_by_running_it_again_and_moves_files_with_their_drives(hosts, spec, canaries):
    """node1 and node2 swap drives (`reassign --swap`) and kvpod is killed right after a handover step, each step in
    turn: the first run after the release, its rerun (breaking the lock the killed run left) after the target step,
    the next after the node step; each rerun resumes where the killed one stopped, the last finishes the swap. No
    drive is ever on two nodes, each node's file is on the other node afterwards, with its drive, and verify is green.

    (The move onto a spare drive is test_lab_enclosures.py's reassignment across enclosures; the drives come back to
    the nodes that wrote to them in test_hand_edited_spec_hands_the_drives_back.)
    """
    before = holders(hosts)
    write_canary(hosts, canaries, "node1", "owner.txt", "from-node1")
    write_canary(hosts, canaries, "node2", "owner.txt", "from-node2")
    swap = ("reassign", str(spec), "--drive", "target/1", "--to", "node2", "--swap")
    pod = build_plan(load_spec(spec)).pod
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        crashed = crashing("release", *swap)
        assert crashed.code == -9, crashed.out[-2000:]
        assert read_journal(pod)["last_step"] == "release"
        refused = kvpod(*swap)  # the killed run left the pod lock behind: stale, taken over only on request
        assert refused.code == 2 and "is gone): run again with --break-lock" in refused.out
        for step in ("target", "nodes"):  # each rerun resumes where the killed one stopped, and is killed in turn
            crashed = crashing(step, *swap, "--break-lock")
            assert crashed.code == -9, crashed.out[-2000:]
            assert read_journal(pod)["last_step"] == step, f"the rerun did not get past the {step} step"
        resumed = kvpod(*swap, "--break-lock")
    assert "resuming" in resumed.out and "(interrupted after: nodes)" in resumed.out, resumed.out[-3000:]
    assert resumed.code == 0, resumed.out[-3000:]
    assert read_journal(pod) is None
    sampler.assert_no_overlap(min_samples=6)
    assert holders(hosts) == {"node1": before["node2"], "node2": before["node1"]}
    assert hosts.sh("node2", "cat /mnt/kvcache/owner.txt").strip() == "from-node1"
    assert hosts.sh("node1", "cat /mnt/kvcache/owner.txt").strip() == "from-node2"
    assert_canaries(hosts, canaries)
    plan = build_plan(load_spec(spec))
    assert plan.node("node2").namespace.drive == 1 and plan.node("node1").namespace.drive == 2
    for node in ("node1", "node2"):
        assert all(hosts.wait_active(node, unit) for unit in ("kvpod-vllm@0", "kvpod-vllm@1")), node
    assert kvpod("verify", str(spec)).code == 0


def test_hand_edited_spec_hands_the_drives_back(hosts, canaries):
    """`kvpod up` of the shipped lab spec (node1 on drive 1, node2 on drive 2) finds drives held by other nodes
    than planned and runs the same handover: releases first, then access, then the new holders."""
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        run = kvpod("up", str(LAB_SPEC), "--yes")
    assert run.code == 0, run.out[-3000:]
    sampler.assert_no_overlap()
    assert holders(hosts) == {"node1": nqn(1), "node2": nqn(2)}
    assert_canaries(hosts, canaries)
