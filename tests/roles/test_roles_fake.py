"""The node roles against a fake pyinfra host (real pyinfra 3 ``State``; facts from a simulated node that the
executed commands change): fresh hosts get the key commands, converged hosts get none, data is never lost."""

from __future__ import annotations

import pytest
import yaml
from pyinfra.api import OperationError

from benchmarks.kvpod_sim import DEVICE, connected_node, ext4_facts, fresh_node
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.encode import env_value
from deploy.loader import load_spec
from deploy.operations.restart import pending_units, restart_pending
from deploy.plan import NodePlan, RoceQosPlan, build_plan
from deploy.shipped import lab_spec, reference_spec
from roles._common import netdev_unit, systemd_quote
from roles.fabric_network import fabric_network
from roles.kv_mount import filesystem_uuid, kv_mount
from roles.lmcache import lmcache
from roles.node import node
from roles.nvme_initiator import nvme_initiator
from roles.vllm import exec_start, vllm
from tests.conftest import ROOT

ROLES = [fabric_network, nvme_initiator, kv_mount, lmcache, vllm]
TIER_DIRS = "install -d -m 750 -o vllm -g vllm " + " ".join(
    ["/mnt/kvcache/lmcache", "/mnt/kvcache/lmcache/engine0", "/mnt/kvcache/lmcache/engine1"]
)


def plan_of(spec) -> NodePlan:
    return build_plan(load_spec(spec)).nodes[0]


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    return plan_of(lab_spec())


@pytest.fixture(scope="module")
def reference() -> NodePlan:
    return plan_of(reference_spec())


@pytest.fixture(scope="module")
def per_node_vlan() -> NodePlan:
    return plan_of(ROOT / "examples" / "per-node-vlan" / "pod.yaml")


def data(plan: NodePlan, **extra) -> dict:
    return {"kvpod_node": plan, **extra}


def strings(commands: list) -> list[str]:
    return [c for c in commands if isinstance(c, str)]


def uploads(commands: list) -> dict[str, str]:
    return {c[2]: c[1] for c in commands if isinstance(c, list) and c[0] == "upload"}


def mkfs(commands: list) -> list[str]:
    return [c for c in strings(commands) if "mkfs.ext4" in c]


def converge(deploy, remote: FakeRemote, host_data: dict) -> None:
    state, host = deploy_run(deploy, remote, host_data)
    assert host not in state.failed_hosts, remote.executed[-5:]


# -- the whole node -----------------------------------------------------------------------------------------


def test_fresh_node_dry_run_refuses_to_guess_before_the_namespace_is_connected(lab: NodePlan) -> None:
    with pytest.raises(OperationError, match="not connected yet"):
        deploy_plan(node, fresh_node(lab), data(lab))


def test_fresh_node_real_run_brings_it_up_then_it_is_converged(lab: NodePlan) -> None:
    remote = fresh_node(lab)
    state, host = deploy_run(node, remote, data(lab))
    assert host not in state.failed_hosts
    executed = remote.executed
    connects = [c for c in executed if c.startswith("nvme connect")]
    assert [c.split("--traddr ")[1].split()[0] for c in connects] == ["10.78.0.1", "10.78.0.2"]
    formats = [c for c in executed if "mkfs.ext4" in c]
    assert len(formats) == 1 and " -F " not in formats[0] and formats[0].startswith("if blkid -p /dev/nvme1n1")
    for path in (
        "/etc/systemd/system/kvpod-vllm@0.service",
        "/etc/systemd/system/kvpod-vllm@1.service",
        "/etc/systemd/system/mnt-kvcache.mount",
        "/etc/systemd/system/kvpod-nvme-connect.service",
        "/etc/kvpod/lmcache@0.env",
        "/etc/kvpod/lmcache@1.env",
    ):
        assert path in remote.uploads
    assert "/etc/systemd/system/kvpod-vllm.service" not in remote.uploads
    assert "systemctl enable --now kvpod-vllm@0.service kvpod-vllm@1.service" in executed  # one command
    for unit in ("kvpod-vllm@0.service", "kvpod-vllm@1.service"):
        assert remote.units[unit]["running"] and remote.units[unit]["enabled"]
        assert f"systemctl restart {unit}" not in executed
    assert remote.dirs["/mnt/kvcache"]["user"] == "vllm", "the mounted filesystem's root belongs to vLLM"
    assert restart_pending(state, host) is False

    assert changed_commands(deploy_plan(node, remote, data(lab))) == []
    before = len(remote.executed)
    converge(node, remote, data(lab))
    assert remote.executed[before:] == [], "a second real run must not run a single command"


