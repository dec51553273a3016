"""Reads invalidated by effect: a command stales exactly the reads it can change, anything unknown stales every
read, and a host's reader serves what no command staled while reading the rest live again."""

from __future__ import annotations

import pytest
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Sysctl, TmpDir
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import FakeRemote, deploy_run, fake_state
from deploy.engine import RunStats
from deploy.facts.effect_model import ReadInvalidation, stales
from deploy.facts.effects import effect_of_call, effect_of_command, effect_of_upload
from deploy.facts.kernel import LoadedModules
from deploy.facts.network import IpLinks
from deploy.facts.nvme import NvmeSubsystems
from deploy.facts.python import VenvPackages
from deploy.facts.snapshot import Read
from deploy.facts.storage import BlockSignature, Ext4Info, MountedAt
from deploy.facts.users import PasswdEntry
from deploy.loader import load_spec
from deploy.operations.nvme import set_iopolicy, wait_for_namespace
from deploy.plan import build_plan
from deploy.shipped import lab_spec
from roles.node import node
from roles.node import reads as node_reads

ENV = "/etc/kvpod/lmcache@0.env"
KEYS = {
    "env": Read.of(File, path=ENV).key,
    "env dir": Read.of(Directory, path=ENV).key,
    "env sum": Read.of(Sha1File, path=ENV).key,
    "other file": Read.of(File, path="/etc/kvpod/vllm-hf.env").key,
    "etc/kvpod": Read.of(Directory, path="/etc/kvpod").key,
    "tier": Read.of(Directory, path="/mnt/kvcache/lmcache").key,
    "rxe": Read.of(SystemdStatus, services=["kvpod-rxe.service"]).key,
    "rxe enabled": Read.of(SystemdEnabled, services=["kvpod-rxe.service"]).key,
    "vllm": Read.of(SystemdStatus, services=["kvpod-vllm@0.service"]).key,
    "vllm enabled": Read.of(SystemdEnabled, services=["kvpod-vllm@0.service"]).key,
    "subsystems": Read.of(NvmeSubsystems).key,
    "signature": Read.of(BlockSignature, device="/dev/nvme1n1").key,
    "ext4": Read.of(Ext4Info, device="/dev/nvme1n1").key,
    "other signature": Read.of(BlockSignature, device="/dev/nvme2n1").key,
    "mounted": Read.of(MountedAt, path="/mnt/kvcache").key,
    "modules": Read.of(LoadedModules).key,
    "links": Read.of(IpLinks).key,
    "rmem": Read.of(Sysctl, keys=["net.core.rmem_max"]).key,
    "wmem": Read.of(Sysctl, keys=["net.core.wmem_max"]).key,
    "user": Read.of(PasswdEntry, user="vllm").key,
    "tmp": Read.of(TmpDir).key,
}


