"""End to end in the QEMU lab: bring-up, idempotence, data safety, access control, verify, the failover drill, reboots.

The tests share one lab (booted once per session) and run in file order; each leaves the pod converged.
"""

from __future__ import annotations

import json

import pytest

from deploy.loader import load_spec
from deploy.nvme_settings import ATTRIBUTES, PathSettings, controller_values, queue_count_problem
from deploy.plan import build_plan
from deploy.statedir import state_dir

from .conftest import LAB_SPEC, failing_checks, kvpod, report
from .lab_checks import direct_sha256_command

pytestmark = pytest.mark.lab

PLAN = build_plan(load_spec(LAB_SPEC))
NODE1, NODE2 = PLAN.nodes
SPARE = next(s for s in PLAN.targets[0].subsystems if s.node is None)


ENGINES = " ".join(NODE1.engine_units())  # the same two units on every node


def vllm_pid(hosts, node: str) -> str:
    """The engines' main processes (one line each)."""
    return hosts.sh(node, f"systemctl show -p MainPID --value {ENGINES}").strip()


def engines_active(hosts, node: str, timeout: float = 300) -> bool:
    return all(hosts.wait_active(node, unit, timeout=timeout) for unit in NODE1.engine_units())


def fs_uuid(hosts, node: str) -> str:
    return hosts.sh(node, "findmnt -n -o UUID /mnt/kvcache").strip()


def test_lab_up_boots_brings_up_and_verifies(lab_up, hosts):
    assert lab_up.code == 0, lab_up.out[-3000:]
    assert "the pod matches its plan" in lab_up.out
    # `gpus: 8` at TP 4: two engines per node, each its own unit, GPUs, port, budgets and disk-tier directory,
    # each healthy and serving the model (verify, which `up` ends with, checked each engine as its own row)
    for n in PLAN.nodes:
        assert [e.port for e in n.engines] == [8000, 8001]
        assert len({e.disk_dir for e in n.engines}) == len({e.lmcache.env_file for e in n.engines}) == 2
        for e in n.engines:
            assert hosts.rc(n.name, f"systemctl is-active --quiet {e.unit}") == 0, (n.name, e.unit)
            models = hosts.sh(
                n.name, f"python3 -c 'import urllib.request as u; print(u.urlopen(\"{e.models_url}\").read().decode())'"
            )
            assert n.vllm.model in models, (n.name, e.unit, models)
            env = hosts.sh(n.name, f"cat {e.lmcache.env_file}")
            assert f"LMCACHE_LOCAL_DISK=file://{e.disk_dir}/\n" in env and "LMCACHE_MAX_LOCAL_DISK_SIZE=0.125\n" in env
            probe = json.loads(hosts.sh(n.name, f"cat {e.disk_dir}/.kvpod-standin-probe"))
            assert (probe["cuda_visible_devices"], probe["port"]) == (e.cuda_visible_devices, str(e.port)), probe
        assert hosts.rc(n.name, "test -e /etc/systemd/system/kvpod-vllm.service") != 0
        assert sorted(hosts.sh(n.name, f"ls {n.lmcache_root}").split()) == ["engine0", "engine1"]


def test_lab_is_isolated(hosts):
    """The VMs have no route out; the host holds no address on the fabric."""
    for vm in ("target", NODE1.name, NODE2.name):
        routes = hosts.sh(vm, "ip -4 route show default")
        assert routes.strip() == "", f"{vm} has a default route: {routes}"
    from deploy.lab.network import bridge_ports

    assert set(bridge_ports()) == {"kvl-target", "kvl-node1", "kvl-node2"}


def test_second_up_changes_nothing_and_restarts_nothing(hosts, tmp_path):
    before = {n.name: vllm_pid(hosts, n.name) for n in PLAN.nodes}
    run = kvpod("up", str(LAB_SPEC), "--yes", "--no-verify", "--report", str(tmp_path / "r.json"))
    assert run.code == 0
    data = report(tmp_path / "r.json")
    assert data["changed_operations"] == 0
    assert {h["status"] for h in data["hosts"].values()} == {"unchanged"}
    assert {n.name: vllm_pid(hosts, n.name) for n in PLAN.nodes} == before