def test_node_runs_roles_in_order(lab: NodePlan) -> None:
    remote = fresh_node(lab)
    converge(node, remote, data(lab))
    executed = remote.executed
    first = {
        word: next(i for i, c in enumerate(executed) if word in c) for word in ("ip link add", "nvme connect", "mkfs")
    }
    assert first["ip link add"] < first["nvme connect"] < first["mkfs"]
    assert executed.index("systemctl start mnt-kvcache.mount") < executed.index(
        "systemctl enable --now kvpod-vllm@0.service kvpod-vllm@1.service"
    )


# -- each role: fresh host, then converged --------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.__name__)
def test_role_converges(role, lab: NodePlan) -> None:
    remote = connected_node(lab)
    if role in (lmcache, vllm):
        converge(kv_mount, remote, data(lab))
    fresh = changed_commands(deploy_plan(role, remote, data(lab)))
    assert fresh, "a fresh host needs changes"
    converge(role, remote, data(lab))
    assert changed_commands(deploy_plan(role, remote, data(lab))) == []


def test_fabric_network_fresh(lab: NodePlan) -> None:
    commands = changed_commands(deploy_plan(fabric_network, fresh_node(lab), data(lab)))
    cmds = strings(commands)
    assert "ip link set dev eth1 mtu 9000 up" in cmds
    assert "ip link add link eth1 name eth1.100 mtu 9000 up type vlan id 100" in cmds
    assert "ip addr add 10.78.0.3/24 dev eth1.100" in cmds
    assert "rdma link add rxe_eth1 type rxe netdev eth1" in cmds
    assert any(c.startswith("sysctl net.core.rmem_max=134217728 net.core.wmem_max=134217728 ") for c in cmds)
    assert "networkctl reload" in cmds
    assert not any("eth0" in c for c in cmds), "the management NIC is never touched"
    files = uploads(commands)
    assert "Id=100" in files["/etc/systemd/network/10-kvpod-eth1.100.netdev"]
    assert "Address=10.78.0.3/24" in files["/etc/systemd/network/10-kvpod-eth1.100.network"]
    assert "VLAN=eth1.100" in files["/etc/systemd/network/10-kvpod-eth1.network"]
    assert "net.core.wmem_max = 134217728" in files["/etc/sysctl.d/90-kvpod-rdma.conf"]
    assert "rdma link add rxe_eth1 type rxe netdev eth1" in files["/etc/systemd/system/kvpod-rxe.service"]
    assert files["/etc/modules-load.d/kvpod-rdma.conf"].splitlines()[1:] == ["rdma_rxe"]


def test_fabric_network_on_a_netplan_host(lab: NodePlan) -> None:
    remote = fresh_node(lab, netplan=True)
    commands = changed_commands(deploy_plan(fabric_network, remote, data(lab)))
    files = uploads(commands)
    assert not any(p.startswith("/etc/systemd/network/") for p in files)
    config = yaml.safe_load(files["/etc/netplan/60-kvpod.yaml"])
    assert config["network"]["vlans"]["eth1.100"] == {
        "id": 100,
        "link": "eth1",
        "mtu": 9000,
        "dhcp4": False,
        "dhcp6": False,
        "link-local": [],
        "addresses": ["10.78.0.3/24"],
    }
    assert "netplan apply" in strings(commands)
    converge(fabric_network, remote, data(lab))
    assert changed_commands(deploy_plan(fabric_network, remote, data(lab))) == []