def staled(command: str) -> set[str]:
    effect = effect_of_command(command)
    return {name for name, key in KEYS.items() if stales(effect, key)}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("chmod 640 /etc/kvpod/lmcache@0.env", {"env", "env dir", "env sum"}),
        ("chown root:vllm /etc/kvpod", {"etc/kvpod"}),
        ("mkdir -p /etc/kvpod", {"etc/kvpod"}),
        ("install -d -m 750 -o vllm -g vllm /mnt/kvcache/lmcache", {"tier"}),
        ("install -d -m 750 -o vllm -g vllm /mnt/kvcache/lmcache /etc/kvpod", {"tier", "etc/kvpod"}),  # each named
        ("install -d -m 750 -o root -g vllm /etc/kvpod", {"etc/kvpod"}),
        ("rm -rf /mnt/kvcache", {"tier"}),
        ("systemctl enable kvpod-rxe.service", {"rxe", "rxe enabled", "vllm", "vllm enabled"}),  # it reloads
        ("systemctl daemon-reload", {"rxe", "rxe enabled", "vllm", "vllm enabled"}),
        (
            "nvme connect --transport rdma --nqn nqn.x:y --traddr 10.0.0.1 --trsvcid 4420",
            {"subsystems", "signature", "ext4", "other signature"},
        ),
        ("mkfs.ext4 -F -q -m 0 -O mmp -L kvcache /dev/nvme1n1", {"signature", "ext4"}),
        ("tune2fs -O mmp /dev/nvme1n1", {"signature", "ext4"}),
        ("umount /mnt/kvcache", {"mounted", "tier"}),
        ("mount -o remount,noatime /mnt/kvcache", {"mounted", "tier"}),
        (  # and the NVMe connect service it requires, when that is not active
            "systemctl start mnt-kvcache.mount",
            {"mounted", "tier", "rxe", "vllm", "modules", "rmem", "wmem", "subsystems", "signature", "ext4"}
            | {"other signature"},
        ),
        ("ip link set dev eth1 mtu 9000", {"links"}),
        ("sysctl net.core.rmem_max=134217728", {"rmem"}),
        (
            "sysctl net.core.rmem_max=134217728 net.core.wmem_max=134217728 net.ipv4.tcp_rmem='4096 131072 1'",
            {"rmem", "wmem"},
        ),
        ("modprobe -a nvme_fabrics nvme_rdma", {"modules", "rmem", "wmem"}),
        ("printf '%s\\n' nqn.x > /etc/kvpod/lmcache@0.env", {"env", "env dir", "env sum"}),
        ("useradd --system --user-group --create-home --home-dir /var/lib/vllm vllm", {"user"}),
    ],
)
def test_a_known_command_stales_only_what_it_can_change(command: str, expected: set[str]) -> None:
    assert staled(command) == expected


@pytest.mark.parametrize(
    "command",
    [
        "DEBIAN_FRONTEND=noninteractive apt-get -y install python3-venv",
        "systemctl stop 'kvpod-vllm*.service'",
        "systemctl start ssh.service",
        "chmod 640 /etc/x; rm -rf /",
        "mkdir -p relative/dir",
        "install -d -m 750 relative/dir",
        "install -m 640 /tmp/x /etc/kvpod/lmcache@0.env",
        "install -d -D -m 750 /mnt/kvcache/lmcache",
        "rm -rf $(cat /etc/list)",
        "some-new-tool --flag /etc/kvpod",
        "sh -c 'rm -rf /etc/kvpod'",
        "udevadm trigger",
        "nvme format /dev/nvme1n1",
        "echo 'refused' >&2; exit 1",
    ],
)
def test_an_unknown_command_stales_every_read(command: str) -> None:
    assert staled(command) == set(KEYS)


def test_an_upload_stales_that_path_and_a_unit_file_the_units() -> None:
    assert {n for n, k in KEYS.items() if stales(effect_of_upload(ENV), k)} == {"env", "env dir", "env sum"}
    unit = effect_of_upload("/etc/systemd/system/kvpod-rxe.service")  # enabled states, no running state
    assert {n for n, k in KEYS.items() if stales(unit, k)} == {"rxe enabled", "vllm enabled"}
    assert effect_of_call("put_file", ("src", ENV), {}) == effect_of_upload(ENV)
    assert effect_of_call("get_file", ("/etc/x", "dest"), {}) == effect_of_call("get_file", (), {})


@pytest.mark.parametrize(
    "path",
    [
        "/etc/systemd/system/kvpod-vllm@0.service",
        "/etc/systemd/system/kvpod-vllm@.service",  # a template: its instances
        "/etc/systemd/system/kvpod-vllm@0.service.d/10-x.conf",
        "/lib/systemd/system/ssh.service",
    ],
)
def test_a_unit_file_stales_the_enabled_states_and_no_running_state(path: str) -> None:
    """systemd reads unit files when it loads a unit or reloads: until then no unit's running state changes."""
    assert {n for n, k in KEYS.items() if stales(effect_of_upload(path), k)} == {"rxe enabled", "vllm enabled"}
    assert staled(f"rm -rf {path}") == {"rxe enabled", "vllm enabled"}


@pytest.mark.parametrize(
    "command",
    [
        "systemctl daemon-reload",
        "systemctl enable kvpod-vllm@0.service",  # enable, disable, mask, unmask reload the manager
        "systemctl disable mnt-kvcache.mount",
        "systemctl mask ssh.service",
    ],
)
def test_a_manager_reload_stales_every_units_running_and_enabled_state(command: str) -> None:
    assert {"rxe", "rxe enabled", "vllm", "vllm enabled"} <= staled(command)
    assert not {"env", "subsystems", "mounted", "modules"} & staled(command)


