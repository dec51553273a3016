"""Fast tests of the lab's pure parts and of the vLLM stand-in; no VM is booted."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from deploy.lab import (
    Lab,
    LabError,
    LabMachine,
    LabState,
    Progress,
    VmRecord,
    default_machines,
    network,
    ssh,
    vm,
)
from deploy.lab import image as lab_image
from deploy.lab import machines as lab_machines
from deploy.lab import manager as lab_manager
from deploy.lab.state import load_state, save_state
from tests.lab.lab_checks import (
    MISSING,
    Canaries,
    SampleLog,
    direct_sha256_command,
    foreign_lab_decision,
    lab_decision,
    parse_read_files,
    read_files_command,
)

STANDIN = Path(__file__).parent / "standin" / "vllm"
KV_CONFIG = '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'


def spec_for(machine: LabMachine, index: int, tmp: Path = Path("/lab")) -> vm.VmSpec:
    return vm.VmSpec(
        machine=machine,
        index=index,
        overlay=tmp / f"{machine.name}.qcow2",
        pidfile=tmp / f"{machine.name}.pid",
        console_log=tmp / f"{machine.name}.log",
        kernel=tmp / "vmlinuz",
        initrd=tmp / "initrd.img",
    )


def all_argvs(accel: str = "tcg", nodes: int = 3) -> list[list[str]]:
    return [vm.qemu_argv(spec_for(m, i), accel) for i, m in enumerate(default_machines(nodes), start=1)]


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


# -- machines ----------------------------------------------------------------------------------


def test_default_machines_ports_and_roles() -> None:
    assert default_machines(2) == [
        LabMachine("target", 2201, "target"),
        LabMachine("node1", 2202, "node"),
        LabMachine("node2", 2203, "node"),
    ]


@pytest.mark.parametrize(
    ("machines", "message"),
    [
        ([LabMachine("target", 2201, "target"), LabMachine("node1", 2201, "node")], "duplicate ssh_port"),
        ([LabMachine("node1", 2201, "node"), LabMachine("node1", 2202, "node")], "duplicate machine name"),
        ([LabMachine("a-very-long-name", 2201, "node")], "too long"),
        ([LabMachine("node1", 2201, "switch")], "role must be"),
        ([LabMachine("Node_1", 2201, "node")], "lower case"),
        ([], "no machines"),
    ],
)
def test_validate_machines_refuses(machines: list[LabMachine], message: str) -> None:
    with pytest.raises(LabError, match=message):
        lab_machines.validate_machines(machines)


# -- qemu command line -------------------------------------------------------------------------


def test_management_network_is_restricted_and_loopback_only() -> None:
    for argv in all_argvs():
        netdevs = option_values(argv, "-netdev")
        user = [n for n in netdevs if n.startswith("user,")]
        assert len(user) == 1
        assert "restrict=on" in user[0].split(",")
        forwards = re.findall(r"hostfwd=([^,]+)", user[0])
        assert forwards and all(f.startswith("tcp:127.0.0.1:") for f in forwards)


def test_fabric_nic_is_the_named_tap() -> None:
    for argv, machine in zip(all_argvs(), default_machines(3), strict=True):
        taps = [n for n in option_values(argv, "-netdev") if n.startswith("tap,")]
        assert taps == [f"tap,id=fabric,ifname=kvl-{machine.name},script=no,downscript=no"]


def test_uuid_and_macs_are_unique_per_machine() -> None:
    argvs = all_argvs()
    uuids = [option_values(a, "-uuid")[0] for a in argvs]
    macs = [re.search(r"mac=([0-9a-f:]+)", d).group(1) for a in argvs for d in option_values(a, "-device")]
    assert len(set(uuids)) == len(uuids)
    assert len(set(macs)) == len(macs) == 2 * len(argvs)


def test_ssh_forward_ports_and_memory() -> None:
    for argv, machine in zip(all_argvs(), default_machines(3), strict=True):
        assert f"hostfwd=tcp:127.0.0.1:{machine.ssh_port}-:22" in " ".join(argv)
        assert option_values(argv, "-m") == ["768" if machine.role == "target" else "512"]
        assert option_values(argv, "-smp") == ["1"]


def test_tcg_and_kvm_command_lines() -> None:
    tcg = all_argvs("tcg", 0)[0]
    assert option_values(tcg, "-accel") == ["tcg,thread=multi,tb-size=64"]
    kvm = all_argvs("kvm", 0)[0]
    assert option_values(kvm, "-accel") == ["kvm"]
    with pytest.raises(LabError):
        all_argvs("hvf", 0)


@pytest.mark.parametrize(
    ("kvm_writable", "pvm_loaded", "flags", "expected"),
    [
        (True, False, {"vmx"}, "kvm"),
        (True, False, {"svm"}, "kvm"),
        (False, False, {"vmx"}, "tcg"),
        (True, True, {"svm"}, "tcg"),
        (True, False, {"sse2"}, "tcg"),
    ],
)
def test_choose_accel(kvm_writable: bool, pvm_loaded: bool, flags: set[str], expected: str) -> None:
    assert vm.choose_accel(kvm_writable, pvm_loaded, flags) == expected


def test_accel_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vm.ACCEL_ENV, "tcg")
    assert vm.host_accel() == "tcg"
    monkeypatch.setenv(vm.ACCEL_ENV, "whpx")
    with pytest.raises(LabError):
        vm.host_accel()


def test_guest_cmdline_names_nics_classically_and_sets_hostname() -> None:
    append = option_values(all_argvs()[1], "-append")[0]
    assert "net.ifnames=0" in append.split()
    assert "kvpod.hostname=node1" in append.split()


def test_is_lab_qemu_refuses_other_processes() -> None:
    assert not vm.is_lab_qemu(os.getpid())
    assert not vm.stop(os.getpid())


# -- image ---------------------------------------------------------------------------------------


def test_image_cache_key_follows_the_package_list_and_key() -> None:
    recipe = lab_image.ImageRecipe()
    key = lab_image.image_cache_key(recipe, "ssh-ed25519 AAAA one")
    assert key == lab_image.image_cache_key(recipe, "ssh-ed25519 AAAA one")
    more = lab_image.ImageRecipe(packages=(*recipe.packages, "strace"))
    assert lab_image.image_cache_key(more, "ssh-ed25519 AAAA one") != key
    assert lab_image.image_cache_key(recipe, "ssh-ed25519 AAAA two") != key
    bumped = lab_image.ImageRecipe(version=recipe.version + 1)
    assert lab_image.image_cache_key(bumped, "ssh-ed25519 AAAA one") != key
    shuffled = lab_image.ImageRecipe(packages=tuple(reversed(recipe.packages)))
    assert lab_image.image_cache_key(shuffled, "ssh-ed25519 AAAA one") == key


def test_image_has_what_the_product_needs() -> None:
    argv = lab_image.mmdebstrap_argv(lab_image.ImageRecipe(), Path("/tmp/root"))
    include = next(a for a in argv if a.startswith("--include=")).removeprefix("--include=").split(",")
    for package in ("linux-image-amd64", "nvme-cli", "rdma-core", "openssh-server", "python3", "sudo"):
        assert package in include
    assert "bookworm" in argv


def test_guest_files_leave_a_fresh_server() -> None:
    from deploy.lab import guestfiles

    files = guestfiles.guest_files("ssh-ed25519 AAAA k")
    assert files["root/.ssh/authorized_keys"] == ("ssh-ed25519 AAAA k\n", 0o600)
    assert not any(p.startswith(("etc/modules-load.d", "etc/nvme")) for p in files)
    assert {"nvmf-autoconnect.service", "apt-daily.timer"} <= set(guestfiles.MASKED_UNITS)
    assert {"etc/nvme/hostnqn", "etc/nvme/hostid"} <= set(guestfiles.REMOVED_FILES)
    assert "eth1" not in guestfiles.MGMT_NET_SCRIPT.split("# The fabric NIC")[1].split("\n", 1)[1]


def test_load_image_needs_a_complete_build(tmp_path: Path) -> None:
    assert lab_image.load_image(tmp_path) is None
    for name in ("rootfs.img", "vmlinuz", "initrd.img"):
        (tmp_path / name).write_text("x")
    manifest = {"key": "k", "rootfs": "rootfs.img", "kernel": "vmlinuz", "initrd": "initrd.img"}
    (tmp_path / lab_image.MANIFEST).write_text(json.dumps({**manifest, "kernel_release": "6.1.0"}))
    info = lab_image.load_image(tmp_path)
    assert info is not None and info.kernel_release == "6.1.0"


# -- state, network parsing, ssh, progress ----------------------------------------------------------


def sample_state(pid: int | None = 4242) -> LabState:
    record = VmRecord(
        name="node1",
        role="node",
        ssh_port=2202,
        index=2,
        tap="kvl-node1",
        overlay="/lab/run/node1.qcow2",
        pidfile="/lab/run/node1.pid",
        console_log="/lab/run/node1.log",
        pid=pid,
    )
    return LabState(
        netns="kvpod-lab",
        bridge="fabric0",
        accel="tcg",
        image_key="k",
        started_at=1.0,
        vms=[record],
    )


def test_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_state(path) is None
    state = sample_state()
    save_state(state, path)
    assert load_state(path) == state
    assert state.vm("node1").ssh_port == 2202
    with pytest.raises(LabError, match="no lab VM named"):
        state.vm("node9")


def test_unreadable_state_is_a_lab_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(LabError, match="unreadable"):
        load_state(path)


def test_parse_bridge_ports() -> None:
    links = [
        {"ifname": "fabric0", "mtu": 9000},
        {"ifname": "kvl-target", "mtu": 9000, "master": "fabric0"},
        {"ifname": "kvl-node1", "mtu": 1500, "master": "fabric0"},
        {"ifname": "kvl-node2", "mtu": 1500},
    ]
    assert network.parse_bridge_ports(json.dumps(links), "fabric0") == {"kvl-target": 9000, "kvl-node1": 1500}
    assert network.parse_bridge_ports("", "fabric0") == {}


def test_ssh_argv_targets_loopback_with_the_lab_key() -> None:
    argv = ssh.ssh_argv(Path("/lab/id_ed25519"), 2203, ["uname", "-r"])
    assert argv[0] == "ssh"
    assert argv[argv.index("-p") + 1] == "2203"
    assert argv[argv.index("-i") + 1] == "/lab/id_ed25519"
    assert "root@127.0.0.1" in argv
    assert argv[-3:] == ["--", "uname", "-r"]
    assert "BatchMode=yes" not in ssh.ssh_argv(Path("/k"), 2201, batch=False)


def test_progress_step_reports_time() -> None:
    seen: list[tuple[str, float]] = []
    waited: list[str] = []

    def waiting(description: str):  # type: ignore[no-untyped-def]
        waited.append(description)
        return open(os.devnull)

    with Progress(on_step=lambda n, s: seen.append((n, s)), waiting=waiting).step("image", "building"):
        pass
    assert waited == ["building"]
    assert seen[0][0] == "image" and seen[0][1] >= 0


# -- down only touches what the lab recorded ---------------------------------------------------------


class FakeNetwork:
    """Records link and namespace deletions instead of running ip."""

    def __init__(self, links: set[tuple[str | None, str]], namespaces: set[str]) -> None:
        self.links = links
        self.namespaces = namespaces

    def delete_link(self, name: str, netns: str | None = None) -> bool:
        if (netns, name) in self.links:
            self.links.remove((netns, name))
            return True
        return False

    def netns_exists(self, netns: str) -> bool:
        return netns in self.namespaces

    def delete_netns(self, netns: str) -> bool:
        if netns in self.namespaces:
            self.namespaces.remove(netns)
            return True
        return False


@pytest.fixture
def fake_network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork({("kvpod-unit", "kvl-node1"), (None, "kvl-node2")}, {"kvpod-unit"})
    for name in ("delete_link", "netns_exists", "delete_netns"):
        monkeypatch.setattr(lab_manager.network, name, getattr(fake, name))
    return fake


def test_down_removes_what_state_records_and_spares_other_pids(
    tmp_path: Path,
    fake_network: FakeNetwork,
) -> None:
    lab = Lab(lab_dir=tmp_path, netns="kvpod-unit")
    lab.paths.run.mkdir(parents=True)
    state = sample_state(pid=os.getpid())  # not a qemu: must survive
    state.netns = "kvpod-unit"
    record = state.vms[0]
    record.overlay, record.pidfile = str(lab.paths.overlay("node1")), str(lab.paths.pidfile("node1"))
    Path(record.overlay).write_text("overlay")
    Path(record.pidfile).write_text(str(os.getpid()))
    save_state(state, lab.paths.state_file)

    removed = lab.down()

    assert not any(r.startswith("vm ") for r in removed)
    assert "tap kvl-node1" in removed and "netns kvpod-unit" in removed
    assert (None, "kvl-node2") in fake_network.links  # not recorded: left alone
    assert not Path(record.overlay).exists() and not lab.paths.state_file.exists()
    assert lab.down() == []


def test_down_without_state_uses_the_pidfiles_and_the_netns_name(
    tmp_path: Path,
    fake_network: FakeNetwork,
) -> None:
    lab = Lab(lab_dir=tmp_path, netns="kvpod-unit")
    lab.paths.run.mkdir(parents=True)
    lab.paths.pidfile("node2").write_text("999999999")
    removed = lab.down()
    assert "tap kvl-node2" in removed and "netns kvpod-unit" in removed
    assert not lab.paths.pidfile("node2").exists()
    assert lab.status() == []


def test_ssh_command_needs_a_running_lab(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="not up"):
        Lab(lab_dir=tmp_path).ssh_command("node1")


# -- the vLLM stand-in ---------------------------------------------------------------------------------


def load_standin() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("kvpod_vllm_standin", str(STANDIN))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_args(port: int = 8000, tp: str = "2", util: str = "0.9", kv: str = KV_CONFIG) -> list[str]:
    return [
        "serve", "org/model-7b",
        "--tensor-parallel-size", tp,
        "--gpu-memory-utilization", util,
        "--max-model-len", "8192",
        "--port", str(port),
        "--kv-transfer-config", kv,
    ]  # fmt: skip


def lmcache_env(disk: Path) -> dict[str, str]:
    return {
        "LMCACHE_CHUNK_SIZE": "256",
        "LMCACHE_LOCAL_CPU": "false",
        "LMCACHE_MAX_LOCAL_CPU_SIZE": "5",
        "LMCACHE_LOCAL_DISK": f"file://{disk}/",
        "LMCACHE_MAX_LOCAL_DISK_SIZE": "100",
    }


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "LMCACHE_TRACK_USAGE": "false"}
    env["KVPOD_STANDIN_SKIP_MOUNT_CHECK"] = "1"  # tmp_path is not its own mount
    env["CUDA_VISIBLE_DEVICES"] = "2,3"  # the second engine's two GPUs at serve_args' TP 2
    return {**env, **extra}


def run_standin(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STANDIN), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_standin_is_an_executable_plainly_named_stand_in() -> None:
    assert os.access(STANDIN, os.X_OK)
    assert STANDIN.read_text().splitlines()[0] == "#!/usr/bin/env python3"
    assert "stand-in for vLLM" in (load_standin().__doc__ or "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (serve_args(tp="0"), "--tensor-parallel-size must be >= 1"),
        (serve_args(tp="two"), "--tensor-parallel-size must be an integer"),
        (serve_args(util="1.5"), "--gpu-memory-utilization must be in"),
        (serve_args(util="0"), "--gpu-memory-utilization must be in"),
        (serve_args(kv=KV_CONFIG.replace("LMCacheConnectorV1", "Other")), "kv_connector must be"),
        (serve_args(kv=KV_CONFIG.replace("kv_both", "kv_producer")), "kv_role must be kv_both"),
        (serve_args(kv="not json"), "not JSON"),
        (["generate", *serve_args()[1:]], "only `vllm serve`"),
        (serve_args()[:-2], "required"),
    ],
)
def test_standin_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_standin(args, base_env(tmp_path, **lmcache_env(tmp_path)))
    assert result.returncode != 0
    assert message in result.stderr


def test_standin_refuses_missing_lmcache_settings(tmp_path: Path) -> None:
    result = run_standin(serve_args(), base_env(tmp_path))
    assert result.returncode != 0
    assert "LMCache settings missing" in result.stderr


def test_standin_refuses_partial_env(tmp_path: Path) -> None:
    env = lmcache_env(tmp_path)
    del env["LMCACHE_LOCAL_DISK"]
    result = run_standin(serve_args(), base_env(tmp_path, **env))
    assert result.returncode != 0
    assert "local_disk" in result.stderr


def test_standin_refuses_both_sources_for_one_key(tmp_path: Path) -> None:
    config = tmp_path / "lmcache.yaml"
    config.write_text(f"chunk_size: 256\nlocal_disk: 'file://{tmp_path}/'\n")
    env = base_env(tmp_path, **lmcache_env(tmp_path), LMCACHE_CONFIG_FILE=str(config))
    result = run_standin(serve_args(), env)
    assert result.returncode != 0
    assert "set both" in result.stderr and "chunk_size" in result.stderr


def test_standin_refuses_unreadable_config_file(tmp_path: Path) -> None:
    env = base_env(tmp_path, LMCACHE_CONFIG_FILE=str(tmp_path / "missing.yaml"))
    result = run_standin(serve_args(), env)
    assert result.returncode != 0 and "not readable" in result.stderr


def test_standin_refuses_hash_seed_and_bad_disk(tmp_path: Path) -> None:
    env = base_env(tmp_path, **lmcache_env(tmp_path), PYTHONHASHSEED="random")
    env["LMCACHE_LOCAL_DISK"] = str(tmp_path)
    result = run_standin(serve_args(), env)
    assert result.returncode != 0
    assert "PYTHONHASHSEED must be 0" in result.stderr
    assert "local_disk must be file:///" in result.stderr


@pytest.mark.parametrize(
    ("tracking", "refused"),
    [
        ({"LMCACHE_TRACK_USAGE": None}, True),
        ({"LMCACHE_TRACK_USAGE": "true"}, True),
        ({"LMCACHE_TRACK_USAGE": "False"}, True),  # LMCache compares with "false" exactly
        ({"LMCACHE_TRACK_USAGE": None, "DO_NOT_TRACK": "1"}, False),
        ({"LMCACHE_TRACK_USAGE": "false"}, False),
    ],
)
def test_standin_refuses_usage_reporting(tmp_path: Path, tracking: dict, refused: bool) -> None:
    env = base_env(tmp_path, **lmcache_env(tmp_path))
    for key, value in tracking.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    problems = load_standin().check_usage_tracking(env)
    assert bool(problems) is refused
    if refused:
        assert "set LMCACHE_TRACK_USAGE=false" in problems[0]
        result = run_standin(serve_args(), env)
        assert result.returncode != 0 and "LMCache usage reporting is on" in result.stderr


def test_standin_refuses_a_disk_tier_that_was_not_emptied(tmp_path: Path) -> None:
    disk = tmp_path / "kvcache"
    disk.mkdir()
    (disk / ".kvpod-standin-probe").write_text("{}\n")  # left by the previous start
    (disk / "chunk.pt").write_bytes(b"\0")
    result = run_standin(serve_args(), base_env(tmp_path, **lmcache_env(disk)))
    assert result.returncode != 0
    assert f"local disk {disk}/ holds 2 entries at start (.kvpod-standin-probe, chunk.pt): it was not emptied" in (
        result.stderr
    )
    for entry in disk.iterdir():
        entry.unlink()
    assert load_standin().check_disk(str(disk), base_env(tmp_path)) == []


def test_standin_serves_and_leaves_a_probe(tmp_path: Path) -> None:
    port = free_port()
    disk = tmp_path / "kvcache"
    disk.mkdir()
    config = tmp_path / "lmcache.yaml"
    config.write_text(
        "# LMCache\nchunk_size: 256\nlocal_cpu: False\nmax_local_cpu_size: 5\n"
        f'local_disk: "file://{disk}/"\nmax_local_disk_size: 100\n'
    )
    env = base_env(tmp_path, LMCACHE_CONFIG_FILE=str(config))
    argv = [sys.executable, str(STANDIN), *serve_args(port), "--enable-prefix-caching"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with urllib.request.urlopen(f"{base}/v1/models", timeout=2) as response:
            models = json.load(response)
        assert models["data"][0]["id"] == "org/model-7b"
        probe = json.loads((disk / ".kvpod-standin-probe").read_text())
        assert probe["pid"] == proc.pid and "--enable-prefix-caching" in probe["argv"]
        assert (probe["cuda_visible_devices"], probe["port"]) == ("2,3", str(port))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert len(out.strip().splitlines()) == 1 and "stand-in" in out


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (None, "CUDA_VISIBLE_DEVICES is not set"),
        ("0,0", "must be distinct device indexes"),
        ("0,x", "must be distinct device indexes"),
        ("0,1,2", "names 3 GPUs for tensor parallel size 2"),
    ],
)
def test_standin_refuses_gpus_that_are_not_the_engines_own(tmp_path: Path, devices: str | None, message: str) -> None:
    env = base_env(tmp_path, **lmcache_env(tmp_path))
    env.pop("CUDA_VISIBLE_DEVICES")
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = devices
    result = run_standin(serve_args(), env)
    assert result.returncode == 2 and message in result.stderr


def health_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_standin_lab_fault_keeps_health_at_503_while_its_file_exists(tmp_path: Path) -> None:
    port = free_port()
    disk = tmp_path / "kvcache"
    disk.mkdir()
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / f"kvpod-standin-unhealthy-{port}").write_text("")
    env = base_env(tmp_path, KVPOD_STANDIN_FAULT_DIR=str(faults), **lmcache_env(disk))
    argv = [sys.executable, str(STANDIN), *serve_args(port), "--served-model-name", "chat", "chat-2"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                status = health_status(f"{base}/health")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert status == 503
        with urllib.request.urlopen(f"{base}/v1/models", timeout=2) as response:
            assert [m["id"] for m in json.load(response)["data"]] == ["chat", "chat-2"]
        (faults / f"kvpod-standin-unhealthy-{port}").unlink()
        assert health_status(f"{base}/health") == 200
        (faults / "kvpod-standin-unhealthy").write_text("")  # every engine of the node
        assert health_status(f"{base}/health") == 503
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err.count("lab fault") == 1 and f"kvpod-standin-unhealthy-{port} exists" in err


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ([], ["org/model-7b"]),
        (["--served-model-name", "chat"], ["chat"]),
        (["--served-model-name", "a", "b", "--enable-prefix-caching"], ["a", "b"]),
        (["--served_model_name=x"], ["x"]),
        (["--served-model-name", "a", "--served-model-name", "b"], ["b"]),
    ],
)
def test_standin_lists_the_served_model_names_as_vllm_does(extra: list[str], names: list[str]) -> None:
    from deploy.rollout import served_model_name

    assert load_standin().served_names("org/model-7b", extra) == names
    assert served_model_name("org/model-7b", extra) == names[0], "kvpod waits for the name the engine lists"


def test_standin_mount_check_finds_the_mount_point() -> None:
    standin = load_standin()
    mountinfo = (
        "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 22 259:1 / /mnt/kvcache rw,noatime - ext4 /dev/nvme0n1 rw\n"
        "41 22 0:50 / /mnt/kv\\040cache rw - tmpfs tmpfs rw\n"
    )
    assert standin.mount_point_of("/mnt/kvcache/lmcache", mountinfo) == "/mnt/kvcache"
    assert standin.mount_point_of("/mnt/kvcache2/x", mountinfo) == "/"
    assert standin.mount_point_of("/mnt/kv cache/x", mountinfo) == "/mnt/kv cache"
    assert standin.mount_point_of("/var/lib/x", mountinfo) == "/"


def test_standin_simple_yaml() -> None:
    standin = load_standin()
    text = "# comment\nchunk_size: 256  # tokens\nlocal_disk: 'file:///mnt/kvcache/'\n\n"
    assert standin.parse_simple_yaml(text, "f") == {"chunk_size": "256", "local_disk": "file:///mnt/kvcache/"}
    with pytest.raises(standin.StandinError):
        standin.parse_simple_yaml("- a list item\n", "f")


def test_standin_wheelhouse_installs_offline_into_a_venv(tmp_path: Path) -> None:
    """The lab's wheels are real wheels: pip installs them without an index, the stand-in becomes the
    environment's ``vllm`` (on its interpreter) and the connector's module imports."""
    import subprocess
    import sys

    from deploy.facts.python import VenvPackages
    from deploy.lab.wheels import ADAPTER, build_standin_wheelhouse

    wheels = build_standin_wheelhouse(tmp_path / "wheelhouse", "0.5.6")
    assert sorted(w.name for w in wheels) == [
        "lmcache-0.5.6+standin-py3-none-any.whl",
        "vllm-0.0.0+standin-py3-none-any.whl",
    ]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index"]
    subprocess.run([*pip, "--find-links", str(tmp_path / "wheelhouse"), "vllm==0.0.0", "lmcache==0.5.6"], check=True)
    vllm = venv / "bin" / "vllm"
    assert vllm.read_text().splitlines()[0] == f"#!{venv}/bin/python" and os.access(vllm, os.X_OK)
    module = ADAPTER.removesuffix(".py").replace("/", ".")
    subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], check=True)
    out = subprocess.run(["sh", "-c", VenvPackages().command(str(venv))], capture_output=True, text=True).stdout
    assert VenvPackages().process(out.splitlines()) == {
        "python": True,
        "packages": {"vllm": "0.0.0+standin", "lmcache": "0.5.6+standin"},
    }


# -- one VM off and on -------------------------------------------------------------------------------


def one_vm_lab(tmp_path: Path, pid: int | None) -> tuple[Lab, LabState]:
    lab = Lab(lab_dir=tmp_path, netns="kvpod-unit")
    lab.paths.run.mkdir(parents=True)
    state = sample_state(pid=pid)
    state.netns = "kvpod-unit"
    record = state.vms[0]
    record.overlay, record.pidfile = str(lab.paths.overlay("node1")), str(lab.paths.pidfile("node1"))
    record.console_log = str(lab.paths.console_log("node1"))
    Path(record.overlay).write_text("the node's disk")
    save_state(state, lab.paths.state_file)
    return lab, state


def test_stop_signals_only_the_labs_qemu(tmp_path: Path) -> None:
    lab, _ = one_vm_lab(tmp_path, pid=os.getpid())  # not a qemu: must survive
    assert lab.stop("node1", hard=True) is None
    state = load_state(lab.paths.state_file)
    assert state is not None and state.vms[0].pid is None
    assert Path(state.vms[0].overlay).read_text() == "the node's disk", "stop keeps the disk"
    with pytest.raises(LabError, match="no lab VM named 'node9'"):
        lab.stop("node9")
    with pytest.raises(LabError, match="not up"):
        Lab(lab_dir=tmp_path / "none").stop("node1")


class FakePorts:
    """The network calls of a VM start, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.config = network.PortConfig(master="fabric0", mtu=9216, vlans=[])

    def port_config(self, name: str, netns: str):
        self.calls.append(("read", name, netns))
        return self.config

    def delete_link(self, name: str, netns: str | None = None) -> bool:
        self.calls.append(("delete", name, netns))
        return True

    def create_tap(self, name: str) -> None:
        self.calls.append(("create", name))

    def move_into_netns(self, name: str, netns: str) -> None:
        self.calls.append(("move", name, netns))

    def restore_port(self, name: str, netns: str, config) -> None:
        self.calls.append(("restore", name, netns, config))


