"""Fact fixtures (``tests/facts/<module>.<Fact>/<case>.json``: command output in, fact out), and the fact
commands run for real: shell syntax, and against fake sysfs/configfs trees and real e2fsprogs/iproute2."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import FactBase, StringCommand

HERE = Path(__file__).parent
CASES = sorted(p for p in HERE.glob("*/*.json"))


def fact_class(key: str) -> type[FactBase]:
    module, name = key.split(".")
    return getattr(importlib.import_module(f"deploy.facts.{module}"), name)


def command_text(fact: FactBase, args: dict) -> str:
    command = fact.command(**args)
    return command.get_raw_value() if isinstance(command, StringCommand) else command


def gather(fact: FactBase, output: list[str]):
    """What pyinfra returns for this output: the default when there is none, else ``process``."""
    return fact.process(output) if output else fact.default()


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact_fixture(path: Path) -> None:
    data = json.loads(path.read_text())
    fact = fact_class(path.parent.name)()
    command = command_text(fact, data.get("args", {}))
    for snippet in data.get("command_contains", []):
        assert snippet in command
    # JSON has no datetimes (file times) or tuples: compare in JSON's terms
    assert json.loads(json.dumps(gather(fact, data["output"]), default=str)) == data["fact"]


def every_fact() -> list[tuple[type[FactBase], dict]]:
    dev, path = {"device": "/dev/nvme1n1"}, {"path": "/mnt/kvcache"}
    keys = {p.parent.name for p in CASES}
    args = {"storage.BlockSignature": dev, "storage.Ext4Info": dev, "storage.MountedAt": path}
    args["snapshot.HostSnapshot"] = {"reads": ()}
    args["network.DcbState"] = {"interface": "ens1f0np0", "priority": 3}
    args["python.VenvPackages"] = {"venv": "/opt/kvpod/vllm"}
    args["bench.KvcacheSpace"] = {"path": "/mnt/kvcache", "lmcache_dir": "/mnt/kvcache/lmcache/", "bench_dir": "/b"}
    return [(fact_class(k), args.get(k, {})) for k in sorted(keys)]


@pytest.mark.parametrize("cls,args", every_fact(), ids=lambda v: getattr(v, "__name__", ""))
def test_fact_command_is_valid_sh(cls: type[FactBase], args: dict) -> None:
    result = subprocess.run(["sh", "-n", "-c", command_text(cls(), args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def run(command: str, replace: dict[str, str] | None = None) -> list[str]:
    for old, new in (replace or {}).items():
        command = command.replace(old, new)
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_nvme_subsystems_script_reads_sysfs(tmp_path: Path) -> None:
    """Multipath: the head node is listed, the hidden ``nvme1c1n1`` path nodes never; no multipath: under ctrl."""
    nvme, subsys = tmp_path / "nvme", tmp_path / "nvme-subsystem"
    for ctrl, addr, state in (("nvme1", "10.78.0.1", "live"), ("nvme2", "10.78.0.2", "connecting")):
        write(nvme / ctrl / "transport", "rdma")
        write(nvme / ctrl / "address", f"traddr={addr},trsvcid=4420")
        write(nvme / ctrl / "state", state)
        write(nvme / ctrl / f"{ctrl[:5]}c{ctrl[4]}n1" / "size", "0")  # hidden path node
    s1 = subsys / "nvme-subsys1"
    write(s1 / "subsysnqn", "nqn.test:drive01")
    write(s1 / "nvme1n1" / "nsid", "1")
    write(s1 / "nvme1n1" / "size", "3906250")
    for ctrl in ("nvme1", "nvme2"):
        (s1 / ctrl).symlink_to(nvme / ctrl)
    write(nvme / "nvme3" / "transport", "tcp")
    write(nvme / "nvme3" / "address", "traddr=10.78.0.1,trsvcid=4420,src_addr=10.78.0.3")
    write(nvme / "nvme3" / "state", "live")
    write(nvme / "nvme3" / "nvme3n1" / "nsid", "1")
    write(nvme / "nvme3" / "nvme3n1" / "size", "2048")
    s3 = subsys / "nvme-subsys3"
    write(s3 / "subsysnqn", "nqn.test:drive03")
    (s3 / "nvme3").symlink_to(nvme / "nvme3")

    fact = fact_class("nvme.NvmeSubsystems")()
    out = fact.process(run(fact.command(), {"/sys/class/nvme-subsystem": str(subsys)}))
    assert out["nqn.test:drive01"]["namespaces"] == [{"name": "nvme1n1", "nsid": 1, "size": 3906250 * 512}]
    assert [(c["name"], c["traddr"], c["state"]) for c in out["nqn.test:drive01"]["controllers"]] == [
        ("nvme1", "10.78.0.1", "live"),
        ("nvme2", "10.78.0.2", "connecting"),
    ]
    assert out["nqn.test:drive03"]["namespaces"] == [{"name": "nvme3n1", "nsid": 1, "size": 2048 * 512}]
    assert out["nqn.test:drive03"]["controllers"][0]["transport"] == "tcp"


def test_nvme_subsystems_script_reads_iopolicy_and_connect_settings(tmp_path: Path) -> None:
    """The subsystem's iopolicy and each controller's attributes as sysfs prints them; one the kernel lacks
    (``fast_io_fail_tmo`` before Linux 5.13) is absent, not guessed."""
    nvme, subsys = tmp_path / "nvme", tmp_path / "nvme-subsystem"
    write(nvme / "nvme1" / "transport", "rdma")
    write(nvme / "nvme1" / "address", "traddr=10.78.0.1,trsvcid=4420")
    write(nvme / "nvme1" / "state", "live")
    for attribute, value in (("reconnect_delay", "2"), ("ctrl_loss_tmo", "900"), ("kato", "10"), ("queue_count", "2")):
        write(nvme / "nvme1" / attribute, value)
    s1 = subsys / "nvme-subsys1"
    write(s1 / "subsysnqn", "nqn.test:drive01")
    write(s1 / "iopolicy", "round-robin")
    (s1 / "nvme1").symlink_to(nvme / "nvme1")

    fact = fact_class("nvme.NvmeSubsystems")()
    out = fact.process(run(fact.command(), {"/sys/class/nvme-subsystem": str(subsys)}))["nqn.test:drive01"]
    assert out["iopolicy"] == "round-robin"
    assert out["controllers"][0]["settings"] == {
        "reconnect_delay": "2",
        "ctrl_loss_tmo": "900",
        "kato": "10",
        "queue_count": "2",
    }


def test_dcb_state_script_reads_dcb_and_ecn(tmp_path: Path) -> None:
    """The read script runs ``dcb -j`` twice and reads the priority's ECN files (a ``dcb`` stand-in on PATH)."""
    bin_dir = tmp_path / "bin"
    write(
        bin_dir / "dcb",
        '#!/bin/sh\ncase "$2" in app) echo \'{"dscp_prio":[[26,3]]}\' ;; pfc) echo \'{"prio_pfc":{"3":true}}\' ;; esac',
    )
    (bin_dir / "dcb").chmod(0o755)
    write(tmp_path / "net" / "eth1" / "ecn" / "roce_np" / "enable" / "3", "1")
    fact = fact_class("network.DcbState")()
    command = command_text(fact, {"interface": "eth1", "priority": 3})
    command = command.replace("/sys/class/net/", f"{tmp_path}/net/")
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, check=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )
    assert fact.process(result.stdout.splitlines()) == {
        "dscp_prio": {26: 3},
        "pfc": {3: True},
        "ecn": {"roce_np": "1"},
    }