def test_credential_files_are_0640_and_the_cleaner_follows_no_swapped_in_link(hosts):
    """The LMCache files and the Hugging Face env file (the lab's fake token) are 0640 root:<vLLM group>, and the
    token is on each node and in no file of kvpod's state directory (run logs, reports, plans). The disk-tier
    cleaner, run as root, refuses a directory that is a link, and a link swapped in after its checks (by a
    `chown` shim on PATH, the race made deterministic) changes nothing outside the tier: the link's target keeps
    its mode and files."""
    node, user = NODE1.name, NODE1.vllm.user
    lm = NODE1.lmcache
    for path in [lm.env_file, *([lm.config_file] if lm.config_mode == "yaml" and lm.config_file else [])]:
        assert hosts.sh(node, f"stat -c '%a %U %G' {path}").split() == ["640", "root", user], path
    token = NODE1.vllm.hf_env["HF_TOKEN"].reveal()
    for n in PLAN.nodes:
        assert hosts.sh(n.name, f"stat -c '%a %U %G' {n.vllm.hf_env_file}").split() == ["640", "root", user], n.name
        assert hosts.sh(n.name, f"sed -n 's/^HF_TOKEN=//p' {n.vllm.hf_env_file}").strip() == token, n.name
    runs = state_dir() / "runs" / PLAN.pod
    assert runs.is_dir() and any(runs.iterdir()), f"no run kept under {runs}"
    holding = [p for p in state_dir().rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert holding == [], f"the token is in {holding}"
    engine = NODE1.engines[0]
    tier = engine.disk_dir
    aside = f"{NODE1.mount.path}/kvpod-test-aside"  # outside the disk-tier root, which the cleaner sweeps
    clean = f"/usr/local/sbin/kvpod-lmcache-clean engine{engine.index}"
    # a chown that, run inside the engine's directory, first swaps a link to $o in for it
    shim = f'#!/bin/sh\\nif [ "$(pwd -P)" = {tier} ]; then mv {tier} {aside} && ln -s %s {tier}; fi\\n'
    shim += 'exec /bin/chown "$@"\\n'
    race = f"""set -e
o=$(mktemp -d /root/kvpod-outside.XXXXXX); chmod 700 "$o"; touch "$o/keep"
b=$(mktemp -d)
printf '{shim}' "$o" > "$b/chown"
chmod 755 "$b/chown"
rc=0; PATH="$b:$PATH" {clean} >/dev/null 2>&1 || rc=$?
echo "rc=$rc mode=$(stat -c %a "$o") files=$(ls "$o")"
rm {tier}; mv {aside} {tier}
mv {tier} {aside} && ln -s "$o" {tier}
rc=0; {clean} 2>&1 || rc=$?
echo "rc=$rc mode=$(stat -c %a "$o") files=$(ls "$o")"
rm {tier}; mv {aside} {tier}; rm -rf "$o" "$b"
"""
    hosts.sh(node, f"systemctl stop {engine.unit}")
    try:
        out = hosts.sh(node, race)
    finally:
        hosts.sh(node, f"systemctl start {engine.unit}")
    swapped, linked = [line for line in out.splitlines() if line.startswith("rc=")]
    assert swapped == "rc=0 mode=700 files=keep", out
    assert linked == "rc=1 mode=700 files=keep" and "is a symbolic link" in out, out
    assert hosts.sh(node, f"stat -c '%a %U' {tier}").split() == ["750", user]
    assert engines_active(hosts, node)


def test_existing_filesystem_is_kept_and_its_files_survive(hosts, tmp_path):
    """A namespace that already holds ext4 with files is mounted again, never reformatted."""
    hosts.sh(NODE1.name, "echo precious > /mnt/kvcache/precious.txt && sync")
    uuid = fs_uuid(hosts, NODE1.name)
    # take the node's mount and its unit away, as if kvpod had never configured this node's mount
    hosts.sh(
        NODE1.name,
        f"systemctl stop {ENGINES} mnt-kvcache.mount && rm /etc/systemd/system/mnt-kvcache.mount "
        "&& systemctl daemon-reload",
    )
    out = str(tmp_path / "r.json")
    run = kvpod("up", str(LAB_SPEC), "--yes", "--no-verify", "--limit", NODE1.name, "--report", out)
    assert run.code == 0
    changes = " ".join(report(tmp_path / "r.json")["hosts"][NODE1.name]["changes"])
    assert "mnt-kvcache.mount" in changes
    assert fs_uuid(hosts, NODE1.name) == uuid
    assert hosts.sh(NODE1.name, "cat /mnt/kvcache/precious.txt").strip() == "precious"
    assert engines_active(hosts, NODE1.name)


def test_node_without_the_drive_is_refused_by_the_target(hosts):
    """Host access: node2 may not connect to node1's drive, nor to the spare."""
    for nqn in (NODE1.namespace.subsystem_nqn, SPARE.nqn):
        for portal in NODE2.namespace.portals:
            rc = hosts.rc(NODE2.name, f"nvme connect -t rdma -a {portal.address} -s 4420 -n {nqn}")
            assert rc != 0, f"node2 connected to {nqn} via {portal.address}"
    out = hosts.sh(NODE2.name, "cat /sys/class/nvme-subsystem/*/subsysnqn")
    assert out.split() == [NODE2.namespace.subsystem_nqn]


BREAKS = {
    # node -> (how to break it, the checks verify must name)
    "unmount": (NODE1.name, "systemctl stop mnt-kvcache.mount", {"test_mount_unit_active", "test_filesystem"}),
    "wrong MTU": (NODE2.name, f"ip link set {NODE2.fabric.vlan_interface} mtu 1500", {"test_vlan_mtu"}),
    "stop the unit": (
        NODE1.name,
        f"systemctl stop {NODE1.engines[1].unit}",
        {"test_unit_active", "test_health", "test_model_served"},
    ),
    "remount without noatime": (NODE2.name, "mount -o remount,strictatime /mnt/kvcache", {"test_mount_option"}),
    "disconnect the namespace": (
        NODE1.name,
        f"systemctl stop {ENGINES} mnt-kvcache.mount && nvme disconnect -n {NODE1.namespace.subsystem_nqn}",
        {"test_controller_per_portal", "test_mounted_subsystem"},
    ),
    "break vLLM's environment": (
        NODE2.name,
        "rm -r /opt/kvpod/vllm/lib/python3*/site-packages/lmcache /opt/kvpod/vllm/lib/python3*/site-packages/lmcache-*",
        {"test_interpreter_imports_the_lmcache_connector"},
    ),
}
ONLY = {"break vLLM's environment"}  # breaks that must fail their checks and nothing else on their node


@pytest.mark.parametrize(
    "rounds",
    [
        [
            ["unmount", "wrong MTU"],
            ["stop the unit", "remount without noatime"],
            ["disconnect the namespace", "break vLLM's environment"],
        ]
    ],
    ids=["three-rounds"],
)
def test_verify_names_each_break_and_up_repairs_it(hosts, tmp_path, rounds):
    """Break one thing per node, verify names exactly those checks on exactly that node, up repairs."""
    for i, names in enumerate(rounds):
        for name in names:
            node, command, _ = BREAKS[name]
            hosts.sh(node, command)
        junit = tmp_path / f"verify-{i}.xml"
        run = kvpod("verify", str(LAB_SPEC), "--junit", str(junit))
        assert run.code == 1
        failed = failing_checks(junit)
        for name in names:
            node, _, checks = BREAKS[name]
            for check in checks:
                assert any(f.startswith(f"{check}[{node}") for f in failed), (name, check, sorted(failed))
        broken_nodes = {BREAKS[n][0] for n in names}
        for f in failed:
            assert any(f"[{node}" in f for node in broken_nodes), f"unexpected failure {f}"
        for name in ONLY & set(names):
            node, _, checks = BREAKS[name]
            assert {f.split("[")[0] for f in failed if f"[{node}" in f} == checks, (name, sorted(failed))
        fixed = kvpod("up", str(LAB_SPEC), "--yes")  # up ends with verify: exit 0 only when it holds
        assert fixed.code == 0, fixed.out[-3000:]


def test_node_reboot_comes_back_without_kvpod(hosts):
    hosts.sh(NODE2.name, "echo survives > /mnt/kvcache/reboot.txt && sync")
    hosts.reboot(NODE2.name)
    assert engines_active(hosts, NODE2.name)
    assert hosts.sh(NODE2.name, "findmnt -n -o OPTIONS /mnt/kvcache").count("noatime") == 1
    assert hosts.sh(NODE2.name, "cat /mnt/kvcache/reboot.txt").strip() == "survives"
    subsys = hosts.sh(NODE2.name, "cat /sys/class/nvme-subsystem/*/subsysnqn").split()
    assert subsys == [NODE2.namespace.subsystem_nqn]
    controllers = hosts.sh(NODE2.name, "cat /sys/class/nvme/nvme*/state").split()
    assert controllers == ["live"] * len(NODE2.namespace.portals)
    # the boot-time connect kept the spec's multipath policy and connect settings (read back from sysfs)
    ns = NODE2.namespace
    assert hosts.sh(NODE2.name, "cat /sys/class/nvme-subsystem/*/iopolicy").split() == [ns.iopolicy]
    assert ns.iopolicy == "round-robin" and ns.ctrl_loss_tmo == 900 and ns.keep_alive_tmo == 10  # not defaults
    shown = hosts.sh(
        NODE2.name,
        "for c in /sys/class/nvme/nvme*; do for a in " + " ".join(ATTRIBUTES) + "; do "
        'printf \'%s %s %s\\n\' "${c##*/}" "$a" "$(cat "$c/$a" 2>/dev/null || echo absent)"; done; done',
    )
    found: dict[str, dict[str, str]] = {}
    for line in shown.splitlines():
        ctrl, attribute, value = line.split(" ", 2)
        found.setdefault(ctrl, {})[attribute] = value.strip()
    assert len(found) == len(ns.portals), shown
    settings = PathSettings.of(ns)
    for ctrl, values in found.items():
        assert {a: values[a] for a in controller_values(settings)} == controller_values(settings), (ctrl, values)
        assert queue_count_problem(settings, values["queue_count"]) is None, (ctrl, values)


def test_target_reboot_restores_its_configuration(hosts):
    hosts.reboot("target")
    assert hosts.wait_active("target", "kvpod-nvmet", timeout=300)
    run = kvpod("verify", str(LAB_SPEC))
    assert run.code == 0, run.out[-3000:]


def assert_drilled_clean(result: dict, max_stall_s: float) -> None:
    """A node that kept writing through the outage: no I/O error, verification clean, every path back, ext4 rw."""
    assert result["status"] == "passed", result
    assert result["io_errors"] == 0 and result["verify"] == "clean" and result["verified_bytes"] > 0, result
    assert result["paths_back"] is True and result["mount_rw"] is True, result
    assert result["max_stall_s"] <= max_stall_s, result


def test_drill_on_an_iom_keeps_every_node_writing_and_its_data(hosts, tmp_path):
    """`kvpod drill failover --portal` takes the second IOM's portal away while fio writes and verifies on both
    nodes: no I/O error, verification clean, every path back, ext4 read-write, no drill file left; a file written
    before reads back unchanged with O_DIRECT (from the drive), and verify is green afterwards. (The first IOM's
    portal is drilled by the next test, where node2, with both paths, must pass the same way.)"""
    portal = PLAN.targets[0].portals[1]
    label = f"target/{portal.iom}/{portal.port}"
    assert portal.iom != PLAN.targets[0].portals[0].iom, "the lab's two portals are on two IOMs"
    before = hosts.sh(
        NODE1.name,
        "dd if=/dev/urandom of=/mnt/kvcache/mp.bin bs=1M count=16 oflag=direct status=none && sync && "
        + direct_sha256_command("/mnt/kvcache/mp.bin"),
    ).split()[0]
    out = tmp_path / "drill.json"
    run = kvpod(
        "drill", str(LAB_SPEC), "failover", "--portal", label, "--duration", "10", "--json", str(out), timeout=900
    )
    assert run.code == 0, run.out[-4000:]
    doc = report(out)
    assert doc["rounds"] == [label]
    assert sorted(r["node"] for r in doc["results"]) == sorted(n.name for n in PLAN.nodes)
    for r in doc["results"]:
        assert_drilled_clean(r, doc["max_stall_s"])
    for n in PLAN.nodes:
        assert hosts.rc(n.name, f"test -e {n.mount.path}/.kvpod-drill") != 0, f"{n.name} kept the drill directory"
        assert hosts.sh(n.name, "cat /sys/class/nvme/nvme*/state").split() == ["live"] * len(n.namespace.portals)
    assert hosts.sh(NODE1.name, direct_sha256_command("/mnt/kvcache/mp.bin")).split()[0] == before
    hosts.sh(NODE1.name, "rm -f /mnt/kvcache/mp.bin")
    verify = kvpod("verify", str(LAB_SPEC))
    assert verify.code == 0, verify.out[-3000:]


def test_drill_with_one_path_left_fails_honestly_and_up_restores_the_path(hosts, tmp_path):
    """node1 loses its controller through the second portal (disconnected on the node); the drill on the first
    portal then stalls node1's I/O for the whole outage: exit 2, node1 failed by its stall and its missing path,
    node2 (both paths) passed as every node did on the second portal: no I/O error, verification clean, every path
    back, ext4 read-write. `kvpod up` connects the second path again."""
    first, second = PLAN.targets[0].portals[:2]
    hosts.sh(
        NODE1.name,
        "for c in /sys/class/nvme/nvme*; do "
        f'if grep -q "^traddr={second.address}," "$c/address"; then nvme disconnect -d "${{c##*/}}"; fi; done',
    )
    assert hosts.sh(NODE1.name, "cat /sys/class/nvme/nvme*/state").split() == ["live"]
    out = tmp_path / "drill.json"
    try:
        portal = f"target/{first.iom}/{first.port}"
        run = kvpod("drill", str(LAB_SPEC), "failover", "--portal", portal, "--duration", "10", "--json", str(out))
        assert run.code == 2, run.out[-4000:]
        doc = report(out)
        assert doc["rounds"] == [portal]
        results = {r["node"]: r for r in doc["results"]}
        assert_drilled_clean(results[NODE2.name], doc["max_stall_s"])
        mine = results[NODE1.name]
        assert mine["status"] == "failed" and mine["paths_before"] == "1/2 live", mine
        # what the node saw during the outage: its I/O stalled past the threshold, or failed
        assert mine["max_stall_s"] > doc["max_stall_s"] or mine["io_errors"], mine
        assert any(r.startswith("I/O stalled") or "I/O error" in r for r in mine["reasons"]), mine
        assert f"{NODE1.name} ({portal}): " in run.out
    finally:
        fixed = kvpod("up", str(LAB_SPEC), "--yes")  # reconnects node1's second path; ends with verify
    assert fixed.code == 0, fixed.out[-3000:]
    assert hosts.sh(NODE1.name, "cat /sys/class/nvme/nvme*/state").split() == ["live", "live"]
