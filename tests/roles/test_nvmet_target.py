"""The nvmet target role run for real against a simulated Linux target, and the boot-time restore script it
writes run under ``sh`` against a scratch directory standing in for configfs: every subsystem admits exactly
the host NQN of the node the plan assigns it (a spare admits none), never any host."""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.kvpod_sim import _link, simulated
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.hosts import target_hosts
from deploy.loader import load_spec_text
from deploy.names import GB, NVMET_RESTORE_SCRIPT, NVMET_ROOT
from deploy.plan import Plan, TargetPlan, build_plan
from roles.nvmet_target import nvmet_ports, nvmet_target
from tests.conftest import LAB
from tests.golden import assert_golden

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def lab_plan() -> Plan:
    return build_plan(load_spec_text(LAB.read_text()))


def fresh_target(nvmet: dict | None = None) -> FakeRemote:
    """A Linux server with the portal NIC down at MTU 1500, nvmet's configfs empty (or ``nvmet``)."""
    remote = FakeRemote(
        facts={
            "kernel.LoadedModules": {},
            "kernel.RdmaLinks": {},
            "network.IpLinks": {"lo": _link(65536, True), "eth1": _link(1500, False)},
            "network.IpRoutes": [],
            "nvmet.NvmetConfig": nvmet or {"present": True, "subsystems": {}, "ports": {}, "hosts": []},
        },
        units={"systemd-networkd.service": {"running": True, "enabled": True}},
    )
    return simulated(remote)


def deployed(plan: Plan, remote: FakeRemote) -> FakeRemote:
    _, data = target_hosts(plan)[0]
    state, host = deploy_run(nvmet_target, remote, data)
    assert host not in state.failed_hosts, remote.executed[-5:]
    return remote


def wanted_hosts(target: TargetPlan) -> dict[str, list[str]]:
    return {s.nqn: [s.allowed_host_nqn] if s.allowed_host_nqn else [] for s in target.subsystems}


def test_the_target_deploy_admits_each_drive_to_its_node_alone_and_a_spare_to_none() -> None:
    plan = lab_plan()
    target = plan.targets[0]
    remote = deployed(plan, fresh_target())
    cfg = remote.facts["nvmet.NvmetConfig"]
    assert {nqn: sub["allowed_hosts"] for nqn, sub in cfg["subsystems"].items()} == wanted_hosts(target)
    assert [s for s in target.subsystems if s.node is None], "the lab has a spare drive"
    assert not any(sub["allow_any_host"] for sub in cfg["subsystems"].values())
    argvs = [shlex.split(c) for c in remote.executed]
    links = sorted(tuple(a[2:]) for a in argvs if a[:2] == ["ln", "-s"] and "/allowed_hosts/" in a[-1])
    assert links == sorted(
        (f"{NVMET_ROOT}/hosts/{h}", f"{NVMET_ROOT}/subsystems/{s.nqn}/allowed_hosts/{h}")
        for s in target.subsystems
        if (h := s.allowed_host_nqn)
    )
    any_host = [a for a in argvs if a[-1].endswith("/attr_allow_any_host")]
    assert any_host and all(a[:4] == ["printf", "%s", "0", ">"] for a in any_host)
    assert {pid: p["subsystems"] for pid, p in cfg["ports"].items()} == {
        str(p["port_id"]): sorted(p["subsystems"]) for p in nvmet_ports([target])
    }
    assert changed_commands(deploy_plan(nvmet_target, remote, target_hosts(plan)[0][1])) == []


def test_the_target_deploy_revokes_a_stale_host_and_any_host_access() -> None:
    plan = lab_plan()
    target = plan.targets[0]
    remote = deployed(plan, fresh_target())
    cfg = remote.facts["nvmet.NvmetConfig"]
    first, second, spare = target.subsystems
    cfg["subsystems"][first.nqn]["allowed_hosts"].append(second.allowed_host_nqn)  # node2 on node1's drive
    cfg["subsystems"][spare.nqn]["allowed_hosts"].append(first.allowed_host_nqn)  # a spare given to node1
    cfg["subsystems"][second.nqn]["allow_any_host"] = True
    deployed(plan, remote)
    assert {nqn: sub["allowed_hosts"] for nqn, sub in cfg["subsystems"].items()} == wanted_hosts(target)
    assert not any(sub["allow_any_host"] for sub in cfg["subsystems"].values())


def test_the_lab_targets_first_run_runs_the_golden_commands_in_order() -> None:
    """The lab target's first run, operation by operation and command by command (uploads by their operation), as
    the lab's VM receives them; a second run changes nothing."""
    plan = lab_plan()
    data = target_hosts(plan)[0][1]
    remote = fresh_target()
    names = [name for name, _ in deploy_plan(nvmet_target, copy.deepcopy(remote), data)]
    deployed(plan, remote)
    text = "\n".join(["# operations", *names, "# commands", *remote.executed]) + "\n"
    assert_golden("first-run-lab-target.txt", text)
    assert changed_commands(deploy_plan(nvmet_target, remote, data)) == []


# -- the boot-time restore script ------------------------------------------------------------------------------

MKDIR = """#!/bin/sh
# configfs: a new subsystem, namespace or port directory comes with its attributes and child directories;
# a directory outside the scratch configfs (the drives' backing files) is logged, never made on this machine
p=
for d in "$@"; do
  case "$d" in
    -p) p=-p ;;
    "$KVPOD_TEST_NVMET"/*) {mkdir} $p "$d" || exit $? ;;
    *) echo "mkdir $p $d" >> "$KVPOD_TEST_LOG" ;;
  esac
  case "$d" in
    "$KVPOD_TEST_NVMET"/subsystems/*/namespaces/*)
      printf 0 > "$d/enable"; : > "$d/device_path"; : > "$d/device_uuid"; : > "$d/device_nguid" ;;
    "$KVPOD_TEST_NVMET"/subsystems/*)
      {mkdir} "$d/namespaces" "$d/allowed_hosts"; printf 0 > "$d/attr_allow_any_host" ;;
    "$KVPOD_TEST_NVMET"/ports/*)
      {mkdir} "$d/subsystems"; for a in adrfam trtype traddr trsvcid; do : > "$d/addr_$a"; done ;;
  esac
done
"""