def test_start_boots_the_recorded_disk_and_gives_the_port_back(tmp_path: Path, monkeypatch) -> None:
    lab, _ = one_vm_lab(tmp_path, pid=None)
    ports = FakePorts()
    for name in ("port_config", "delete_link", "create_tap", "move_into_netns", "restore_port"):
        monkeypatch.setattr(lab_manager.network, name, getattr(ports, name))
    image = lab_image.ImageInfo("k", tmp_path, tmp_path / "rootfs", tmp_path / "vmlinuz", tmp_path / "initrd", "6.1")
    monkeypatch.setattr(lab_manager, "load_image", lambda directory: image if directory.name == "k" else None)
    started: list[vm.VmSpec] = []

    def start(spec: vm.VmSpec, accel: str) -> int:
        ports.calls.append(("qemu", spec.machine.name))
        started.append(spec)
        return 31337

    monkeypatch.setattr(lab_manager.vm, "start", start)
    monkeypatch.setattr(lab_manager.vm, "is_lab_qemu", lambda pid, pidfile=None: pid == 31337)
    monkeypatch.setattr(lab_manager.ssh, "wait_for_ssh", lambda key, port, timeout, alive: 1.0)

    assert lab.start("node1") >= 0
    [spec] = started
    assert spec.overlay == lab.paths.overlay("node1") and spec.index == 2 and spec.kernel == image.kernel
    assert spec.machine == LabMachine("node1", 2202, "node")
    assert [c[0] for c in ports.calls] == ["read", "delete", "delete", "create", "qemu", "move", "restore"]
    assert ports.calls[-1] == ("restore", "kvl-node1", "kvpod-unit", ports.config)
    state = load_state(lab.paths.state_file)
    assert state is not None and state.vms[0].pid == 31337
    with pytest.raises(LabError, match="is running"):
        lab.start("node1")


