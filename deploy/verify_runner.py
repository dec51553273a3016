"""Runs the verify suite against the live pod and turns its JUnit XML into a result (for ``kvpod verify``).

The suite (``deploy/verify_suite``, shipped in the wheel with the package) reads every expected value
from the plan. This module writes the plan JSON and an ssh_config into the run directory, runs the suite
with pytest in a subprocess (xdist, one worker per host up to four; all checks of a host run in one worker,
from one state read of that host), and parses the JUnit XML into a :class:`VerifyReport`: per host and role
area, which checks held, and for each failed one what was expected and what was found. Nothing here prints;
the CLI (``deploy.cli.verify``) does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.encode import ssh_value
from deploy.errors import KvpodError
from deploy.plan import Plan, SshPlan
from deploy.shipped import verify_suite_dir

AREAS = ("fabric", "nvme_initiator", "namespace", "kv_mount", "lmcache", "vllm", "target", "enclosure")
POD_ROW = "pod"  # the row of pod-wide checks (e.g. no subsystem on two nodes)
MAX_WORKERS = 4
UNREACHABLE_MARK = "HostUnreachable"
_EXPECTED_FOUND = re.compile(r"^(?P<what>.*?): expected (?P<expected>.*), found (?P<found>.*)$")
_PYTEST_EXITS = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


# -- ssh_config -------------------------------------------------------------------------------------------


def target_names(plan: Plan) -> list[str]:
    """Targets the suite logs in to: those whose driver is checked on its host over SSH (linux-nvmet); the
    others (a Data24) are checked from the nodes."""
    from deploy.targets import driver_for

    return [t.name for t in plan.targets if driver_for(t.kind).verified_on_host and t.ssh is not None]


def _ssh_hosts(plan: Plan) -> list[tuple[str, SshPlan]]:
    hosts = [(n.name, n.ssh) for n in plan.nodes]
    hosts += [(t.name, t.ssh) for t in plan.targets if t.name in target_names(plan) and t.ssh is not None]
    return hosts


def ssh_config_text(plan: Plan, control_dir: Path | None = None) -> str:
    """An ssh_config with one ``Host`` block per node and SSH-managed target of the plan (pure).

    ``control_dir`` enables connection sharing (``ControlMaster``) with sockets in that directory; keep
    its path short, as a socket path may not exceed about 100 bytes.
    """
    hosts = _ssh_hosts(plan)
    names = [name for name, _ in hosts]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise KvpodError(f"a node and an enclosure share the name {', '.join(clash)}: ssh_config needs unique names")
    lines = [f"# kvpod verify: SSH to the hosts of pod {plan.pod}, from its plan", ""]
    for name, ssh in hosts:
        lines += [
            f"Host {ssh_value(name)}",
            f"    HostName {ssh_value(ssh.host, tokens=True)}",
            f"    Port {int(ssh.port)}",
            f"    User {ssh_value(ssh.user)}",
        ]
        if ssh.key:
            lines += [f"    IdentityFile {ssh_value(ssh.key, tokens=True)}", "    IdentitiesOnly yes"]
        if ssh.known_hosts_file:
            lines.append(f"    UserKnownHostsFile {ssh_value(ssh.known_hosts_file, tokens=True)}")
        lines += [
            f"    StrictHostKeyChecking {ssh_value(ssh.strict_host_key_checking)}",
            "    BatchMode yes",
            "    LogLevel ERROR",
            "    ServerAliveInterval 15",
        ]
        if control_dir is not None:
            lines += [
                "    ControlMaster auto",
                f"    ControlPath {ssh_value(str(control_dir) + '/', tokens=True)}%C",
                "    ControlPersist 60s",
            ]
        lines.append("")
    return "\n".join(lines)


def write_ssh_config(plan: Plan, path: Path, control_dir: Path | None = None) -> Path:
    path.write_text(ssh_config_text(plan, control_dir))
    return path


def close_ssh_masters(config: Path, names: Iterable[str]) -> None:
    """Ask the shared SSH connections of these hosts to exit (no-op for hosts without one)."""
    for name in names:
        subprocess.run(
            ["ssh", "-F", str(config), "-O", "exit", name],
            capture_output=True,
            timeout=10,
            check=False,
        )


# -- running the suite ------------------------------------------------------------------------------------


def suite_command(
    suite: Path, plan_json: Path, ssh_config: Path, junit: Path, *, limit: list[str] | None, workers: int
) -> list[str]:
    """The pytest argv that runs the suite (pure).

    The suite's own ``pytest.ini`` and ``--rootdir`` keep the repository's pytest settings out, so the
    same command works from a checkout and from an installed wheel. Plugin autoloading is off (see
    :func:`suite_env`): only xdist and testinfra are loaded, whatever else is installed. With
    ``--dist loadscope`` the suite's own scheduler hands each worker whole hosts (every check of a host runs
    in one worker, which reads the host's state once), the pod-wide checks last.
    """
    argv = [
        sys.executable, "-m", "pytest", str(suite),
        "-c", str(suite / "pytest.ini"),
        "--rootdir", str(suite),
        "-p", "no:cacheprovider",
        "-p", "xdist.plugin", "-p", "testinfra.plugin", "-n", str(workers), "--dist", "loadscope",
        "--junitxml", str(junit),
        "--kvpod-plan", str(plan_json),
        "--ssh-config", str(ssh_config),
        "--tb=short", "-q",
    ]  # fmt: skip
    for name in limit or []:
        argv += ["--kvpod-limit", name]
    return argv


def worker_count(plan: Plan, limit: list[str] | None) -> int:
    """One xdist worker per checked host (nodes and SSH-managed targets), at most :data:`MAX_WORKERS`: the
    suite schedules by host, so more workers than hosts would idle."""
    nodes = [n for n in plan.nodes if not limit or n.name in limit]
    return max(1, min(len(nodes) + len(target_names(plan)), MAX_WORKERS))


def suite_env(base: dict[str, str]) -> dict[str, str]:
    """The suite's environment: no user pytest options or plugins, no bytecode written into the suite."""
    env = {k: v for k, v in base.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "KVPOD_PLAN")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # an installed suite lives in site-packages
    return env


