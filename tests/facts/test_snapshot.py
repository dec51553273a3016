"""The one-command state read: its script runs for real and answers exactly what each fact read alone answers;
a converged host is served entirely from it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import FactBase
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl, Which

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import changed_commands, deploy_plan, deploy_run
from deploy.engine import RunStats
from deploy.facts.kernel import LoadedModules, RdmaLinks
from deploy.facts.network import IpLinks, IpRoutes, NetplanFiles
from deploy.facts.nvme import NvmeCliVersion, NvmeHostIdentity, NvmeSubsystems
from deploy.facts.snapshot import MISSING_COMMAND, NamespaceReads, Read, parse_snapshot, read_key, snapshot_script
from deploy.facts.storage import MountedAt
from deploy.facts.users import PasswdEntry
from deploy.loader import load_spec
from deploy.plan import build_plan
from deploy.shipped import lab_spec, reference_spec
from deploy.targets import driver_for, managed_groups
from roles.node import node
from roles.node import reads as node_reads
from tests.conftest import ROOT

SPECS = [lab_spec(), reference_spec(), ROOT / "examples" / "per-node-vlan" / "pod.yaml"]


def run_sh(script: str) -> list[str]:
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.splitlines()


def alone(read: Read) -> object:
    """What pyinfra's ``get_fact`` returns for this read, its command run on its own in a shell."""
    fact: FactBase = read.fact()
    args = read.arguments()
    command = fact.command(**args) if callable(fact.command) else fact.command
    text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
    requires = fact.requires_command(**args) if callable(fact.requires_command) else None
    if requires and subprocess.run(["sh", "-c", f"command -v {requires}"], capture_output=True).returncode:
        return fact.default()
    result = subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return "failed"
    lines = result.stdout.splitlines()
    return fact.process(lines) if lines else fact.default()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "lmcache.env").write_text("LMCACHE_CHUNK_SIZE=256\n")
    (tmp_path / "etc" / "empty").write_text("")
    (tmp_path / "with blank").write_text("x\n")
    (tmp_path / "link").symlink_to(tmp_path / "etc" / "lmcache.env")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.chmod(tmp_path / "etc" / "lmcache.env", 0o640)
    return tmp_path


def test_snapshot_answers_what_each_fact_answers_alone(tree: Path) -> None:
    paths = [tree / "etc" / "lmcache.env", tree / "etc", tree / "etc" / "empty", tree / "missing", tree / "link"]
    paths += [tree / "dangling", tree / "with blank"]
    reads = [Read.of(cls, path=str(p)) for p in paths for cls in (File, Directory, Sha1File)]
    reads += [Read.of(cls) for cls in (LoadedModules, RdmaLinks, IpLinks, IpRoutes, NetplanFiles, NvmeSubsystems)]
    reads += [Read.of(NvmeHostIdentity), Read.of(NvmeCliVersion), Read.of(MountedAt, path=str(tree))]
    reads += [Read.of(PasswdEntry, user="root"), Read.of(PasswdEntry, user="no-such-user")]
    reads += [Read.of(Sysctl, keys=[k]) for k in ("kernel.hostname", "kernel.no_such_key", "net.core.rmem_max")]
    reads += [Read.of(Which, command="sh"), Read.of(Which, command="nope")]
    values = parse_snapshot(run_sh(snapshot_script(reads)))
    for read in reads:
        expected = alone(read)
        if expected == "failed":
            assert read.key not in values, read.key
        else:
            assert without_atime(values[read.key]) == without_atime(expected), read.key


def without_atime(value: object) -> object:
    """A file's fact without its access time: reading a file (its checksum) may move it between two reads."""
    return {k: v for k, v in value.items() if k != "atime"} if isinstance(value, dict) else value


def test_grouped_reads_take_few_processes(tree: Path) -> None:
    reads = [Read.of(cls, path=str(tree / f"f{i}")) for i in range(30) for cls in (File, Directory, Sha1File)]
    script = snapshot_script(reads)
    assert script.count("stat -c") == 1 and script.count("sha1sum") == 1
    assert len(parse_snapshot(run_sh(script))) == 90


def test_namespace_reads_follow_the_namespace_found_by_nqn(tree: Path) -> None:
    """No such subsystem here: nothing is read, so the device's facts are read live (never guessed)."""
    values = parse_snapshot(run_sh(snapshot_script([NamespaceReads("nqn.2024-01.io.example:none", 1)])))
    assert values == {}


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parent.name)
def test_node_and_target_scripts_are_valid_sh(spec: Path) -> None:
    plan = build_plan(load_spec(spec))
    scripts = [snapshot_script(node_reads(n)) for n in plan.nodes[:2]]
    scripts += [snapshot_script(driver_for(g[0].kind).reads(g)) for g in managed_groups(plan)]
    for script in scripts:
        result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert len(script.encode()) < 100_000  # one argument of one command: well inside the kernel's limits


def test_missing_command_marker_matches_pyinfra() -> None:
    from pyinfra.api import facts

    assert facts._MISSING_COMMAND_MARKER == MISSING_COMMAND


def test_read_keys_fill_in_defaults_as_pyinfra_does() -> None:
    from pyinfra.facts.systemd import SystemdStatus

    assert Read.of(SystemdStatus, services=["a.service"]).key == read_key(
        SystemdStatus, {"services": ["a.service"], "user_mode": False, "_sudo": True}
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parent.name)
def test_converged_node_is_served_from_one_read(spec: Path) -> None:
    plan = build_plan(load_spec(spec)).nodes[0]
    remote = fresh_node(plan)
    stats = RunStats()
    state, host = deploy_run(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    assert host not in state.failed_hosts
    assert stats.snapshot_hits[host.name] > 0  # served until the first change, then read live
    stats = RunStats()
    remote.snapshots = 0
    planned = deploy_plan(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    assert changed_commands(planned) == []
    assert stats.live_reads == {}
    assert remote.snapshots == 1


def test_a_drifted_file_is_seen_through_the_snapshot() -> None:
    plan = build_plan(load_spec(lab_spec())).nodes[0]
    remote = fresh_node(plan)
    deploy_run(node, remote, {"kvpod_node": plan})
    remote.files[plan.lmcache.env_file]["content"] += "LMCACHE_EXTRA=1\n"
    stats = RunStats()
    planned = deploy_plan(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    uploads = [c[2] for c in changed_commands(planned) if isinstance(c, list) and c[0] == "upload"]
    assert uploads == [plan.lmcache.env_file]
    assert stats.live_reads == {}


def test_after_a_change_reads_are_live() -> None:
    """The namespace appears only after ``nvme connect``: the kv mount role must see it, not the snapshot."""
    plan = build_plan(load_spec(lab_spec())).nodes[0]
    remote = fresh_node(plan)
    stats = RunStats()
    state, host = deploy_run(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    assert host not in state.failed_hosts
    assert any(c.startswith("mkfs.ext4") or "mkfs.ext4" in c for c in remote.executed)
    assert any("NvmeSubsystems" in k for k in stats.live_reads[host.name])