IP = """#!/bin/sh
# ip -o -4 addr show dev IFACE: the portal addresses of $KVPOD_TEST_ADDRS ("iface address" per line)
dev=$6
echo "$KVPOD_TEST_ADDRS" | while read -r iface addr; do
  [ "$iface" = "$dev" ] && echo "5: $iface    inet $addr/24 brd 10.78.0.255 scope global $iface"
done
exit 0
"""

SHIMS = {
    "modprobe": '#!/bin/sh\necho "modprobe $*" >> "$KVPOD_TEST_LOG"\n',
    "mountpoint": "#!/bin/sh\nexit 0\n",
    "mount": '#!/bin/sh\necho "unexpected mount $*" >&2\nexit 1\n',
    "sleep": '#!/bin/sh\necho "the portal addresses were not found" >&2\nexit 1\n',
    "truncate": '#!/bin/sh\necho "truncate $*" >> "$KVPOD_TEST_LOG"\n',
    "ip": IP,
}


@pytest.fixture
def restore(tmp_path: Path):
    """``run()`` runs the restore script the role wrote for the lab plan on ``tmp_path/nvmet``; returns the plan."""
    plan = lab_plan()
    remote = deployed(plan, fresh_target())
    script = remote.uploads[NVMET_RESTORE_SCRIPT]
    assert script.count("C=/sys/kernel/config/nvmet\n") == 1
    root = tmp_path / "nvmet"
    for sub in ("subsystems", "ports", "hosts"):
        (root / sub).mkdir(parents=True)
    (tmp_path / "restore").write_text(script.replace("C=/sys/kernel/config/nvmet\n", f"C={root}\n"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {**SHIMS, "mkdir": MKDIR.format(mkdir=shutil.which("mkdir"))}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    addresses = "\n".join(f"{p.vlan_interface} {p.address}" for t in plan.targets for p in t.portals)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "KVPOD_TEST_NVMET": str(root),
        "KVPOD_TEST_ADDRS": addresses,
        "KVPOD_TEST_LOG": str(tmp_path / "log"),
    }

    def run() -> str:
        done = subprocess.run(
            ["sh", str(tmp_path / "restore")], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run.plan, run.root, run.log = plan, root, tmp_path / "log"
    return run


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: a link's target, a file's content, a directory; with its modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path), path.lstat().st_mtime_ns)
            elif path.is_dir():
                out[rel] = ("dir", path.stat().st_mtime_ns)
            else:
                out[rel] = ("file", path.read_text(), path.stat().st_mtime_ns)
    return out


def assert_as_planned(plan: Plan, root: Path) -> None:
    target = plan.targets[0]
    for s in target.subsystems:
        sub = root / "subsystems" / s.nqn
        assert (sub / "attr_allow_any_host").read_text().strip() == "0", s.nqn
        allowed = sorted((sub / "allowed_hosts").iterdir())
        assert [p.name for p in allowed] == ([s.allowed_host_nqn] if s.allowed_host_nqn else []), s.nqn
        for link in allowed:
            assert link.is_symlink() and os.readlink(link) == str(root / "hosts" / link.name)
        ns = sub / "namespaces" / str(s.nsid)
        assert (ns / "enable").read_text().strip() == "1"
        assert (ns / "device_path").read_text() == s.device_path
        assert (ns / "device_uuid").read_text() == s.ns_uuid
    for p in nvmet_ports([target]):
        port = root / "ports" / str(p["port_id"])
        attrs = {a: (port / f"addr_{a}").read_text() for a in ("adrfam", "trtype", "traddr", "trsvcid")}
        assert attrs == {"adrfam": "ipv4", "trtype": p["trtype"], "traddr": p["traddr"], "trsvcid": str(p["trsvcid"])}
        links = sorted((port / "subsystems").iterdir())
        assert [x.name for x in links] == sorted(p["subsystems"])
        assert all(os.readlink(x) == str(root / "subsystems" / x.name) for x in links)


def test_the_restore_script_admits_each_drive_to_its_node_alone_and_a_spare_to_none(restore) -> None:
    out = restore()
    assert "3 subsystems, 2 ports" in out
    assert_as_planned(restore.plan, restore.root)
    made = restore.log.read_text().splitlines()
    for s in restore.plan.targets[0].subsystems:
        if not Path(s.device_path).exists():  # the sparse backing file of a file-backed drive
            assert f"truncate -s {int(s.capacity_gb * GB)} {s.device_path}" in made


def test_the_restore_script_revokes_stale_hosts_and_any_host_access(restore) -> None:
    restore()
    root, (first, second, spare) = restore.root, restore.plan.targets[0].subsystems
    stale = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000dead"
    (root / "hosts" / stale).mkdir()
    for s, host in ((first, stale), (first, second.allowed_host_nqn), (spare, first.allowed_host_nqn)):
        (root / "subsystems" / s.nqn / "allowed_hosts" / host).symlink_to(root / "hosts" / host)
    for s in (second, spare):
        (root / "subsystems" / s.nqn / "attr_allow_any_host").write_text("1")
    restore()
    assert_as_planned(restore.plan, restore.root)


def test_a_second_run_of_the_restore_script_changes_nothing(restore) -> None:
    restore()
    before = tree(restore.root)
    restore()
    assert tree(restore.root) == before
