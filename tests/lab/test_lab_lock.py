"""The pod lock in the lab: two `kvpod up` runs racing for it, a stale lock refused and then broken.

The lab pod has a linux-nvmet target, which holds the lock (``/var/lib/kvpod/lock/<pod>.json``). Each test
leaves the target without a lock file.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from datetime import UTC, datetime

import pytest

from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.podlock import lock_path, new_record, parse_record

from .conftest import KVPOD, LAB_SPEC, ROOT, kvpod, report

pytestmark = pytest.mark.lab

PLAN = build_plan(load_spec(LAB_SPEC))
LOCK = lock_path(PLAN.pod)
UP = ("up", str(LAB_SPEC), "--yes", "--no-verify")


@pytest.fixture(autouse=True)
def no_lock_left(hosts):
    """Whatever a test does, the lab is left without a lock file (a planted lock would block every later run)."""
    yield
    hosts.sh("target", f"rm -f {LOCK}")


def lock_on_target(hosts) -> str | None:
    text = hosts.sh("target", f"cat {LOCK} 2>/dev/null || true")
    return text.strip() or None


def plant(hosts, line: str) -> None:
    hosts.sh("target", f"mkdir -p {shlex.quote(LOCK.rsplit('/', 1)[0])} && printf '%s\\n' {shlex.quote(line)} > {LOCK}")


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_two_racing_ups_one_refused_with_the_holders_record(hosts, tmp_path):
    assert lock_on_target(hosts) is None
    started = time.monotonic()
    runs = [
        subprocess.Popen(
            [*KVPOD, *UP, "--report", str(tmp_path / f"r{i}.json")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in runs]
    print(f"\ntwo racing runs: {time.monotonic() - started:.1f}s; exits {[p.returncode for p in runs]}")
    for p, (out, err) in zip(runs, outs, strict=True):
        print(f"--- pid {p.pid}: exit {p.returncode}\n{out[-1500:]}{err[-1500:]}")
    assert sorted(p.returncode for p in runs) == [0, 2]
    winner = next(i for i, p in enumerate(runs) if p.returncode == 0)
    refused = outs[1 - winner][1]
    assert f"pod {PLAN.pod} is locked by another kvpod run; nothing was changed" in refused
    assert f"@{socket.gethostname()} pid {runs[winner].pid}, `kvpod up {LAB_SPEC}" in refused
    assert "Traceback" not in refused
    done = report(tmp_path / f"r{winner}.json")
    assert done["changed_operations"] == 0
    commands = {name: h["remote_commands"] for name, h in done["hosts"].items() if h["role"] in ("node", "target")}
    print(f"remote commands of the no-op up under the lock: {commands}")
    assert commands == {"target": 2, **{n.name: 1 for n in PLAN.nodes}}
    assert lock_on_target(hosts) is None


def test_a_stale_lock_is_refused_then_broken_with_break_lock(hosts):
    stale = new_record(
        PLAN.pod,
        user="ops",
        controller=socket.gethostname(),
        pid=dead_pid(),
        pid_start=None,
        command="kvpod up pod.yaml",
        now=datetime.now(UTC),
    )
    plant(hosts, stale.line())
    run = kvpod(*UP)
    assert run.code == 2
    assert f"lock on target: ops@{socket.gethostname()} pid {stale.pid}, `kvpod up pod.yaml`" in run.out
    assert f"stale (its process {stale.pid} on {socket.gethostname()} is gone)" in run.out
    assert "run again with --break-lock" in run.out
    assert parse_record(lock_on_target(hosts) or "").token == stale.token  # refused: the lock is untouched
    broken = kvpod(*UP, "--break-lock")
    assert broken.code == 0, broken.out[-3000:]
    assert lock_on_target(hosts) is None


def test_break_lock_never_takes_over_a_live_lock(hosts):
    """A lock of another machine within its lease may belong to a running run: --break-lock refuses it.

    (An expired lease is stale and broken like the lock above: see tests/cli/test_cli_lock.py.)
    """
    live = new_record(
        PLAN.pod,
        user="bob",
        controller="laptop-of-bob",
        pid=1,
        pid_start=None,
        command="kvpod up",
        now=datetime.now(UTC),
    )
    plant(hosts, live.line())
    run = kvpod(*UP, "--break-lock")
    assert run.code == 2 and "held by a run that may still be running" in run.out
    assert parse_record(lock_on_target(hosts) or "").token == live.token