def test_enabling_a_unit_stales_its_links_not_other_unit_files() -> None:
    unit_file = Read.of(File, path="/etc/systemd/system/kvpod-vllm@0.service").key
    link = Read.of(File, path="/etc/systemd/system/multi-user.target.wants/kvpod-rxe.service").key
    unit_dir = Read.of(Directory, path="/etc/systemd/system").key
    kvpod = effect_of_command("systemctl enable kvpod-rxe.service")
    assert [stales(kvpod, k) for k in (unit_file, link, unit_dir)] == [False, True, True]
    other = effect_of_command("systemctl enable ssh.service")  # may have an alias: any unit file may appear
    assert [stales(other, k) for k in (unit_file, link, unit_dir)] == [True, True, True]


@pytest.mark.parametrize(
    "command",
    [
        "systemctl start kvpod-vllm@0.service",
        "systemctl start kvpod-dcb.service",
        "systemctl restart kvpod-nvme-connect.service",  # the mount and the engines requiring it restart with it
        "systemctl stop kvpod-nvme-connect.service",
    ],
)
def test_a_kvpod_service_stales_the_running_state_not_the_configuration(command: str) -> None:
    got = staled(command)
    assert {"env", "env dir", "other file", "etc/kvpod", "user"}.isdisjoint(got)
    assert {"tier", "rxe", "vllm", "subsystems", "signature", "mounted", "modules", "links", "rmem"} <= got


def test_kvpods_own_nvme_scripts_stale_the_devices_and_a_changed_script_everything() -> None:
    for command in (wait_for_namespace("nqn.x:y").get_raw_value(), set_iopolicy("nqn.x:y", "numa").get_raw_value()):
        assert staled(command) == {"subsystems", "signature", "ext4", "other signature"}
        assert staled(command + "; rm -rf /etc") == set(KEYS)
        assert staled(command.replace("sleep 1", "rm -rf /etc/kvpod").replace("exit 0", "rm /etc/x")) == set(KEYS)


def test_an_unknown_read_is_staled_by_any_command_and_never_kept() -> None:
    unknown = 'deploy.facts.bench.KvcacheSpace {"path": "/mnt/kvcache"}'
    assert stales(effect_of_command("chmod 640 /etc/x"), unknown)
    tracker = ReadInvalidation()
    assert not tracker.keep(unknown) and not tracker.keep(None)
    assert tracker.keep(KEYS["env"])


def test_unsettled_parts_are_not_kept() -> None:
    tracker = ReadInvalidation()
    values = dict.fromkeys(KEYS.values(), "value")
    tracker.ran(values, effect_of_command("nvme connect --transport rdma --nqn nqn.x:y --traddr 1.2.3.4 --trsvcid 1"))
    assert KEYS["subsystems"] not in values and KEYS["env"] in values
    assert not tracker.keep(KEYS["subsystems"]) and not tracker.keep(KEYS["signature"])
    assert tracker.keep(KEYS["env"])
    tracker.ran(values, effect_of_command("udevadm trigger"))
    assert values == {}


# -- the reader of a host ------------------------------------------------------------------------------------


def asked(stats: RunStats, host) -> list[str]:
    """The reads that went to the host, in order: each one command (a refresh names the read it was for)."""
    return [entry.split(" (refresh of ")[0] for entry in stats.live_reads.get(host.name, [])]


def _reader_host(reads: list[Read], facts: dict | None = None):
    remote = FakeRemote(files={ENV: "A=1\n", "/etc/kvpod/vllm-hf.env": "HF=1\n"}, which={"apt-get": "/usr/bin/apt"})
    remote.facts.update(facts or {})
    stats = RunStats()
    state, host = fake_state(remote, check_for_changes=False, reads=reads, stats=stats)
    state.is_executing = True  # commands below run as a real run executes them
    return remote, stats, state, host


