"""The SIGKILL fault injection is a test hook: it acts only when ``KVPOD_ENGINE_HOOKS`` names it, and then
kills the run at the operation ``KVPOD_KILL_AT`` names (a child process each; which operation and moment
``KVPOD_KILL_AT`` selects: ``tests/unit/test_target_drivers.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
from pyinfra.api import deploy
from pyinfra.operations import server

from deploy.engine import run_phase


@deploy("hook probe")
def probe():
    server.shell(name="kvpod hook probe", commands=["echo probed"])


print([str(r.status) for r in run_phase("node", [("@local", {})], probe, dry=False)], flush=True)
"""


def probe(hooks: str | None, kill_at: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KVPOD_ENGINE_HOOKS"} | {"KVPOD_KILL_AT": kill_at}
    if hooks:
        env["KVPOD_ENGINE_HOOKS"] = hooks
    run = [sys.executable, "-c", PROBE]
    return subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_hook_kills_the_run_at_the_named_operation() -> None:
    run = probe("tests.fault_hooks", "before@@local:hook probe")
    assert run.returncode == -9, run.stdout + run.stderr
    assert run.stdout == ""


def test_without_the_hook_the_product_ignores_the_kill_point() -> None:
    run = probe(None, "before:hook probe")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['changed']"