def test_fabric_network_refuses_an_unmanaged_network(lab: NodePlan) -> None:
    remote = fresh_node(lab)
    remote.units.clear()
    with pytest.raises(OperationError, match="neither netplan nor systemd-networkd"):
        deploy_plan(fabric_network, remote, data(lab))


def test_fabric_network_routes_via_the_gateway(per_node_vlan: NodePlan) -> None:
    remote = fresh_node(per_node_vlan)
    commands = changed_commands(deploy_plan(fabric_network, remote, data(per_node_vlan)))
    assert "ip route replace 10.78.0.0/24 via 10.79.0.1 dev ens1f0np0.101" in strings(commands)
    network = uploads(commands)["/etc/systemd/network/10-kvpod-ens1f0np0.101.network"]
    assert "[Route]\nDestination=10.78.0.0/24\nGateway=10.79.0.1\n" in network
    converge(fabric_network, remote, data(per_node_vlan))
    assert changed_commands(deploy_plan(fabric_network, remote, data(per_node_vlan))) == []


def test_hardware_rdma_needs_no_soft_roce(reference: NodePlan) -> None:
    commands = changed_commands(deploy_plan(fabric_network, fresh_node(reference), data(reference)))
    assert not any("rxe" in c for c in strings(commands))
    assert "/etc/systemd/system/kvpod-rxe.service" not in uploads(commands)


def test_lossless_roce_on_a_hardware_nic_then_nothing(reference: NodePlan) -> None:
    """The reference node (hardware RDMA, its switch with RoCE QoS): DSCP 26 -> priority 3, PFC on 3 only, ECN
    on 3, set now and by a boot unit; a second run with the NIC as set finds nothing to do."""
    remote = fresh_node(reference)
    commands = changed_commands(deploy_plan(fabric_network, remote, data(reference)))
    cmds = strings(commands)
    nic = reference.fabric.interface
    assert f"dcb app replace dev {nic} dscp-prio 26:3" in cmds
    assert f"dcb pfc set dev {nic} prio-pfc 0:off 1:off 2:off 3:on 4:off 5:off 6:off 7:off" in cmds
    assert f"printf '%s\\n' 1 > /sys/class/net/{nic}/ecn/roce_np/enable/3" in cmds
    script = uploads(commands)["/usr/local/sbin/kvpod-dcb"]
    assert 'dcb app replace dev "$NIC" dscp-prio 26:3' in script and "3:on" in script
    unit = uploads(commands)["/etc/systemd/system/kvpod-dcb.service"]
    assert "Before=kvpod-nvme-connect.service" in unit and "ExecStart=/usr/local/sbin/kvpod-dcb" in unit
    converge(fabric_network, remote, data(reference))
    assert remote.dcb["dscp_prio"] == {26: 3} and remote.dcb["ecn"] == {"roce_np": "1", "roce_rp": "1"}
    assert changed_commands(deploy_plan(fabric_network, remote, data(reference))) == []


def test_lossless_roce_follows_the_one_priority(reference: NodePlan) -> None:
    """fabric.roce_qos sets the priority and DSCP once: the NIC takes them (and the switch, see the render tests)."""
    qos = reference.fabric.roce_qos.model_copy(update={"priority": 4, "dscp": [24, 26]})
    plan = reference.model_copy(update={"fabric": reference.fabric.model_copy(update={"roce_qos": qos})})
    cmds = strings(changed_commands(deploy_plan(fabric_network, fresh_node(plan), data(plan))))
    nic = plan.fabric.interface
    assert f"dcb app replace dev {nic} dscp-prio 24:4 26:4" in cmds
    assert any(c.startswith(f"dcb pfc set dev {nic}") and c.endswith("3:off 4:on 5:off 6:off 7:off") for c in cmds)


