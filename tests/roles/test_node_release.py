"""``roles.node_release`` on simulated nodes (real pyinfra 3 ``State``; the executed commands change the node):
a released namespace is unmounted before it is disconnected, a failed unmount stops the run before the
disconnect, a released node needs nothing, the data on the drive is never touched."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import OperationError
from pyinfra.api.host import Host
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput, OutputLine

from benchmarks.kvpod_sim import DEVICE, EFFECTS, fresh_node, guarded_disconnect
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.engine import run_phase
from deploy.loader import load_spec
from deploy.plan import NodePlan, build_plan
from deploy.release import ReleaseRequest, namespace_device
from deploy.shipped import lab_spec
from roles.node import node
from roles.node_release import NvmeBlockUse, disconnect_command, node_release

A = "nqn.2024-01.io.kvpod.lab:target-drive01"  # node1's drive in the lab plan
B = "nqn.2024-01.io.kvpod.lab:target-drive02"
C = "nqn.2024-01.io.kvpod.lab:target-drive03"
LOCAL = "nqn.2014.08.org.nvmexpress:144d144dS6S1NS0T123456"
MOUNT = "/mnt/kvcache"
CONNECT_UNIT_FILE = "/etc/systemd/system/kvpod-nvme-connect.service"
CONNECT_SCRIPT = "/usr/local/sbin/kvpod-nvme-connect"

ENGINES = ("kvpod-vllm@0.service", "kvpod-vllm@1.service")  # the lab node's two engines
STOP_VLLM = [f"systemctl stop {unit}" for unit in ENGINES]
UNMOUNT = "systemctl stop mnt-kvcache.mount"
FORGET_CONNECTION = [
    "systemctl stop kvpod-nvme-connect.service",
    "systemctl disable kvpod-nvme-connect.service",
    f"rm -f {CONNECT_UNIT_FILE}",
    f"rm -f {CONNECT_SCRIPT}",
]


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    plan = build_plan(load_spec(lab_spec())).nodes[0]
    assert plan.namespace.subsystem_nqn == A and plan.mount.path == MOUNT
    return plan


def disconnect(nqn: str, *devices: str) -> str:
    return disconnect_command(nqn, list(devices)).get_raw_value()


def release(keep: str | None, purge: bool = False) -> dict:
    return {"kvpod_release": ReleaseRequest(keep, MOUNT, purge=purge, engine_units=ENGINES)}


# -- the simulated node, extended with what release needs ----------------------------------------------------


def block_use(remote: FakeRemote) -> dict:
    """``NvmeBlockUse`` of the simulated node: its namespaces, mounted as ``remote.mounts`` says."""
    out = {
        ns["name"]: {"mounts": [], "holders": [], "ext4": False}
        for entry in remote.facts.get("nvme.NvmeSubsystems", {}).values()
        for ns in entry["namespaces"]
    }
    for path, mount in remote.mounts.items():
        name = namespace_device(posixpath.basename(mount["device"]))
        if name in out:
            out[name]["mounts"].append(path)
            out[name]["ext4"] = True
    for name, extra in remote.block_extra.items():  # type: ignore[attr-defined]
        out.setdefault(name, {"mounts": [], "holders": [], "ext4": False}).update(extra)
    return out


def _systemctl(remote: FakeRemote, argv: list[str]) -> bool:
    if argv[1] == "disable":
        remote.units.setdefault(argv[-1], {})["enabled"] = False
        return True
    if argv[1] == "stop" and argv[-1] in remote.busy:  # type: ignore[attr-defined]
        return remote.busy[argv[-1]]  # type: ignore[attr-defined]  # False: fails; True: "succeeds", still mounted
    return EFFECTS["systemctl"](remote, argv)


def _umount(remote: FakeRemote, argv: list[str]) -> bool:
    remote.mounts.pop(argv[-1], None)
    if argv[-1] == MOUNT:
        remote.facts["storage.MountedAt"][f"path={MOUNT}"] = None
    return True


def _sh(remote: FakeRemote, argv: list[str]) -> bool:
    if "nvme disconnect" not in argv[2]:
        return True  # wait_for_namespace
    return guarded_disconnect(remote, argv, block_use(remote))  # the guard itself, under sh


def _rm(remote: FakeRemote, argv: list[str]) -> bool:
    if "-rf" in argv:
        gone = argv[-1].rstrip("/")
        for path in [p for p in remote.files if p == gone or p.startswith(gone + "/")]:
            remote.files.pop(path)
        for path in [p for p in remote.dirs if p == gone or p.startswith(gone + "/")]:
            remote.dirs.pop(path)
        return True
    return EFFECTS["rm"](remote, argv)


def releasable(remote: FakeRemote) -> FakeRemote:
    """Teach the simulated node the commands and the fact that release uses."""
    remote.block_extra = {}  # type: ignore[attr-defined]  # device -> {"holders": [...], "ext4": True}
    remote.busy = {}  # type: ignore[attr-defined]  # unit -> result of its stop, which leaves it mounted
    remote._fact_node_release_NvmeBlockUse = lambda: block_use(remote)  # type: ignore[attr-defined]
    remote.effects[:0] = [("systemctl", _systemctl), ("umount", _umount), ("sh", _sh), ("rm", _rm)]
    return remote


def converged_node(plan: NodePlan) -> FakeRemote:
    """A node in service on drive ``A``: connected, formatted, mounted, vLLM running."""
    remote = fresh_node(plan)
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts
    assert remote.mounts[MOUNT]["device"] == f"/dev/{DEVICE}"
    assert all(remote.units[unit]["running"] for unit in ENGINES)
    return releasable(remote)


def unit_state(remote: FakeRemote, unit: str) -> tuple[bool, bool]:
    """(enabled, running)."""
    return bool(remote.units[unit].get("enabled")), bool(remote.units[unit].get("running"))


def run(remote: FakeRemote, data: dict) -> tuple[list[str], bool]:
    """Run release for real: (executed commands, whether the host failed)."""
    before = len(remote.executed)
    state, host = deploy_run(node_release, remote, data)
    return remote.executed[before:], host in state.failed_hosts


def planned(remote: FakeRemote, data: dict) -> list:
    return changed_commands(deploy_plan(node_release, remote, data))


# -- handing the drive over -----------------------------------------------------------------------------------


def test_releasing_the_drive_in_service(lab: NodePlan) -> None:
    remote = converged_node(lab)
    signature = remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"]
    expected = [*STOP_VLLM, UNMOUNT, disconnect(A, DEVICE), *FORGET_CONNECTION, "systemctl daemon-reload"]

    assert planned(remote, release(B)) == expected, "a dry run shows every step"
    executed, failed = run(remote, release(B))
    assert not failed
    assert executed == expected
    assert A not in remote.facts["nvme.NvmeSubsystems"]
    assert MOUNT not in remote.mounts
    assert CONNECT_SCRIPT not in remote.files and CONNECT_UNIT_FILE not in remote.files
    assert unit_state(remote, "kvpod-nvme-connect.service") == (False, False)
    assert all(unit_state(remote, u) == (True, False) for u in ENGINES), "the node deploy starts them again"
    assert "/etc/systemd/system/mnt-kvcache.mount" in remote.files, "the node deploy rewrites it"
    assert remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"] == signature, "the data is untouched"

    assert planned(remote, release(B)) == []
    assert run(remote, release(B)) == ([], False), "a released node needs nothing"


def test_keeping_the_connected_drive_changes_nothing(lab: NodePlan) -> None:
    remote = converged_node(lab)
    assert planned(remote, release(A)) == []
    assert run(remote, release(A)) == ([], False)


def test_a_lingering_second_drive_is_disconnected_and_the_kept_one_left_alone(lab: NodePlan) -> None:
    remote = converged_node(lab)
    lingering = {"name": "nvme2", "transport": "rdma", "traddr": "10.78.0.1", "trsvcid": "4420", "state": "live"}
    remote.facts["nvme.NvmeSubsystems"][C] = {
        "subsystem": "nvme-subsys2",
        "controllers": [lingering],
        "namespaces": [{"name": "nvme2n1", "nsid": 1, "size": 1}],
    }
    executed, failed = run(remote, release(A))
    assert (executed, failed) == ([disconnect(C, "nvme2n1")], False)
    assert list(remote.facts["nvme.NvmeSubsystems"]) == [A]
    assert remote.units[ENGINES[0]]["running"] and remote.mounts[MOUNT]


def test_a_stale_connect_unit_is_not_stopped_under_the_kept_mount(lab: NodePlan) -> None:
    """The connect script still names the old drive while the kept one is mounted: stopping the unit would
    unmount the kept drive (its mount unit Requires= it), so it is only disabled and removed."""
    remote = converged_node(lab)
    script = remote.files[CONNECT_SCRIPT]["content"]
    assert f"\nNQN={A}\n" in script
    remote.files[CONNECT_SCRIPT]["content"] = script.replace(f"NQN={A}", f"NQN={C}")
    executed, failed = run(remote, release(A))
    assert not failed
    assert executed == [*FORGET_CONNECTION[1:], "systemctl daemon-reload"]
    assert remote.mounts[MOUNT] and remote.units[ENGINES[0]]["running"]


def test_local_drives_are_never_released(lab: NodePlan) -> None:
    remote = converged_node(lab)
    local = {"name": "nvme0", "transport": "pcie", "traddr": "0000:01:00.0", "trsvcid": None, "state": "live"}
    remote.facts["nvme.NvmeSubsystems"][LOCAL] = {
        "subsystem": "nvme-subsys0",
        "controllers": [local],
        "namespaces": [{"name": "nvme0n1", "nsid": 1, "size": 1}],
    }
    remote.mounts["/"] = {"device": "/dev/nvme0n1p2", "type": "ext4", "options": ["rw"]}
    executed, failed = run(remote, release(None))
    assert not failed
    assert executed[:4] == [*STOP_VLLM, UNMOUNT, disconnect(A, DEVICE)]
    assert not any("nvme0" in c or "umount" in c for c in executed)
    assert LOCAL in remote.facts["nvme.NvmeSubsystems"] and "/" in remote.mounts


def test_a_drive_mounted_elsewhere_too_is_unmounted_everywhere(lab: NodePlan) -> None:
    remote = converged_node(lab)
    remote.mounts["/srv/a b"] = {"device": f"/dev/{DEVICE}", "type": "ext4", "options": ["rw"]}
    executed, failed = run(remote, release(B))
    assert not failed
    assert executed[:5] == [*STOP_VLLM, UNMOUNT, "umount '/srv/a b'", disconnect(A, DEVICE)]


def test_a_node_whose_vllm_was_never_installed(lab: NodePlan) -> None:
    """A node deploy interrupted before the vllm role: no vLLM unit to stop (systemctl would refuse it)."""
    remote = converged_node(lab)
    for unit in ENGINES:
        del remote.units[unit]
        del remote.files[f"/etc/systemd/system/{unit}"]
    executed, failed = run(remote, release(B))
    assert not failed
    assert executed[:2] == [UNMOUNT, disconnect(A, DEVICE)]


def test_vllm_is_stopped_even_when_not_seen_running(lab: NodePlan) -> None:
    """Between two tries of Restart=on-failure vLLM is not running, yet it would start (and mount) again."""
    remote = converged_node(lab)
    for unit in ENGINES:
        remote.units[unit]["running"] = False
    executed, _ = run(remote, release(B))
    assert executed[:3] == [*STOP_VLLM, UNMOUNT]


def test_the_single_engine_unit_of_earlier_releases_is_stopped_even_when_not_seen_running(lab: NodePlan) -> None:
    """A node still on the single-engine layout: ``kvpod-vllm.service`` installed, between two tries of its
    Restart=, is stopped before the unmount (it would start and mount again)."""
    remote = converged_node(lab)
    for unit in ENGINES:
        del remote.units[unit]
        del remote.files[f"/etc/systemd/system/{unit}"]
    remote.units["kvpod-vllm.service"] = {"running": False, "enabled": True}
    remote.files["/etc/systemd/system/kvpod-vllm.service"] = {"content": "[Service]\n", "mode": 644}
    executed, failed = run(remote, release(B))
    assert not failed
    assert executed[:2] == ["systemctl stop kvpod-vllm.service", UNMOUNT]


# -- never disconnect a mounted namespace ---------------------------------------------------------------------


def test_a_failing_unmount_stops_the_run_before_the_disconnect(lab: NodePlan) -> None:
    remote = converged_node(lab)
    remote.busy["mnt-kvcache.mount"] = False  # type: ignore[attr-defined]  # umount: target is busy
    executed, failed = run(remote, release(B))
    assert failed
    assert executed == [*STOP_VLLM, UNMOUNT]
    assert A in remote.facts["nvme.NvmeSubsystems"] and remote.mounts[MOUNT]
    assert CONNECT_SCRIPT in remote.files, "nothing after the failed step ran"

    del remote.busy["mnt-kvcache.mount"]  # type: ignore[attr-defined]  # the user stopped what held it
    executed, failed = run(remote, release(B))
    assert not failed
    assert executed[:4] == [*STOP_VLLM, UNMOUNT, disconnect(A, DEVICE)], "a rerun finishes the release"


def test_a_mount_that_survives_its_unmount_is_never_disconnected(lab: NodePlan) -> None:
    remote = converged_node(lab)
    remote.busy["mnt-kvcache.mount"] = True  # type: ignore[attr-defined]  # stop "succeeds", still mounted
    executed, failed = run(remote, release(B))
    assert failed
    assert executed[:3] == [*STOP_VLLM, UNMOUNT]
    assert executed[3] == (
        f"echo 'kvpod: /dev/nvme1n1 is still mounted at /mnt/kvcache (a busy unmount?): not disconnecting {A}' "
        ">&2; exit 1"
    )
    assert not any("nvme disconnect" in c for c in executed)
    assert A in remote.facts["nvme.NvmeSubsystems"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"holders": ["dm-0"]}, re.escape("in use by dm-0 (device-mapper or RAID)")),
        ({"ext4": True}, "mounted in another mount namespace"),
    ],
    ids=["held", "mounted-in-a-container"],
)
def test_a_namespace_in_use_beyond_its_mounts_is_refused_before_anything(lab: NodePlan, extra, message) -> None:
    remote = converged_node(lab)
    remote.mounts.pop(MOUNT)
    remote.facts["storage.MountedAt"][f"path={MOUNT}"] = None
    remote.block_extra[DEVICE] = extra  # type: ignore[attr-defined]
    with pytest.raises(OperationError, match=message):
        planned(remote, release(B))
    executed, failed = run(remote, release(B))
    assert failed and len(executed) == 1 and executed[0].startswith("echo 'kvpod: /dev/nvme1n1 (")
    assert A in remote.facts["nvme.NvmeSubsystems"]


# -- pruning a node -------------------------------------------------------------------------------------------


def test_purge(lab: NodePlan) -> None:
    remote = converged_node(lab)
    signature = remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"]
    fabric_files = {p for p in remote.files if p.startswith(("/etc/systemd/network/", "/etc/sysctl.d/"))}
    expected = [
        *STOP_VLLM,
        UNMOUNT,
        disconnect(A, DEVICE),
        *FORGET_CONNECTION,
        *(c for unit in ENGINES for c in (f"systemctl disable {unit}", f"rm -f /etc/systemd/system/{unit}")),
        "systemctl disable mnt-kvcache.mount",
        "rm -f /etc/systemd/system/mnt-kvcache.mount",
        "rm -rf /etc/kvpod",
        "rm -f /etc/modules-load.d/kvpod-nvme.conf",
        "systemctl daemon-reload",
    ]
    assert planned(remote, release(None, purge=True)) == expected
    executed, failed = run(remote, release(None, purge=True))
    assert (executed, failed) == (expected, False)
    assert not any(p.startswith("/etc/kvpod") for p in remote.files)
    assert fabric_files and fabric_files <= set(remote.files), "the fabric network stays"
    assert "/etc/systemd/system/kvpod-rxe.service" in remote.files
    assert remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"] == signature, "the data is untouched"
    assert not any(w in c for c in executed for w in ("mkfs", "wipefs", "dd ", "tune2fs"))
    assert planned(remote, release(None, purge=True)) == []
    assert run(remote, release(None, purge=True)) == ([], False)


def test_release_needs_its_request() -> None:
    with pytest.raises(OperationError, match="no kvpod_release request"):
        deploy_plan(node_release, releasable(FakeRemote()), {})


# -- driven as the runner drives it ---------------------------------------------------------------------------


@pytest.fixture
def runner_node(lab: NodePlan, monkeypatch) -> FakeRemote:
    remote = converged_node(lab)

    def get_fact(self, cls, *args, **kwargs):
        return remote.get_fact(cls, *args, **kwargs)

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        ok = remote.run(text)
        stderr = [OutputLine("stderr", shlex.split(text)[1])] if not ok and text.startswith("echo") else []
        return ok, CommandOutput(stderr)

    monkeypatch.setattr(Host, "get_fact", get_fact)
    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    return remote


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_runner_reports_the_refused_disconnect(runner_node: FakeRemote) -> None:
    hosts = [("@fake/node1", {**release(B), "fake_delay": 0})]
    [dry] = run_phase("release", hosts, node_release, dry=True)
    assert dry.status == "would-change"
    runner_node.busy["mnt-kvcache.mount"] = True  # type: ignore[attr-defined]
    [result] = run_phase("release", hosts, node_release, dry=False)
    assert result.status == "failed"
    assert result.failed_step.endswith("released subsystems disconnected")
    assert result.stderr == [
        f"kvpod: /dev/nvme1n1 is still mounted at /mnt/kvcache (a busy unmount?): not disconnecting {A}"
    ]


# -- the fact and the guard on a real host ---------------------------------------------------------------------


def test_block_use_fact_parses_sysfs_and_mountinfo() -> None:
    output = [
        "dev\tnvme1n1\t259:1",
        "dev\tnvme1c1n1\t259:9",
        "dev\tnvme1n1p1\t259:2",
        "ext4\tnvme1n1p1",
        "dev\tnvme2n1\t259:3",
        "holder\tnvme2n1\tdm-0",
        "mnt\t259:2\t/mnt/kv\\040cache",
        "mnt\t259:2\t/srv/bind",
        "mnt\t254:0\t/",
    ]
    assert NvmeBlockUse().process(output) == {
        "nvme1n1": {"mounts": ["/mnt/kv cache", "/srv/bind"], "holders": [], "ext4": True},
        "nvme2n1": {"mounts": [], "holders": ["dm-0"], "ext4": False},
    }


def test_block_use_fact_command_runs_under_sh() -> None:
    done = subprocess.run(["sh", "-c", NvmeBlockUse().command()], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert isinstance(NvmeBlockUse().process(done.stdout.splitlines()), dict)


def _a_mounted_block_device() -> str | None:
    """A block device mounted on this machine (``vda``), read from sysfs and mountinfo; None when there is none."""
    majmins = {line.split()[2] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    for dev in sorted(Path("/sys/class/block").glob("*")):
        if (dev / "dev").exists() and (dev / "dev").read_text().strip() in majmins:
            return dev.name
    return None


def test_the_guard_on_the_host_refuses_a_mounted_device(tmp_path: Path) -> None:
    fake = tmp_path / "nvme"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/called\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    command = disconnect_command(A, ["nvme99n99"]).get_raw_value()
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "called").read_text() == f"disconnect --nqn {A}\n"
    (tmp_path / "called").unlink()

    mounted = _a_mounted_block_device()
    if mounted is None:
        pytest.skip("no mounted block device on this machine")
    command = disconnect_command(A, ["nvme99n99", mounted]).get_raw_value()
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr == f"kvpod: /dev/{mounted} is still mounted: not disconnecting {A}\n"
    assert not (tmp_path / "called").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_release_phase_reads_its_node_once(runner_node: FakeRemote, monkeypatch) -> None:
    """The pipeline's release run hands the runner the release's reads: one state read, no fact read live (a node
    that keeps its drive and holds no other has nothing to release)."""
    from deploy import orchestrate
    from deploy.engine import RunStats
    from deploy.pipeline.handover import Handover
    from deploy.pipeline.jobs import Scope, UpOptions
    from deploy.pipeline.phases import RELEASE

    def on_fake_host(role, hosts, deploy_func, **kwargs):
        return run_phase(
            role, [(f"@fake/{name}", {**data, "fake_delay": 0}) for name, data in hosts], deploy_func, **kwargs
        )

    monkeypatch.setattr(orchestrate, "run_phase", on_fake_host)
    plan = build_plan(load_spec(lab_spec()))
    request = ReleaseRequest(A, MOUNT, engine_units=ENGINES)
    scope = Scope(plan, UpOptions(), handover=Handover({"node1": request}, {}, [], []))
    stats, before = RunStats(), len(runner_node.executed)
    [result] = orchestrate.run_jobs(RELEASE, scope, None, stats)
    assert (result.status, runner_node.executed[before:]) == ("unchanged", [])
    assert getattr(runner_node, "snapshots", 0) == 1
    assert stats.live_reads == {}