def test_a_read_staled_by_an_effect_is_read_live_again_and_others_served() -> None:
    from pyinfra.context import ctx_host, ctx_state

    reads = [Read.of(File, path=ENV), Read.of(File, path="/etc/kvpod/vllm-hf.env")]
    remote, stats, state, host = _reader_host(reads)
    with ctx_state.use(state), ctx_host.use(host):
        host.connector.run_shell_command("chmod 640 /etc/kvpod/lmcache@0.env")
        remote.files[ENV]["mode"] = 640
        assert host.get_fact(File, path=ENV)["mode"] == 640  # staled: read live, sees the change
        assert host.get_fact(File, path="/etc/kvpod/vllm-hf.env")["mode"] == 644  # not staled: served
        assert asked(stats, host) == [KEYS["env"]]
        hits = stats.snapshot_hits[host.name]
        assert host.get_fact(File, path=ENV)["mode"] == 640  # the live value is served again
        assert stats.snapshot_hits[host.name] == hits + 1 and len(stats.live_reads[host.name]) == 1


def test_an_unknown_command_makes_every_read_live_and_one_refresh_reads_them_all() -> None:
    from pyinfra.context import ctx_host, ctx_state

    reads = [Read.of(File, path=ENV), Read.of(File, path="/etc/kvpod/vllm-hf.env")]
    remote, stats, state, host = _reader_host(reads)
    with ctx_state.use(state), ctx_host.use(host):
        host.connector.run_shell_command("DEBIAN_FRONTEND=noninteractive apt-get -y -q install python3-venv")
        remote.files["/etc/kvpod/vllm-hf.env"]["mode"] = 600
        snapshots = remote.snapshots
        host.get_fact(File, path=ENV)
        assert host.get_fact(File, path="/etc/kvpod/vllm-hf.env")["mode"] == 600  # refreshed after the command
        host.get_fact(File, path="/etc/kvpod/other.env")  # not declared: read on its own
    assert remote.snapshots == snapshots + 1
    assert stats.live_reads[host.name][0].endswith("(refresh of 3 reads)")  # both, and the temporary directory
    assert asked(stats, host) == [KEYS["env"], Read.of(File, path="/etc/kvpod/other.env").key]
    assert stats.snapshot_hits[host.name] == 1


def test_an_uploads_own_commands_are_the_upload() -> None:
    """A sudo upload moves its temporary file into place by a command of its own: that is no unknown command."""
    from io import BytesIO

    from pyinfra.context import ctx_host, ctx_state

    reads = [Read.of(File, path=ENV), Read.of(File, path="/etc/kvpod/vllm-hf.env")]
    remote, stats, state, host = _reader_host(reads)
    inner = host.connector.run_shell_command

    with ctx_state.use(state), ctx_host.use(host):
        original = remote.upload

        def upload_then_move(content: str, dest: str) -> None:
            inner("DEBIAN_FRONTEND=noninteractive apt-get -y -q install x")  # stands in for the connector's own move
            original(content, dest)

        remote.upload = upload_then_move  # type: ignore[method-assign]
        host.connector.put_file(BytesIO(b"A=2\n"), ENV)
        host.get_fact(File, path="/etc/kvpod/vllm-hf.env")
        host.get_fact(File, path=ENV)
    assert asked(stats, host) == [KEYS["env"]]


def test_a_value_refreshed_early_and_changed_later_is_read_again() -> None:
    from pyinfra.context import ctx_host, ctx_state

    reads = [Read.of(File, path=ENV), Read.of(File, path="/etc/kvpod/vllm-hf.env")]
    remote, stats, state, host = _reader_host(reads)
    with ctx_state.use(state), ctx_host.use(host):
        host.connector.run_shell_command("DEBIAN_FRONTEND=noninteractive apt-get -y -q install python3-venv")
        host.get_fact(File, path=ENV)  # refreshes the other file too
        host.connector.run_shell_command("chmod 600 /etc/kvpod/vllm-hf.env")
        remote.files["/etc/kvpod/vllm-hf.env"]["mode"] = 600
        assert host.get_fact(File, path="/etc/kvpod/vllm-hf.env")["mode"] == 600  # staled again: read again
        assert host.get_fact(File, path=ENV)["mode"] == 644  # still fresh: served
    assert asked(stats, host) == [KEYS["env"], KEYS["other file"]]