def test_soft_roce_takes_no_dcb(lab: NodePlan) -> None:
    """A soft-RoCE NIC cannot do DCB: with RoCE QoS planned the role tries nothing on it."""
    qos = RoceQosPlan(priority=3, dscp=[26], ecn=True)
    plan = lab.model_copy(update={"fabric": lab.fabric.model_copy(update={"roce_qos": qos})})
    commands = changed_commands(deploy_plan(fabric_network, fresh_node(plan), data(plan)))
    assert not any(c.startswith("dcb") or "/ecn/" in c for c in strings(commands))
    assert "/etc/systemd/system/kvpod-dcb.service" not in uploads(commands)


def test_nvme_initiator_fresh(lab: NodePlan) -> None:
    commands = changed_commands(deploy_plan(nvme_initiator, fresh_node(lab), data(lab)))
    cmds = strings(commands)
    assert "modprobe -a nvme_fabrics nvme_rdma" in cmds
    assert [c for c in cmds if c.startswith("nvme connect")] == [
        f"nvme connect --transport rdma --nqn {lab.namespace.subsystem_nqn} --traddr {addr} --trsvcid 4420 "
        f"--hostnqn {lab.host_nqn} --hostid {lab.host_id} "
        f"--ctrl-loss-tmo 900 --reconnect-delay 2 --keep-alive-tmo 10 --nr-io-queues 1"
        for addr in ("10.78.0.1", "10.78.0.2")
    ]
    iopolicy = [c for c in cmds if "/iopolicy" in c]
    assert len(iopolicy) == 1 and iopolicy[0].endswith(f"{lab.namespace.subsystem_nqn} round-robin")
    assert cmds.index(iopolicy[0]) > max(i for i, c in enumerate(cmds) if c.startswith("nvme connect"))
    assert not any("apt" in c for c in cmds), "installed packages: nothing to fetch (offline hosts)"
    unit = uploads(commands)["/etc/systemd/system/kvpod-nvme-connect.service"]
    assert "Type=oneshot" in unit and "RemainAfterExit=yes" in unit
    assert "Requires=sys-subsystem-net-devices-eth1.100.device" in unit
    assert "Before=mnt-kvcache.mount" in unit
    assert "Wants=kvpod-rxe.service" in unit
    script = uploads(commands)["/usr/local/sbin/kvpod-nvme-connect"]
    assert script.count("nvme connect --transport rdma") == 2
    assert script.count("--keep-alive-tmo 10 --nr-io-queues 1") == 2
    assert "POLICY=round-robin" in script and '> "$s/iopolicy"' in script
    assert "ADDRESS=10.78.0.3" in script


def test_nvme_initiator_installs_missing_packages(lab: NodePlan) -> None:
    remote = fresh_node(lab)
    remote.packages.clear()
    cmds = strings(changed_commands(deploy_plan(nvme_initiator, remote, data(lab))))
    assert any("apt-get" in c and "install" in c and "nvme-cli" in c and "rdma-core" in c for c in cmds)


def test_connect_script_is_valid_sh(lab: NodePlan, tmp_path) -> None:
    import subprocess

    script = uploads(changed_commands(deploy_plan(nvme_initiator, fresh_node(lab), data(lab))))
    path = tmp_path / "connect"
    path.write_text(script["/usr/local/sbin/kvpod-nvme-connect"])
    assert subprocess.run(["sh", "-n", str(path)]).returncode == 0


# -- kv mount: data safety ----------------------------------------------------------------------------------


