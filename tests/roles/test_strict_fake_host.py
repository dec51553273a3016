"""The simulated host is strict: a command kvpod never issues fails loudly with its text, and the on-host guards
(the blank check before mkfs, the guard before ``nvme disconnect``) are the real shell snippets run under ``sh``."""

from __future__ import annotations

import shlex

import pytest
from pyinfra.api import deploy
from pyinfra.operations import server

from benchmarks.kvpod_sim import DEVICE, connected_node, ext4_facts, guarded_disconnect
from benchmarks.pyinfra_fake import UnknownCommand, deploy_run
from deploy.loader import load_spec
from deploy.operations.storage import mkfs_command
from deploy.plan import NodePlan, build_plan
from deploy.shipped import lab_spec
from roles.node_release import disconnect_command

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    return build_plan(load_spec(lab_spec())).nodes[0]


@pytest.mark.parametrize(
    "command",
    [
        f"wipefs -a /dev/{DEVICE}",
        f"dd if=/dev/zero of=/dev/{DEVICE} bs=1M count=1",
        "nvme conect --transport rdma --nqn nqn.x --traddr 10.78.0.1 --trsvcid 4420",
        "nvme format /dev/nvme1n1",
        f"mkfs.xfs /dev/{DEVICE}",
        f"mkfs.ext4 /dev/{DEVICE}",
        "sgdisk --zap-all /dev/nvme1n1",
        "printf '%s' 1 > /sys/kernel/config/nvmet/subsystems/x/attr_allow_any_host; rm -rf /",
    ],
)
def test_a_command_kvpod_never_issues_is_refused_with_its_text(lab: NodePlan, command: str) -> None:
    remote = connected_node(lab)
    with pytest.raises(UnknownCommand, match="kvpod never issues"):
        remote.run(command)
    assert remote.executed == [command]


def test_a_deploy_running_an_unknown_command_does_not_succeed(lab: NodePlan) -> None:
    @deploy("wipes the drive")
    def wiping() -> None:
        server.shell(name="wipe", commands=[f"wipefs -a /dev/{DEVICE}"])

    remote = connected_node(lab)
    try:
        state, host = deploy_run(wiping, remote, {"kvpod_node": lab})
    except UnknownCommand as exc:
        assert f"wipefs -a /dev/{DEVICE}" in str(exc)
    else:
        assert host in state.failed_hosts, "an unknown command must not pass as a success"
    assert remote.facts["storage.BlockSignature"][f"device=/dev/{DEVICE}"] is None


def test_the_blank_check_on_the_host_formats_only_a_blank_namespace(lab: NodePlan) -> None:
    command = mkfs_command(f"/dev/{DEVICE}", "kvcache", "c5280259-be02-5a7b-a339-2b3a0cf4e916").get_raw_value()
    blank = connected_node(lab, signature=None)
    assert blank.run(command)
    assert blank.facts["storage.Ext4Info"][f"device=/dev/{DEVICE}"]["uuid"] == "c5280259-be02-5a7b-a339-2b3a0cf4e916"

    sig, info = ext4_facts("11111111-2222-3333-4444-555555555555")
    formatted = connected_node(lab, signature=sig, ext4=info)
    assert not formatted.run(command), "the guard on the host refuses a device that is not blank"
    assert formatted.facts["storage.Ext4Info"][f"device=/dev/{DEVICE}"]["uuid"] == info["uuid"]


@pytest.mark.parametrize(
    ("use", "disconnected"),
    [
        ({}, True),
        ({"mounts": [], "holders": [], "ext4": False}, True),
        ({"mounts": ["/mnt/kvcache"], "holders": [], "ext4": True}, False),
        ({"mounts": [], "holders": [], "ext4": True}, False),  # mounted in another mount namespace
        ({"mounts": [], "holders": ["dm-0"], "ext4": False}, False),
    ],
    ids=["unknown-device", "unused", "mounted-here", "mounted-elsewhere", "held-by-dm"],
)
def test_the_disconnect_guard_on_the_host_refuses_a_namespace_in_use(lab: NodePlan, use, disconnected) -> None:
    remote = connected_node(lab, signature=None)
    nqn = lab.namespace.subsystem_nqn
    argv = disconnect_command(nqn, [DEVICE]).get_raw_value()
    assert guarded_disconnect(remote, shlex.split(argv), {DEVICE: use} if use else {}) is disconnected
    assert (nqn not in remote.facts["nvme.NvmeSubsystems"]) is disconnected
