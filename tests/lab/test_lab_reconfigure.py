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

from .conftest import LAB_SPEC, kvpod, report

pytestmark = pytest.mark.lab

MOUNTED_NQN = (
    "d=$(findmnt -n -o SOURCE /mnt/kvcache 2>/dev/null) && "
    "cat /sys/block/$(basename $d)/device/subsysnqn 2>/dev/null || true"
)


class MountSampler:
    """Polls which subsystem each node has mounted; remembers every overlap."""

    def __init__(self, hosts, nodes: list[str]):
        self.hosts, self.nodes = hosts, nodes
        self.samples = 0
        self.overlaps: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = {}
            for n in self.nodes:
                try:
                    seen[n] = self.hosts.sh(n, MOUNTED_NQN, timeout=20, check=False).strip()
                except Exception:  # a node being released or rebooted may not answer for a moment
                    seen[n] = ""
            mounted = [v for v in seen.values() if v]
            if len(mounted) != len(set(mounted)):
                self.overlaps.append(seen)
            self.samples += 1
            self._stop.wait(1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "pod.yaml"
    shutil.copy(LAB_SPEC, path)
    return path


def holders(hosts) -> dict[str, str]:
    return {n: hosts.sh(n, MOUNTED_NQN, check=False).strip() for n in ("node1", "node2")}


def nqn(slot: int) -> str:
    return f"nqn.2024-01.io.kvpod.lab:target-drive{slot:02d}"


def test_lmcache_budget_change_touches_only_lmcache_and_restarts_one_node_at_a_time(hosts, spec, tmp_path):
    spec.write_text(spec.read_text().replace("  cpu_budget_gib: 1\n", "  cpu_budget_gib: 2\n"))
    pids = {n: hosts.sh(n, "systemctl show -p MainPID --value kvpod-vllm").strip() for n in ("node1", "node2")}
    run = kvpod("up", str(spec), "--yes", "--no-verify", "--report", str(tmp_path / "r.json"))
    assert run.code == 0, run.out[-3000:]
    data = report(tmp_path / "r.json")
    for name in ("node1", "node2"):
        host = data["hosts"][name]
        assert host["changes"] == ["kvpod node | lmcache | LMCache env file", "vLLM restarted (rolling)"], host
        env = hosts.sh(name, "cat /etc/kvpod/lmcache.env")
        assert "LMCACHE_MAX_LOCAL_CPU_SIZE=0.5" in env
        assert hosts.sh(name, "systemctl show -p MainPID --value kvpod-vllm").strip() != pids[name]
    assert {h["changed_operations"] for n, h in data["hosts"].items() if n not in ("node1", "node2")} == {0}
    log = (Path(run.out.split("logs: ")[1].split()[0]) / "pyinfra.log").read_text()
    assert log.count("--> Starting operation: vllm restart") == 2, "one batch per node"


def test_check_reports_drift_after_a_manual_change_and_none_after_up(hosts, spec):
    hosts.sh("node2", "sed -i 's/^LMCACHE_CHUNK_SIZE=.*/LMCACHE_CHUNK_SIZE=512/' /etc/kvpod/lmcache.env")
    drift = kvpod("check", str(spec))
    assert drift.code == 1 and "node2" in drift.out and "LMCACHE_CHUNK_SIZE=256" in drift.out
    assert kvpod("up", str(spec), "--yes", "--no-verify").code == 0
    assert kvpod("check", str(spec)).code == 0


def test_a_spec_with_one_drive_on_two_nodes_is_rejected_before_anything_runs(spec, tmp_path):
    from deploy.spec_edit import set_node_namespaces

    bad = tmp_path / "bad.yaml"
    bad.write_text(set_node_namespaces(spec.read_text(), {"node2": ("target", 1)}))
    run = kvpod("up", str(bad), "--yes")
    assert run.code == 1 and "node1 and node2" in run.out


def test_swap_moves_files_with_their_drives(hosts, spec):
    before = holders(hosts)
    hosts.sh("node1", "echo from-node1 > /mnt/kvcache/owner.txt && sync")
    hosts.sh("node2", "echo from-node2 > /mnt/kvcache/owner.txt && sync")
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        run = kvpod("reassign", str(spec), "--drive", "target/1", "--to", "node2", "--swap")
    assert run.code == 0, run.out[-3000:]
    assert sampler.overlaps == [] and sampler.samples > 5
    assert holders(hosts) == {"node1": before["node2"], "node2": before["node1"]}
    assert hosts.sh("node2", "cat /mnt/kvcache/owner.txt").strip() == "from-node1"
    assert hosts.sh("node1", "cat /mnt/kvcache/owner.txt").strip() == "from-node2"
    plan = build_plan(load_spec(spec))
    assert plan.node("node2").namespace.drive == 1 and plan.node("node1").namespace.drive == 2
    assert kvpod("verify", str(spec)).code == 0


def test_move_onto_the_spare_drive(hosts, spec):
    hosts.sh("node1", "echo still-here > /mnt/kvcache/left-behind.txt && sync")
    left = holders(hosts)["node1"]
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        run = kvpod("reassign", str(spec), "--drive", "target/3", "--to", "node1")
    assert run.code == 0, run.out[-3000:]
    assert sampler.overlaps == []
    assert holders(hosts)["node1"] == nqn(3)
    allowed = hosts.sh("target", f"ls /sys/kernel/config/nvmet/subsystems/{left}/allowed_hosts").split()
    assert allowed == [], "the released drive is a spare now: it admits no host"


@pytest.mark.parametrize("step", ["release", "target", "nodes"])
def test_interrupted_reassignment_is_finished_by_running_it_again(hosts, spec, step):
    """Kill kvpod right after a handover step; the rerun (breaking the lock the killed run left) completes it
    and no drive is ever on two nodes.

    node1 moves between the spare and its former drive each time, so the file it left on a drive before
    an interrupted move must be there when the drive comes back.
    """
    target_slot = 2 if holders(hosts)["node1"] == nqn(3) else 3
    hosts.sh("node1", f"echo {step} > /mnt/kvcache/before-{step}.txt && sync")
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        os.environ["KVPOD_CRASH_AFTER"] = step
        try:
            crashed = kvpod("reassign", str(spec), "--drive", f"target/{target_slot}", "--to", "node1")
        finally:
            del os.environ["KVPOD_CRASH_AFTER"]
        assert crashed.code == -9, crashed.out[-2000:]
        again = ("reassign", str(spec), "--drive", f"target/{target_slot}", "--to", "node1")
        if step == "release":  # the killed run left the pod lock behind: stale, taken over only on request
            refused = kvpod(*again)
            assert refused.code == 2 and "is gone): run again with --break-lock" in refused.out
        resumed = kvpod(*again, "--break-lock")
    assert "resuming" in resumed.out
    assert resumed.code == 0, resumed.out[-3000:]
    assert sampler.overlaps == []
    assert holders(hosts)["node1"] == nqn(target_slot)
    if target_slot == 2:  # back on the drive node1 wrote to before it moved to the spare
        assert hosts.sh("node1", "cat /mnt/kvcache/left-behind.txt").strip() == "still-here"
    assert hosts.wait_active("node1", "kvpod-vllm")


def test_hand_edited_spec_hands_the_drives_back(hosts):
    """`kvpod up` of the shipped lab spec (node1 on drive 1, node2 on drive 2) finds drives held by other nodes
    than planned and runs the same handover: releases first, then access, then the new holders."""
    with MountSampler(hosts, ["node1", "node2"]) as sampler:
        run = kvpod("up", str(LAB_SPEC), "--yes")
    assert run.code == 0, run.out[-3000:]
    assert sampler.overlaps == []
    assert holders(hosts) == {"node1": nqn(1), "node2": nqn(2)}