def test_kv_mount_formats_a_blank_namespace(lab: NodePlan) -> None:
    commands = changed_commands(deploy_plan(kv_mount, connected_node(lab), data(lab)))
    fs_uuid = filesystem_uuid(lab.namespace.subsystem_nqn, lab.namespace.nsid)
    assert mkfs(commands) == [
        f"if blkid -p /dev/{DEVICE} >/dev/null 2>&1; [ $? -eq 2 ]; then "
        f"mkfs.ext4 -q -m 0 -O mmp -L kvcache -U {fs_uuid} /dev/{DEVICE} ; "
        f"else echo 'kvpod: /dev/{DEVICE} is not blank: not formatting it' >&2; exit 1; fi"
    ]
    unit = uploads(commands)["/etc/systemd/system/mnt-kvcache.mount"]
    assert f"What=/dev/disk/by-uuid/{fs_uuid}\n" in unit
    assert "Where=/mnt/kvcache\n" in unit
    assert "Options=noatime,_netdev,nofail\n" in unit
    assert "Requires=kvpod-nvme-connect.service\nAfter=kvpod-nvme-connect.service\n" in unit
    assert "systemctl start mnt-kvcache.mount" in strings(commands)


def test_kv_mount_never_formats_an_existing_ext4(lab: NodePlan) -> None:
    sig, info = ext4_facts("0b9c21f0-6b1a-4d2e-8a53-0e1f7a2c9d11")
    remote = connected_node(lab, sig, info)
    commands = changed_commands(deploy_plan(kv_mount, remote, data(lab)))
    assert mkfs(commands) == []
    assert (
        "What=/dev/disk/by-uuid/0b9c21f0-6b1a-4d2e-8a53-0e1f7a2c9d11\n"
        in uploads(commands)["/etc/systemd/system/mnt-kvcache.mount"]
    )
    converge(kv_mount, remote, data(lab))
    assert not any("mkfs" in c for c in remote.executed)
    assert remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"]["UUID"] == sig["UUID"]


def test_kv_mount_wipes_only_the_named_drive(lab: NodePlan) -> None:
    sig, info = ext4_facts("0b9c21f0-6b1a-4d2e-8a53-0e1f7a2c9d11")
    commands = changed_commands(deploy_plan(kv_mount, connected_node(lab, sig, info), data(lab, kvpod_wipe=True)))
    fs_uuid = filesystem_uuid(lab.namespace.subsystem_nqn, lab.namespace.nsid)
    assert mkfs(commands) == [f"mkfs.ext4 -F -q -m 0 -O mmp -L kvcache -U {fs_uuid} /dev/{DEVICE}"]
    remote = connected_node(lab, sig, info)
    converge(kv_mount, remote, data(lab, kvpod_wipe=True))
    assert remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"]["UUID"] == fs_uuid
    unit = remote.files["/etc/systemd/system/mnt-kvcache.mount"]["content"]
    assert f"What=/dev/disk/by-uuid/{fs_uuid}\n" in unit, "the unit names the new filesystem"


def test_wiping_a_node_in_service(lab: NodePlan) -> None:
    """A converged node whose drive the user named: vLLM and the mount stop, mkfs -F, then all comes back."""
    remote = converged_node(lab)
    cmds = strings(changed_commands(deploy_plan(node, remote, data(lab, kvpod_wipe=True))))
    fs_uuid = filesystem_uuid(lab.namespace.subsystem_nqn, lab.namespace.nsid)
    assert cmds[:3] == [
        "systemctl stop 'kvpod-vllm*.service'",
        "systemctl stop mnt-kvcache.mount",
        f"mkfs.ext4 -F -q -m 0 -O mmp -L kvcache -U {fs_uuid} /dev/{DEVICE}",
    ]
    before = len(remote.executed)
    converge(node, remote, data(lab, kvpod_wipe=True))
    executed = remote.executed[before:]
    assert executed.index("systemctl stop mnt-kvcache.mount") < executed.index("udevadm settle")
    assert executed[-2:] == ["systemctl start kvpod-vllm@0.service", "systemctl start kvpod-vllm@1.service"]
    assert TIER_DIRS in executed  # the fresh filesystem's tier: root and engine directories in one command
    assert changed_commands(deploy_plan(node, remote, data(lab))) == []