def test_start_needs_the_vms_disk(tmp_path: Path) -> None:
    lab, state = one_vm_lab(tmp_path, pid=None)
    Path(state.vms[0].overlay).unlink()
    with pytest.raises(LabError, match="has no disk"):
        lab.start("node1")


def test_port_config_round_trip() -> None:
    link = json.dumps([{"ifname": "kvl-node2", "mtu": 9216, "master": "fabric0"}])
    vlans = json.dumps([{"ifname": "kvl-node2", "vlans": [{"vlan": 100, "flags": ["PVID", "Egress Untagged"]}]}])
    config = network.parse_port_config(link, vlans)
    assert config == network.PortConfig("fabric0", 9216, [{"vlan": 100, "flags": ["PVID", "Egress Untagged"]}])
    assert network.port_restore_commands("kvl-node2", config) == [
        ["ip", "link", "set", "dev", "kvl-node2", "mtu", "9216"],
        ["ip", "link", "set", "dev", "kvl-node2", "master", "fabric0"],
        ["bridge", "vlan", "del", "dev", "kvl-node2", "vid", "1"],
        ["bridge", "vlan", "add", "dev", "kvl-node2", "vid", "100", "pvid", "untagged"],
    ]
    unbridged = network.parse_port_config(json.dumps([{"ifname": "kvl-node2", "mtu": 1500}]), "")
    assert network.port_restore_commands("kvl-node2", unbridged) == [
        ["ip", "link", "set", "dev", "kvl-node2", "mtu", "1500"]
    ]


