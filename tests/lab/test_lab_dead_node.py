"""One dead node does not stop the pod: node2's VM dies in the middle of its node phase, then stays dead for a
whole `kvpod up`; node1 and the target converge each time, node2 is reported unreachable (its address, port and
why, on one line) and the exit is 2.
Booted again, node2 is converged by the next `up` with its KV-cache drive as it was: same file, same ext4.

One chain, so the lab boots node2 only once; it ends with the shipped lab spec converged and both nodes up.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.unreachable import CLOSED, REFUSED, TIMED_OUT

from .conftest import KVPOD, LAB_SPEC, ROOT, Run, kvpod, report

pytestmark = pytest.mark.lab

DEAD = "node2"
PROBE = "/mnt/kvcache/before-it-died.bin"
VENV_SITE = "/opt/kvpod/vllm/lib/python3*/site-packages"
# Waits on node2 (one SSH session) until pip runs there; `[p]ip` keeps the shell's own command line out.
WAIT_FOR_PIP = "for i in $(seq 1500); do pgrep -f '[p]ip install' >/dev/null && exit 0; sleep 0.2; done; exit 1"


def drive_state(hosts) -> dict[str, str]:
    """node2's KV-cache drive as it is: the probe file's checksum, the ext4 UUID and creation time."""
    dev = hosts.sh(DEAD, "findmnt -n -o SOURCE /mnt/kvcache").strip()
    created = hosts.sh(DEAD, f"tune2fs -l {dev} | sed -n 's/^Filesystem created: *//p'").strip()
    return {
        "sha256": hosts.sh(DEAD, f"sha256sum {PROBE}").split()[0],
        "uuid": hosts.sh(DEAD, f"blkid -s UUID -o value {dev}").strip(),
        "created": created,
    }


def admitted(hosts, subsystem: str) -> list[str]:
    return sorted(hosts.sh("target", f"ls /sys/kernel/config/nvmet/subsystems/{subsystem}/allowed_hosts").split())


# What a stopped VM behind QEMU's port forward gives: refused once QEMU is gone; a forward that accepts and
# closes, or a connection that hangs, while it goes away.
STOPPED_VM = (REFUSED, CLOSED, TIMED_OUT)


def assert_says_where_and_why(run, data: dict, plan) -> None:
    """node2 has one line with its address, port and cause; the run directory is printed once, at the end,
    and holds the report."""
    where = f"127.0.0.1:{plan.node(DEAD).ssh.port}"
    lines = run.out.splitlines()
    mine = [line for line in lines if DEAD in line and where in line]
    assert len(mine) == 1 and any(f"{where}: {cause}" in mine[0] for cause in STOPPED_VM), run.out[-3000:]
    assert data["hosts"][DEAD]["cause"] in STOPPED_VM and data["hosts"][DEAD]["note"].startswith(where)
    logs = [line for line in lines if line.startswith("logs: ")]
    assert len(logs) == 1, run.out[-3000:]
    run_dir = Path(logs[0].removeprefix("logs: ").strip())
    assert json.loads((run_dir / "report.json").read_text()) == data
    assert (data["ok"], data["outcome"], data["reason"]) == (False, "completed", None)


def run_log(run_out: str) -> str:
    return (Path(run_out.split("logs: ")[1].split()[0]) / "pyinfra.log").read_text()


def assert_dead_node_run(run, data: dict, plan, budget: str, hosts) -> None:
    """Exit 2; node2 unreachable in the report and the summary; node1 converged and restarted; target intact."""
    assert run.code == 2, run.out[-3000:]
    assert data["ok"] is False
    assert data["hosts"][DEAD]["status"] == "unreachable", data["hosts"][DEAD]
    assert any(DEAD in line and "unreachable" in line for line in run.out.splitlines()), run.out[-3000:]
    node1 = data["hosts"]["node1"]
    assert node1["status"] == "changed" and node1["changes"][-1] == "vLLM restarted (rolling)", node1
    for engine in plan.node("node1").engines:  # two engines: the node budget split between them, then by TP
        assert f"LMCACHE_MAX_LOCAL_CPU_SIZE={budget}" in hosts.sh("node1", f"cat {engine.lmcache.env_file}")
        assert hosts.wait_active("node1", engine.unit)
    assert {data["hosts"][n]["status"] for n in ("target", "fabric")} == {"unchanged"}
    n2 = plan.node(DEAD)
    assert admitted(hosts, n2.namespace.subsystem_nqn) == [n2.host_nqn], "the dead node keeps its drive's access"
    assert "mkfs" not in run_log(run.out)


def boot_again(lab) -> None:
    if any(s.name == DEAD and s.state == "running" for s in lab.status()):
        return
    started = time.monotonic()
    lab.start(DEAD)
    print(f"\nnode2 booted again: SSH answers after {time.monotonic() - started:.1f}s")


def test_a_dead_node_does_not_stop_the_pod_and_comes_back_with_its_data(hosts, tmp_path):
    lab = hosts.lab
    plan = build_plan(load_spec(LAB_SPEC))
    bigger = tmp_path / "pod.yaml"
    shutil.copy(LAB_SPEC, bigger)
    bigger.write_text(bigger.read_text().replace("  cpu_budget_gib: 1\n", "  cpu_budget_gib: 2\n"))
    assert kvpod("up", str(LAB_SPEC), "--yes", "--no-verify").code == 0, "the lab must start converged"

    hosts.sh(DEAD, f"head -c 8M /dev/urandom > {PROBE} && sync")
    before = drive_state(hosts)
    try:
        # (b) node2 dies in the middle of its node phase: it is reinstalling LMCache when its VM is killed.
        hosts.sh(DEAD, f"rm -r {VENV_SITE}/lmcache {VENV_SITE}/lmcache-*")
        waiter = subprocess.Popen(
            lab.ssh_command(DEAD, [WAIT_FOR_PIP]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        up = subprocess.Popen(
            [*KVPOD, "up", str(bigger), "--yes", "--no-verify", "--report", str(tmp_path / "mid.json")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert waiter.wait(timeout=600) == 0, "pip never ran on node2"
        assert lab.stop(DEAD, hard=True) is not None
        killed_at = time.monotonic()
        out, _ = up.communicate(timeout=900)
        run = Run(up.returncode, out, time.monotonic() - killed_at)
        print(f"\n$ kvpod up, node2 killed mid-phase: exit {run.code} {run.seconds:.1f}s later\n{out[-4000:]}")
        mid = report(tmp_path / "mid.json")
        assert_dead_node_run(run, mid, plan, "0.25", hosts)
        assert "connection lost" in (mid["hosts"][DEAD]["note"] or ""), mid["hosts"][DEAD]

        # (a) node2 stays dead for a whole run with a change that touches every node (back to the lab spec).
        dead = kvpod("up", str(LAB_SPEC), "--yes", "--no-verify", "--report", str(tmp_path / "dead.json"))
        assert_dead_node_run(dead, report(tmp_path / "dead.json"), plan, "0.125", hosts)
        assert_says_where_and_why(dead, report(tmp_path / "dead.json"), plan)
    except BaseException:
        boot_again(lab)
        kvpod("up", str(LAB_SPEC), "--yes", "--no-verify")  # the lab as the next tests expect it
        raise
    boot_again(lab)
    back = kvpod("up", str(LAB_SPEC), "--yes", "--report", str(tmp_path / "back.json"))
    assert back.code == 0, back.out[-3000:]
    assert report(tmp_path / "back.json")["hosts"][DEAD]["status"] in ("changed", "unchanged")
    assert "mkfs" not in run_log(back.out)
    assert drive_state(hosts) == before, "node2's drive came back as it was: same file, same filesystem"
    again = kvpod("up", str(LAB_SPEC), "--yes", "--no-verify", "--report", str(tmp_path / "again.json"))
    assert again.code == 0 and report(tmp_path / "again.json")["changed_operations"] == 0, again.out[-3000:]
    hosts.sh(DEAD, f"rm -f {PROBE}")