def test_kv_mount_refuses_a_foreign_filesystem(lab: NodePlan) -> None:
    remote = connected_node(lab, {"TYPE": "xfs", "UUID": "9e1f"})
    with pytest.raises(OperationError, match="holds xfs, not ext4"):
        deploy_plan(kv_mount, remote, data(lab))
    state, host = deploy_run(kv_mount, remote, data(lab))
    assert host in state.failed_hosts
    assert not any("mkfs" in c for c in remote.executed)


def test_kv_mount_refuses_a_filesystem_below_the_budget(lab: NodePlan) -> None:
    small = lab.model_copy(update={"mount": lab.mount.model_copy(update={"disk_budget_gb": 64.0})})
    sig, info = ext4_facts("0b9c21f0-6b1a-4d2e-8a53-0e1f7a2c9d11")
    with pytest.raises(OperationError, match=r"smaller than the disk budget of 64\.00 GiB"):
        deploy_plan(kv_mount, connected_node(small, sig, info), data(small))


def test_kv_mount_never_mounts_over_another_device(lab: NodePlan) -> None:
    sig, info = ext4_facts("0b9c21f0-6b1a-4d2e-8a53-0e1f7a2c9d11")
    remote = connected_node(lab, sig, info)
    other = {"source": "/dev/vdb", "fstype": "ext4", "options": ["rw"], "device": "vdb"}
    remote.facts["storage.MountedAt"]["path=/mnt/kvcache"] = other
    with pytest.raises(OperationError, match="refusing to mount over it"):
        deploy_plan(kv_mount, remote, data(lab))


def test_kv_mount_on_the_reference_drive(reference: NodePlan) -> None:
    commands = changed_commands(deploy_plan(kv_mount, connected_node(reference), data(reference)))
    assert len(mkfs(commands)) == 1


# -- lmcache ------------------------------------------------------------------------------------------------


def test_lmcache_env_mode(lab: NodePlan) -> None:
    commands = changed_commands(deploy_plan(lmcache, connected_node(lab), data(lab)))
    for index in (0, 1):  # the lab's 1 GiB budgets: half per engine, a quarter of that per rank
        assert uploads(commands)[f"/etc/kvpod/lmcache@{index}.env"].splitlines()[1:] == [
            "LMCACHE_CHUNK_SIZE=256",
            "LMCACHE_LOCAL_CPU=True",
            "LMCACHE_MAX_LOCAL_CPU_SIZE=0.125",
            f"LMCACHE_LOCAL_DISK=file:///mnt/kvcache/lmcache/engine{index}/",
            "LMCACHE_MAX_LOCAL_DISK_SIZE=0.125",
            "LMCACHE_TRACK_USAGE=false",
            "PYTHONHASHSEED=0",
        ]
        assert f"/etc/kvpod/lmcache@{index}.yaml" not in uploads(commands)
    cmds = strings(commands)
    assert TIER_DIRS in cmds  # parents first, one command


def test_lmcache_env_mode_extras(lab: NodePlan) -> None:
    plan = lab.with_lmcache(extra={"save_decode_cache": True})
    env = uploads(changed_commands(deploy_plan(lmcache, connected_node(plan), data(plan))))["/etc/kvpod/lmcache@1.env"]
    assert "LMCACHE_SAVE_DECODE_CACHE=True\n" in env