def test_lab_stop_and_start_commands_need_a_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from deploy.cli import app

    monkeypatch.setenv("KVPOD_LAB_DIR", str(tmp_path))
    for args in (["lab", "stop", "node2", "--kill"], ["lab", "start", "node2"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "the lab is not up" in result.output, result.output


# --- the lab suite's own checks: run or fail in CI, the mount sampler, canaries, direct reads ------------


@pytest.mark.parametrize(
    ("env", "missing", "expected"),
    [
        ({}, None, "run"),
        ({"CI": "true"}, None, "run"),
        ({}, "the lab needs root", "skip"),
        ({"CI": "false"}, "the lab needs root", "skip"),
        ({"CI": ""}, "iproute2 is missing", "skip"),
        ({"CI": "true"}, "the lab needs root", "fail"),
        ({"CI": "TRUE"}, "iproute2 is missing", "fail"),
        ({"CI": "1"}, "the lab needs root", "fail"),
    ],
)
def test_lab_runs_skips_or_fails_in_ci(env: dict[str, str], missing: str | None, expected: str) -> None:
    action, why = lab_decision(env, missing)
    assert action == expected
    if missing:
        assert missing in why
    if expected == "fail":
        assert "CI=true" in why


def test_a_lab_the_test_run_did_not_start_is_never_taken_down() -> None:
    assert foreign_lab_decision({"CI": "true"}, None) == ("run", "")
    action, why = foreign_lab_decision({}, "3 VMs started at 21:40:02 UTC")
    assert action == "skip" and "3 VMs started at 21:40:02 UTC" in why and "kvpod lab down" in why
    assert foreign_lab_decision({"CI": "true"}, "3 VMs")[0] == "fail"


def test_sampler_log_counts_only_successful_reads_and_keeps_errors() -> None:
    log = SampleLog(["node1", "node2"])
    for _ in range(3):
        log.record({"node1": "nqn:a", "node2": "nqn:b"})
    assert log.problems(min_samples=3) == []
    log.record({"node1": "nqn:a", "node2": TimeoutError("ssh timed out")})
    assert log.ok == {"node1": 4, "node2": 3} and log.overlaps == []
    assert log.problems(min_samples=3) == ["node2: 1 failed samples (at most 0): ['TimeoutError: ssh timed out']"]
    assert log.problems(min_samples=3, allowed_errors={"node2": 1}) == []
    assert log.problems(min_samples=4, allowed_errors={"node2": 1}) == [
        "node2: 3 successful samples (at least 4 needed)"
    ]


def test_sampler_log_sees_an_overlap_and_no_samples_is_not_clean() -> None:
    assert SampleLog(["node1", "node2"]).problems(min_samples=1) == [
        "node1: 0 successful samples (at least 1 needed)",
        "node2: 0 successful samples (at least 1 needed)",
    ]
    log = SampleLog(["node1", "node2"])
    log.record({"node1": "nqn:a", "node2": "nqn:a"})
    log.record({"node1": "", "node2": ""})
    assert log.overlaps == [{"node1": "nqn:a", "node2": "nqn:a"}]
    assert log.problems(min_samples=1)[0].startswith("one subsystem on two nodes")


class _FakeLab:
    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers

    def run(self, name: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        answer = self.answers[name]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]


def test_mount_sampler_records_ssh_failures_as_errors_not_as_unmounted() -> None:
    from tests.lab.test_lab_reconfigure import MountSampler

    done = subprocess.CompletedProcess
    hosts = type("Hosts", (), {})()
    hosts.lab = _FakeLab(
        {
            "node1": done([], 0, "nqn:a\n", ""),
            "node2": done([], 255, "", "ssh: connect to host 127.0.0.1 port 2203: Connection refused"),
            "node3": subprocess.TimeoutExpired("ssh", 20),
            "node4": done([], 0, "\n", ""),
        }
    )
    sampler = MountSampler(hosts, ["node1", "node2", "node3", "node4"])
    sampler.log.record({n: sampler._read(n) for n in sampler.nodes})
    assert sampler.log.ok == {"node1": 1, "node4": 1}
    assert set(sampler.log.errors) == {"node2", "node3"}
    assert "exit 255" in sampler.log.errors["node2"][0]
    with pytest.raises(AssertionError, match="node2: 1 failed samples"):
        sampler.assert_no_overlap(min_samples=1)


def test_canaries_are_expected_on_the_node_that_holds_their_drive_now() -> None:
    canaries = Canaries()
    canaries.record("nqn:1", "owner.txt", "from-node1")
    canaries.record("nqn:2", "owner.txt", "from-node2")
    canaries.record("nqn:2", "left.txt", "still-here")
    canaries.record("nqn:1", "owner.txt", "again")  # rewritten: the last text counts
    assert canaries.expected({"node1": "nqn:2", "node2": "nqn:3"}) == {
        "node1": {"owner.txt": "from-node2", "left.txt": "still-here"}
    }
    assert canaries.expected({"node2": "nqn:1"}) == {"node2": {"owner.txt": "again"}}
    with pytest.raises(ValueError, match="no drive mounted"):
        canaries.record("", "x.txt", "x")


def test_canary_read_back_command_runs_under_sh(tmp_path: Path) -> None:
    (tmp_path / "owner.txt").write_text("from-node1\nsecond line\n")
    (tmp_path / "it's.txt").write_text("quoted\n")
    command = read_files_command(str(tmp_path), ["owner.txt", "gone.txt", "it's.txt"])
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert parse_read_files(result.stdout) == {"owner.txt": "from-node1", "gone.txt": MISSING, "it's.txt": "quoted"}


def test_direct_read_checksum_matches_the_data(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 << 20)
    (tmp_path / "mp.bin").write_bytes(data)
    result = subprocess.run(
        ["sh", "-c", direct_sha256_command(str(tmp_path / "mp.bin"))], capture_output=True, text=True
    )
    if "Invalid argument" in result.stderr:
        pytest.skip("this filesystem has no O_DIRECT (tmpfs); the lab's ext4 has")
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()