def test_nvme_subsystems_script_without_nvme(tmp_path: Path) -> None:
    fact = fact_class("nvme.NvmeSubsystems")()
    assert gather(fact, run(fact.command(), {"/sys/class/nvme-subsystem": str(tmp_path / "absent")})) == {}


def test_nvmet_config_script_reads_configfs(tmp_path: Path) -> None:
    root = tmp_path / "nvmet"
    nqn, hostnqn = "nqn.test:drive01", "nqn.test:node1"
    sub = root / "subsystems" / nqn
    write(sub / "attr_allow_any_host", "0")
    write(sub / "namespaces" / "1" / "enable", "1")
    write(sub / "namespaces" / "1" / "device_path", "/srv/nvmet/drive1.img")
    write(sub / "namespaces" / "1" / "device_uuid", "5e0d0b49-1f6c-5b5c-8f2e-3c5a2d1b7e90")
    write(sub / "namespaces" / "1" / "device_nguid", "0b2c9d9e-2a4f-5d77-9c1e-7f8a6b5c4d3e")
    (root / "hosts" / hostnqn).mkdir(parents=True)
    (sub / "allowed_hosts").mkdir()
    (sub / "allowed_hosts" / hostnqn).symlink_to(root / "hosts" / hostnqn)
    port = root / "ports" / "1"
    for key, value in (("trtype", "rdma"), ("traddr", "10.78.0.1"), ("trsvcid", "4420"), ("adrfam", "ipv4")):
        write(port / f"addr_{key}", value)
    (port / "subsystems").mkdir()
    (port / "subsystems" / nqn).symlink_to(sub)

    fact = fact_class("nvmet.NvmetConfig")()
    out = gather(fact, run(fact.command(), {"/sys/kernel/config/nvmet": str(root)}))
    assert out == {
        "present": True,
        "subsystems": {
            nqn: {
                "allow_any_host": False,
                "allowed_hosts": [hostnqn],
                "namespaces": {
                    "1": {
                        "device_path": "/srv/nvmet/drive1.img",
                        "enable": True,
                        "device_uuid": "5e0d0b49-1f6c-5b5c-8f2e-3c5a2d1b7e90",
                        "device_nguid": "0b2c9d9e-2a4f-5d77-9c1e-7f8a6b5c4d3e",
                    }
                },
            }
        },
        "ports": {
            "1": {"trtype": "rdma", "traddr": "10.78.0.1", "trsvcid": "4420", "adrfam": "ipv4", "subsystems": [nqn]}
        },
        "hosts": [hostnqn],
    }
    assert gather(fact, run(fact.command(), {"/sys/kernel/config/nvmet": str(tmp_path / "none")}))["present"] is False