def test_lmcache_yaml_mode_never_sets_a_setting_twice(lab: NodePlan) -> None:
    extra = {"extra_config": {"retrieve_locations": ["LocalCPUBackend", "LocalDiskBackend"]}}
    engines = [
        e.model_copy(
            update={
                "lmcache": e.lmcache.model_copy(
                    update={"extra": extra, "config_mode": "yaml", "config_file": f"/etc/kvpod/lmcache@{e.index}.yaml"}
                )
            }
        )
        for e in lab.engines
    ]
    plan = lab.model_copy(update={"engines": engines})
    remote = connected_node(plan)
    remote.upload("LMCACHE_CHUNK_SIZE=256\n", "/etc/kvpod/lmcache@1.env")  # left from env mode
    files = uploads(changed_commands(deploy_plan(lmcache, remote, data(plan))))
    assert files["/etc/kvpod/lmcache@1.env"].splitlines()[1:] == [
        "LMCACHE_CONFIG_FILE=/etc/kvpod/lmcache@1.yaml",
        "LMCACHE_TRACK_USAGE=false",
        "PYTHONHASHSEED=0",
    ]
    config = yaml.safe_load(files["/etc/kvpod/lmcache@1.yaml"])
    assert config == {
        "chunk_size": 256,
        "local_cpu": True,
        "max_local_cpu_size": 0.125,
        "local_disk": "file:///mnt/kvcache/lmcache/engine1/",
        "max_local_disk_size": 0.125,
        **extra,
    }


def test_lmcache_env_mode_removes_a_stale_yaml(lab: NodePlan) -> None:
    remote = connected_node(lab)
    remote.upload("chunk_size: 512\n", "/etc/kvpod/lmcache@1.yaml")
    cmds = strings(changed_commands(deploy_plan(lmcache, remote, data(lab))))
    assert "rm -f /etc/kvpod/lmcache@1.yaml" in cmds


# -- vllm ---------------------------------------------------------------------------------------------------


def test_vllm_unit(lab: NodePlan) -> None:
    commands = changed_commands(deploy_plan(vllm, connected_node(lab), data(lab)))
    unit = uploads(commands)["/etc/systemd/system/kvpod-vllm@1.service"]
    assert (
        "ExecStart=/opt/kvpod/vllm/bin/vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 4 "
        "--gpu-memory-utilization 0.9 --max-model-len 32768 --port 8001 "
        """--kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'\n"""
    ) in unit
    for line in (
        "Description=kvpod vLLM engine 1 serving meta-llama/Llama-3.1-8B-Instruct",
        "Environment=CUDA_VISIBLE_DEVICES=4,5,6,7",
        "EnvironmentFile=/etc/kvpod/lmcache@1.env",
        "ExecStartPre=+/usr/local/sbin/kvpod-lmcache-clean engine1",
        "User=vllm",
        "RequiresMountsFor=/mnt/kvcache",
        "After=mnt-kvcache.mount kvpod-nvme-connect.service",
        "Restart=on-failure",
        "LimitMEMLOCK=infinity",
        "WantedBy=multi-user.target",
    ):
        assert f"{line}\n" in unit
    cmds = strings(commands)
    assert cmds.index("systemctl daemon-reload") < cmds.index(
        "systemctl enable --now kvpod-vllm@0.service kvpod-vllm@1.service"
    )
    assert "useradd --system --user-group --create-home --home-dir /var/lib/vllm --shell /usr/sbin/nologin vllm" in cmds


def converged_node(plan: NodePlan) -> FakeRemote:
    remote = fresh_node(plan)
    converge(node, remote, data(plan))
    return remote


def test_vllm_restarts_when_lmcache_settings_change(lab: NodePlan) -> None:
    remote = converged_node(lab)
    changed = lab.with_lmcache(chunk_size=512)
    planned = changed_commands(deploy_plan(node, remote, data(changed)))
    assert {"/etc/kvpod/lmcache@0.env", "/etc/kvpod/lmcache@1.env"} <= set(uploads(planned))
    assert "systemctl restart kvpod-vllm@0.service" in strings(planned)
    assert "systemctl restart kvpod-vllm@1.service" in strings(planned)
    assert "systemctl daemon-reload" not in strings(planned), "the unit did not change"
    state, host = deploy_run(node, remote, data(changed))
    assert remote.units["kvpod-vllm@0.service"]["restarts"] == remote.units["kvpod-vllm@1.service"]["restarts"] == 1
    assert restart_pending(state, host) is False
    assert changed_commands(deploy_plan(node, remote, data(changed))) == []