def test_an_unsettled_part_is_never_served_from_an_earlier_refresh() -> None:
    from pyinfra.context import ctx_host, ctx_state

    reads = [Read.of(File, path=ENV), Read.of(NvmeSubsystems)]
    remote, stats, state, host = _reader_host(reads, {"nvme.NvmeSubsystems": {}})
    with ctx_state.use(state), ctx_host.use(host):
        host.connector.run_shell_command("nvme ns-rescan /dev/nvme0")  # namespaces appear after it returns
        host.connector.run_shell_command("DEBIAN_FRONTEND=noninteractive apt-get -y -q install x")
        host.get_fact(File, path=ENV)  # the refresh reads the subsystems too, and keeps them not
        remote.facts["nvme.NvmeSubsystems"] = {"nqn.x:y": {"controllers": [], "namespaces": []}}  # it appeared
        assert host.get_fact(NvmeSubsystems) == {"nqn.x:y": {"controllers": [], "namespaces": []}}
        assert host.get_fact(File, path=ENV)["mode"] == 644  # settled: served
    assert asked(stats, host) == [KEYS["env"], KEYS["subsystems"]]


def test_a_failed_refresh_falls_back_to_the_live_read() -> None:
    from pyinfra.context import ctx_host, ctx_state

    reads = [Read.of(File, path=ENV), Read.of(File, path="/etc/kvpod/vllm-hf.env")]
    remote, stats, state, host = _reader_host(reads)

    def broken(reads: tuple) -> dict:
        raise OSError("the connection broke")

    with ctx_state.use(state), ctx_host.use(host):
        host.connector.run_shell_command("DEBIAN_FRONTEND=noninteractive apt-get -y -q install x")
        remote._fact_snapshot_HostSnapshot = broken  # type: ignore[method-assign]
        remote.files[ENV]["mode"] = 600
        assert host.get_fact(File, path=ENV)["mode"] == 600  # read live after the refresh failed
        assert host.get_fact(File, path="/etc/kvpod/vllm-hf.env")["mode"] == 644  # read by read from now on
    assert len(stats.live_reads[host.name]) == 3  # the failed refresh was a command too
    assert asked(stats, host) == [KEYS["env"], KEYS["env"], KEYS["other file"]]


def test_what_the_snapshot_answered_besides_its_reads_is_refreshed_with_them() -> None:
    """The state read's ``stat`` gives a path's ``Directory`` with its ``File``: stale, both are read again at once."""
    from pyinfra.context import ctx_host, ctx_state

    from benchmarks.simhost import answer
    from deploy.facts.snapshot import parse_snapshot, snapshot_script

    remote = FakeRemote(files={ENV: "A=1\n"})
    remote._fact_snapshot_HostSnapshot = lambda reads: parse_snapshot(answer(remote, snapshot_script(list(reads))))
    stats = RunStats()
    state, host = fake_state(remote, check_for_changes=False, reads=[Read.of(File, path=ENV)], stats=stats)
    state.is_executing = True
    with ctx_state.use(state), ctx_host.use(host):
        host.connector.run_shell_command("chmod 600 /etc/kvpod/lmcache@0.env")
        remote.files[ENV]["mode"] = 600
        assert host.get_fact(Directory, path=ENV) is False  # not a directory: refreshed with the file's read
        assert host.get_fact(File, path=ENV)["mode"] == 600
    assert asked(stats, host) == [KEYS["env dir"]]


def test_a_units_running_state_is_served_across_an_upload_of_its_file_and_read_again_after_a_reload() -> None:
    from io import BytesIO

    from pyinfra.context import ctx_host, ctx_state

    unit = "kvpod-rxe.service"
    reads = [Read.of(SystemdStatus, services=[unit]), Read.of(SystemdEnabled, services=[unit])]
    remote, stats, state, host = _reader_host(reads)
    remote.units[unit] = {"running": True, "enabled": False}
    with ctx_state.use(state), ctx_host.use(host):
        host.connector.put_file(BytesIO(b"[Unit]\n"), f"/etc/systemd/system/{unit}")
        host.get_fact(SystemdStatus, services=[unit])  # served: no running state changed
        assert asked(stats, host) == []
        host.get_fact(SystemdEnabled, services=[unit])  # stale: read again (a refresh)
        host.connector.run_shell_command("systemctl daemon-reload")
        host.get_fact(SystemdStatus, services=[unit])
    assert asked(stats, host) == [KEYS["rxe enabled"], KEYS["rxe"]]