def test_rdma_links_script(tmp_path: Path) -> None:
    ib = tmp_path / "infiniband"
    write(ib / "rxe_eth1" / "parent", "eth1")
    write(ib / "mlx5_0" / "ports" / "1" / "gid_attrs" / "ndevs" / "0", "ens1f0np0")
    fact = fact_class("kernel.RdmaLinks")()
    assert gather(fact, run(fact.command(), {"/sys/class/infiniband": str(ib)})) == {
        "rxe_eth1": "eth1",
        "mlx5_0": "ens1f0np0",
    }


def test_loaded_modules_script(tmp_path: Path) -> None:
    write(tmp_path / "modules", "nvme_rdma 57344 2 - Live 0x0000000000000000\n8021q 45056 0 - Live 0x0")
    write(tmp_path / "modules.builtin", "kernel/drivers/nvme/host/nvme-core.ko\nkernel/fs/ext4/ext4.ko")
    fact = fact_class("kernel.LoadedModules")()
    replace = {
        "/proc/modules": str(tmp_path / "modules"),
        "/lib/modules/$(uname -r)/modules.builtin": str(tmp_path / "modules.builtin"),
    }
    assert gather(fact, run(fact.command(), replace)) == {
        "nvme_rdma": "loaded",
        "8021q": "loaded",
        "nvme_core": "builtin",
        "ext4": "builtin",
    }


def test_host_identity_script(tmp_path: Path) -> None:
    write(tmp_path / "hostnqn", "nqn.2014-08.org.nvmexpress:uuid:abc")
    fact = fact_class("nvme.NvmeHostIdentity")()
    assert gather(fact, run(fact.command(), {"/etc/nvme": str(tmp_path)})) == {
        "hostnqn": "nqn.2014-08.org.nvmexpress:uuid:abc",
        "hostid": None,
    }


@pytest.mark.skipif(not shutil.which("mkfs.ext4") or not shutil.which("dumpe2fs"), reason="needs e2fsprogs")
def test_ext4_info_on_a_real_filesystem(tmp_path: Path) -> None:
    image = tmp_path / "fs.img"
    with image.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", "-O", "mmp", "-L", "kvcache", "-b", "4096", str(image)], check=True)
    fact = fact_class("storage.Ext4Info")()
    info = gather(fact, run(command_text(fact, {"device": str(image)})))
    assert info["label"] == "kvcache"
    assert info["size"] == 16 * 1024 * 1024
    assert "mmp" in info["features"]
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * 65536)
    assert gather(fact, run(command_text(fact, {"device": str(blank)}))) is None


def test_block_signature_of_a_missing_device() -> None:
    fact = fact_class("storage.BlockSignature")()
    assert gather(fact, run(command_text(fact, {"device": "/dev/kvpod-no-such-device"}))) == {
        "ERROR": "not a block device"
    }


@pytest.mark.skipif(not shutil.which("findmnt"), reason="needs findmnt")
def test_mounted_at_on_this_machine(tmp_path: Path) -> None:
    fact = fact_class("storage.MountedAt")()
    root = gather(fact, run(command_text(fact, {"path": "/"})))
    assert root is not None and root["fstype"]
    assert gather(fact, run(command_text(fact, {"path": str(tmp_path)}))) is None


@pytest.mark.skipif(not shutil.which("mountpoint"), reason="needs util-linux")
def test_kvcache_space_on_this_machine(tmp_path: Path) -> None:
    """``/`` is a mountpoint with free space; a temp directory is not; du counts what the directories hold."""
    fact = fact_class("bench.KvcacheSpace")()
    (tmp_path / "lmcache").mkdir()
    (tmp_path / "lmcache" / "chunk").write_bytes(b"k" * 65536)
    args = {"lmcache_dir": str(tmp_path / "lmcache"), "bench_dir": str(tmp_path / "no-such-dir")}
    root = gather(fact, run(command_text(fact, {"path": "/", **args})))
    assert root["mounted"] is True and root["avail_bytes"] > 0
    assert root["lmcache_bytes"] >= 65536 and root["bench_bytes"] == 0
    here = gather(fact, run(command_text(fact, {"path": str(tmp_path), **args})))
    assert here["mounted"] is False and here["avail_bytes"] is None


@pytest.mark.skipif(not shutil.which("ip"), reason="needs iproute2")
def test_ip_facts_on_this_machine() -> None:
    links = gather(fact_class("network.IpLinks")(), run("ip -j -d addr show 2>/dev/null || true"))
    assert "127.0.0.1/8" in links["lo"]["addresses"]
    routes = gather(fact_class("network.IpRoutes")(), run("ip -j route show 2>/dev/null || true"))
    assert isinstance(routes, list)


def test_fixture_names_match_facts() -> None:
    for directory in {p.parent for p in CASES}:
        assert fact_class(directory.name).__name__ == directory.name.split(".")[1]
    assert os.path.basename(__file__) == "test_facts.py"