def test_vllm_restarts_when_its_unit_changes(lab: NodePlan) -> None:
    remote = converged_node(lab)
    changed = lab.model_copy(update={"vllm": lab.vllm.model_copy(update={"max_model_len": 16384})})
    cmds = strings(changed_commands(deploy_plan(node, remote, data(changed))))
    extract, *cmds = cmds
    assert extract.startswith("sh -c 'tar -x ") and extract.endswith(
        " etc/systemd/system/kvpod-vllm@0.service etc/systemd/system/kvpod-vllm@1.service"
    )
    assert cmds == [
        "systemctl daemon-reload",
        "systemctl restart kvpod-vllm@0.service",
        "systemctl restart kvpod-vllm@1.service",
    ]


def test_vllm_restart_can_be_deferred(lab: NodePlan) -> None:
    remote = converged_node(lab)
    changed = lab.with_lmcache(chunk_size=512)
    planned = changed_commands(deploy_plan(node, remote, data(changed, kvpod_defer_restart=True)))
    assert not any("restart" in c for c in strings(planned))
    state, host = deploy_run(node, remote, data(changed, kvpod_defer_restart=True))
    assert all(remote.units[u].get("restarts", 0) == 0 for u in lab.engine_units())
    assert restart_pending(state, host) is True
    assert pending_units(state, host) == lab.engine_units()


def test_a_deferred_restart_names_only_the_engines_whose_files_changed(lab: NodePlan) -> None:
    remote = converged_node(lab)
    remote.files[lab.engines[1].lmcache.env_file]["content"] += "LMCACHE_DRIFT=1\n"
    state, host = deploy_run(node, remote, data(lab, kvpod_defer_restart=True))
    assert restart_pending(state, host) is True
    assert pending_units(state, host) == [lab.engines[1].unit]


def test_vllm_is_not_restarted_without_changes(lab: NodePlan) -> None:
    remote = converged_node(lab)
    state, host = deploy_run(node, remote, data(lab))
    assert all(remote.units[u].get("restarts", 0) == 0 for u in lab.engine_units())
    assert restart_pending(state, host) is False


# -- quoting and names --------------------------------------------------------------------------------------


def test_systemd_quoting() -> None:
    assert systemd_quote("/usr/local/bin/vllm") == "/usr/local/bin/vllm"
    assert systemd_quote('{"a":1}') == """'{"a":1}'"""
    assert systemd_quote("50%") == "'50%%'"
    assert systemd_quote("$HOME") == "'$$HOME'"
    assert systemd_quote("it's") == '"it\'s"'
    assert systemd_quote("a b") == "'a b'"
    assert systemd_quote("") == "''"


def test_exec_start_quotes_extra_args(lab: NodePlan) -> None:
    plan = lab.model_copy(
        update={"vllm": lab.vllm.model_copy(update={"extra_args": ["--served-model-name", "kv pod"]})}
    )
    assert exec_start(plan).endswith("--served-model-name 'kv pod'")


def test_env_values_and_unit_names() -> None:
    assert env_value(True) == "True"
    assert env_value("file:///mnt/kvcache/lmcache/") == "file:///mnt/kvcache/lmcache/"
    assert env_value("a b") == '"a b"'
    assert netdev_unit("eth1.100") == "sys-subsystem-net-devices-eth1.100.device"
    assert netdev_unit("en-p1") == "sys-subsystem-net-devices-en\\x2dp1.device"


def test_roles_need_the_plan() -> None:
    with pytest.raises(OperationError, match="no kvpod_node plan"):
        deploy_plan(node, FakeRemote(), {})
