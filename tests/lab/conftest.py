"""Fixtures for the end-to-end lab tests: one lab for the whole session, always taken down at the end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.lab_checks import foreign_lab_decision, lab_decision

ROOT = Path(__file__).resolve().parents[2]
LAB_SPEC = ROOT / "inventories" / "lab" / "pod.yaml"
KVPOD = [sys.executable, "-c", "from deploy.cli import main; main()"]


def _lab_possible() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (taps and a network namespace)"
    if shutil.which("ip") is None:
        return "iproute2 is missing"
    return None


def _running_lab() -> str | None:
    """The lab that is up on this machine (its state file), described; None when there is none."""
    from deploy.lab.errors import LabError
    from deploy.lab.manager import Lab

    try:
        state = Lab().state()
    except LabError as exc:
        return str(exc)
    if state is None:
        return None
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state.started_at))
    return f"{len(state.vms)} VMs, started {started}"


@dataclass
class Run:
    code: int
    out: str
    seconds: float


def kvpod(*args: str, timeout: float = 900) -> Run:
    """Run the kvpod CLI as a user would; never raises on a non-zero exit."""
    started = time.monotonic()
    proc = subprocess.run([*KVPOD, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    run = Run(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)
    print(f"\n$ kvpod {' '.join(args)}  -> exit {run.code} in {run.seconds:.1f}s\n{run.out[-4000:]}")
    return run


class LabHosts:
    """Shell access to the lab VMs through the lab's own SSH forwards."""

    def __init__(self) -> None:
        from deploy.lab.manager import Lab

        self.lab = Lab()

    def sh(self, name: str, command: str, timeout: float = 300, check: bool = True) -> str:
        result = self.lab.run(name, command, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{name}: `{command}` exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def rc(self, name: str, command: str, timeout: float = 300) -> int:
        return self.lab.run(name, command, timeout=timeout).returncode

    def reboot(self, name: str, timeout: float = 600) -> float:
        """Reboot a VM and wait until it answers SSH again; returns the seconds it took."""
        boot_id = self.sh(name, "cat /proc/sys/kernel/random/boot_id").strip()
        self.lab.run(name, "systemctl reboot", timeout=30)
        started = time.monotonic()
        while time.monotonic() - started < timeout:  # waiting for SSH is the only retried thing
            time.sleep(1)
            try:
                now = self.lab.run(name, "cat /proc/sys/kernel/random/boot_id", timeout=15)
            except Exception:  # the VM is down while it reboots
                continue
            if now.returncode == 0 and now.stdout.strip() not in ("", boot_id):
                return time.monotonic() - started
        raise AssertionError(f"{name} did not come back within {timeout}s")

    def wait_active(self, name: str, unit: str, timeout: float = 300) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.rc(name, f"systemctl is-active --quiet {unit}") == 0:
                return True
            time.sleep(1)
        return False


def failing_checks(junit: Path) -> set[str]:
    """Names (with parameters) of the verify checks that failed or errored in a JUnit file."""
    failed = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(case.get("name", ""))
    return failed


def report(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def lab_up():
    """`kvpod lab up`: boot, bring-up, verify. `kvpod lab down` afterwards, even when tests fail.

    A machine that cannot run the lab skips it, except in CI (``CI=true``), where that is a failure; so does a
    machine where a lab is up already (the suite takes down only the lab it started)."""
    action, why = lab_decision(os.environ, _lab_possible())
    if action == "fail":
        pytest.fail(why)
    if action == "skip":
        pytest.skip(why)
    if os.environ.get("KVPOD_LAB_REUSE") == "1":  # development: run against a lab that is already up
        yield kvpod("verify", str(LAB_SPEC))
        return
    action, why = foreign_lab_decision(os.environ, _running_lab())
    if action == "fail":
        pytest.fail(why)
    if action == "skip":
        pytest.skip(why)
    run = kvpod("lab", "up", timeout=3600)
    try:
        yield run
    finally:
        kvpod("lab", "down", timeout=300)


@pytest.fixture(scope="session")
def hosts(lab_up) -> LabHosts:
    return LabHosts()