def run_verify(
    plan: Plan,
    run_dir: Path,
    *,
    limit: list[str] | None = None,
    junit_copy: Path | None = None,
    timeout: float = 1800,
) -> VerifyReport:
    """Run the suite against the pod; the run directory keeps plan.json, ssh_config, junit.xml, pytest.log."""
    suite = verify_suite_dir()
    plan_json = run_dir / "plan.json"
    plan_json.write_text(plan.to_json())
    control_dir = Path(tempfile.mkdtemp(prefix="kvpod-ssh-"))
    ssh_config = write_ssh_config(plan, run_dir / "ssh_config", control_dir)
    junit = run_dir / "junit.xml"
    log = run_dir / "pytest.log"
    argv = suite_command(suite, plan_json, ssh_config, junit, limit=limit, workers=worker_count(plan, limit))
    error = None
    try:
        with log.open("w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            proc = subprocess.run(
                argv,
                cwd=suite,
                env=suite_env(dict(os.environ)),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if proc.returncode not in (0, 1):
            reason = _PYTEST_EXITS.get(proc.returncode, f"exit {proc.returncode}")
            error = f"the verify suite stopped ({reason}): {_tail(log)}"
    except subprocess.TimeoutExpired:
        error = f"the verify suite did not finish within {timeout:.0f} s"
    finally:
        close_ssh_masters(ssh_config, [name for name, _ in _ssh_hosts(plan)])
        shutil.rmtree(control_dir, ignore_errors=True)
    rows = report_rows(plan, limit)
    if not junit.exists():
        missing = error or f"no JUnit XML written: {_tail(log)}"
        return VerifyReport([], rows, list(AREAS), suite_error=missing, run_dir=run_dir)
    if junit_copy is not None:
        shutil.copyfile(junit, junit_copy)
    report = parse_junit(junit.read_text(), rows)
    report.suite_error = error
    report.run_dir = run_dir
    return report


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = [line for line in log.read_text().splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def report_rows(plan: Plan, limit: list[str] | None = None) -> list[str]:
    """Rows of the summary: the verified nodes in plan order, the pod, then the SSH-managed targets."""
    return [n.name for n in plan.nodes if not limit or n.name in limit] + [POD_ROW, *target_names(plan)]


# -- the result -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check (test case) of the suite."""

    name: str  # test_vlan_mtu[node1]
    test_id: str  # the pytest node id when recorded, else classname::name
    host: str
    area: str
    outcome: str  # passed | failed | error | skipped | unreachable
    message: str = ""
    expected: str | None = None
    found: str | None = None
    reported: tuple[tuple[str, str], ...] = ()  # what a passing check reports (the versions vLLM runs)


@dataclass(frozen=True)
class Cell:
    """The checks of one host in one role area."""

    passed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.unreachable

    @property
    def status(self) -> str:
        """``ok``, ``failed``, ``unreachable``, or ``none`` (no check ran here)."""
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "ok" if self.passed else "none"


@dataclass
class VerifyReport:
    checks: list[Check]
    rows: list[str]
    areas: list[str]
    suite_error: str | None = None
    run_dir: Path | None = field(default=None, compare=False)

    def cell(self, host: str, area: str) -> Cell:
        counts = {"passed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
        for c in self.checks:
            if c.host == host and c.area == area:
                counts["failed" if c.outcome == "error" else c.outcome] += 1
        return Cell(**counts)

    def row_cells(self, host: str) -> Cell:
        cells = [self.cell(host, area) for area in self.areas]
        return Cell(*(sum(getattr(c, k) for c in cells) for k in ("passed", "failed", "unreachable", "skipped")))

    @property
    def reported(self) -> dict[str, dict[str, str]]:
        """Per host, what its passing checks reported (``{"node1": {"vllm": "0.11.0", ...}}``)."""
        out: dict[str, dict[str, str]] = {}
        for c in self.checks:
            if c.reported:
                out.setdefault(c.host, {}).update(c.reported)
        return out

    @property
    def failures(self) -> list[Check]:
        """Checks that ran and did not hold (including errors in the suite itself)."""
        return [c for c in self.checks if c.outcome in ("failed", "error")]

    @property
    def unreachable_hosts(self) -> list[str]:
        """Hosts whose checks could not run (the pod row is not a host: its checks name the one they missed)."""
        return sorted({c.host for c in self.checks if c.outcome == "unreachable" and c.host != POD_ROW})

    @property
    def passed(self) -> int:
        return sum(c.outcome == "passed" for c in self.checks)

    @property
    def verdict(self) -> str:
        """``held`` every check; ``differs`` a check failed; ``incomplete`` hosts unreachable, the suite broke,
        or nothing ran."""
        if self.suite_error or any(c.outcome in ("unreachable", "error") for c in self.checks):
            return "incomplete"
        if self.failures:
            return "differs"
        return "held" if self.passed else "incomplete"


def split_message(message: str) -> tuple[str, str | None, str | None]:
    """``AssertionError: <what>: expected <e>, found <f>`` -> (what, e, f).

    Any other message gives (its first line, None, None).
    """
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = re.sub(r"^(AssertionError|Failed|E\s+AssertionError):\s*", "", first)
    m = _EXPECTED_FOUND.match(first)
    if m:
        return m["what"], m["expected"], m["found"]
    return first, None, None


def host_of_test(test: str, hosts: Iterable[str]) -> str:
    """The host a test names (``test_vlan_mtu[node1]``, or a node id ending so): the longest known host
    equal to the test's parameter or prefixing it as ``host-``; ``""`` when none does."""
    name = test.rsplit("::", 1)[-1]
    param = name[name.find("[") + 1 : -1] if name.endswith("]") and "[" in name else ""
    best = ""
    for h in hosts:
        if (param == h or param.startswith(h + "-")) and len(h) > len(best):
            best = h
    return best


def _area_from_classname(classname: str) -> str:
    """``fabric.test_fabric.TestVlan`` or ``verify_suite.fabric.test_fabric.TestVlan`` -> ``fabric``."""
    parts = classname.split(".")
    for i, part in enumerate(parts):
        if part.startswith("test_") and i > 0:
            return parts[i - 1]
    return ""


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            message = el.get("message") or (el.text or "").strip()
            if UNREACHABLE_MARK in message:
                start = message.find(UNREACHABLE_MARK)
                return "unreachable", message[start:].rstrip('"')
            return ("failed" if tag == "failure" else "error"), message
    skipped = case.find("skipped")
    if skipped is not None:
        return "skipped", skipped.get("message") or ""
    return "passed", ""


def parse_junit(xml_text: str, rows: list[str]) -> VerifyReport:
    """The suite's JUnit XML -> a :class:`VerifyReport` (pure).

    Host and area come from the ``kvpod_host``/``kvpod_area`` properties the suite records; for a JUnit
    file without them, from the test id's parameter (matched against ``rows``) and the test's folder.
    """
    root = ET.fromstring(xml_text)
    checks: list[Check] = []
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        name = case.get("name", "")
        classname = case.get("classname", "")
        host = props.get("kvpod_host") or host_of_test(name, rows)
        area = props.get("kvpod_area") or _area_from_classname(classname)
        outcome, message = _outcome(case)
        what, expected, found = split_message(message) if outcome in ("failed", "error") else (message, None, None)
        checks.append(
            Check(
                name=name,
                test_id=props.get("kvpod_test") or f"{classname}::{name}",
                host=host or "?",
                area=area or "?",
                outcome=outcome,
                message=what if outcome in ("failed", "error") else message,
                expected=expected,
                found=found,
                reported=tuple((k, v) for k, v in props.items() if k and not k.startswith("kvpod_")),
            )
        )
    areas = [*AREAS, *sorted({c.area for c in checks} - set(AREAS))]
    all_rows = rows + sorted({c.host for c in checks} - set(rows))
    return VerifyReport(checks, all_rows, areas)