def test_a_first_bring_up_reads_far_less_live_and_converges() -> None:
    plan = build_plan(load_spec(lab_spec())).nodes[0]
    remote = fresh_node(plan)
    stats = RunStats()
    state, host = deploy_run(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    assert host not in state.failed_hosts
    live = stats.live_reads[host.name]
    assert any("NvmeSubsystems" in k for k in live)  # the namespace appears after connect: read live
    # every read after the first change was live: 104 on this node; 62 read by read; here the fake's snapshot gives
    # no path's Directory with its File (the state read's script does): uploads read those on their own
    assert len(live) <= 36, live
    assert all("(refresh of " in k or k.startswith("pyinfra.facts.files.Directory") for k in live)


def test_which_is_staled_by_a_file_of_that_name_on_the_path_not_by_another() -> None:
    from pyinfra.facts.server import Which

    apt = Read.of(Which, command="apt").key
    assert not stales(effect_of_upload("/usr/local/sbin/kvpod-nvme-connect"), apt)
    assert not stales(effect_of_command("chmod 755 /usr/local/sbin/kvpod-nvme-connect"), apt)
    for command in (
        "chmod 755 /usr/local/bin/apt",
        "rm -rf /usr/local",
        "ln -s /opt/x /usr/bin/apt",
        "apt-get -y install apt",
    ):
        assert stales(effect_of_command(command), apt), command
    assert stales(effect_of_upload("/usr/sbin/apt"), apt)
    assert stales(effect_of_command("chmod 755 /x"), Read.of(Which, command="../apt").key)  # no name: unknown


def test_starting_a_device_service_stales_what_its_script_changes_and_the_running_states() -> None:
    device = {"rxe", "vllm", "modules", "rmem", "wmem"}  # every unit's running state; rdma link add loads modules
    connect = device | {"subsystems", "signature", "ext4", "other signature"}
    assert staled("systemctl start kvpod-rxe.service") == device
    assert staled("systemctl start kvpod-nvme-connect.service") == connect
    assert staled("systemctl start kvpod-rxe.service kvpod-nvme-connect.service") == connect
    unsettled = effect_of_command("systemctl start kvpod-nvme-connect.service").unsettled
    assert unsettled == {("nvme", ""), ("block", "*")}  # the namespace appears after the connect returns
    assert not effect_of_command("systemctl start kvpod-rxe.service").unsettled
    for unit in ("kvpod-rxe.service", "kvpod-nvme-connect.service"):
        enabled = staled(f"systemctl enable --now {unit}")
        assert enabled == staled(f"systemctl start {unit}") | {"rxe enabled", "vllm enabled"}
    assert staled("systemctl start kvpod-rxe.service kvpod-vllm@0.service") >= {"tier", "mounted", "links"}
    wheel = Read.of(File, path="/var/cache/kvpod/wheelhouse/vllm-0.0.0-py3-none-any.whl").key
    venv = Read.of(VenvPackages, venv="/opt/kvpod/vllm").key
    start = effect_of_command("systemctl start kvpod-nvme-connect.service")
    assert not stales(start, wheel) and not stales(start, venv)
    restart = effect_of_command("systemctl restart kvpod-nvme-connect.service")  # the engines restart with it
    assert stales(restart, venv) and not stales(restart, KEYS["env"])


@pytest.mark.parametrize("unit", ["kvpod-rxe.service", "kvpod-vllm@0.service", "mnt-kvcache.mount", "ssh.service"])
def test_enable_now_stales_what_enable_and_start_stale(unit: str) -> None:
    assert staled(f"systemctl enable --now {unit}") == staled(f"systemctl enable {unit}") | staled(
        f"systemctl start {unit}"
    )
    link = Read.of(File, path=f"/etc/systemd/system/multi-user.target.wants/{unit}").key
    assert stales(effect_of_command(f"systemctl enable --now {unit}"), link)
    assert staled(f"systemctl --user enable --now {unit}") == set(KEYS)
