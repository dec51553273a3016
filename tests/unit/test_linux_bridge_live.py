"""The linux-bridge driver for real, through pyinfra's @local connector, in a scratch network namespace.

Needs root and ``ip netns``. The namespace holds only a bridge and veth pairs with no addresses, so
nothing is sent anywhere; it is deleted afterwards whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from deploy.plan import SwitchPlan, SwitchPortPlan, SwitchVlanPlan
from deploy.switches import HOST_DATA_KEY, driver_for

NETNS = f"kvpod-swtest-{os.getpid()}"
BRIDGE = "kvswt0"
MTU = 9216
PORTS = {"kvswt-a": True, "kvswt-b": True, "kvswt-c": False}  # port → tagged

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("bridge") is None,
    reason="needs root and iproute2 (ip, bridge) to create a scratch network namespace",
)


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True)


def links() -> dict[str, dict]:
    return {e["ifname"]: e for e in json.loads(sh("ip", "-n", NETNS, "-j", "-d", "link", "show").stdout)}


def switch_plan() -> SwitchPlan:
    return SwitchPlan(
        name="swtest",
        kind="linux-bridge",
        ssh=None,
        mtu=MTU,
        bridge=BRIDGE,
        netns=NETNS,
        roce_qos=False,
        routed=False,
        vlans=[SwitchVlanPlan(id=100, name="swtest-storage", svi_address=None, prefix_length=24)],
        ports=[
            SwitchPortPlan(port=p, description=p, access_vlan=100, tagged=t, mtu=MTU, peer=f"node:{p}")
            for p, t in PORTS.items()
        ],
    )


@pytest.fixture(params=["bridge-exists", "bridge-missing"])
def scratch_netns(request):
    """A namespace with veth pairs (both ends inside, no addresses), and the bridge unless the param says not."""
    if NETNS in sh("ip", "netns", "list").stdout.split():
        sh("ip", "netns", "del", NETNS)
    sh("ip", "netns", "add", NETNS)
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", NETNS], check=False))
    for port in PORTS:
        sh("ip", "-n", NETNS, "link", "add", port, "type", "veth", "peer", "name", f"{port}p")
    if request.param == "bridge-exists":
        sh("ip", "-n", NETNS, "link", "add", BRIDGE, "type", "bridge")
    return request.param


def run_deploy(plan: SwitchPlan) -> tuple[int, bool]:
    """One kvpod switch deploy on @local: (operations that changed something, success)."""
    inventory = Inventory(([("@local", {HOST_DATA_KEY: plan})], {}))
    state = State(inventory, Config())
    connect_all(state)
    add_deploy(state, driver_for(plan.kind).deploy)
    run_ops(state)
    host = inventory.get_host("@local")
    return state.get_meta_for_host(host).ops_change, not state.failed_hosts


def test_deploy_converges_then_changes_nothing(scratch_netns):
    plan = switch_plan()
    changed, ok = run_deploy(plan)
    assert ok and changed == 1

    state = links()
    assert state[BRIDGE]["mtu"] == MTU and "UP" in state[BRIDGE]["flags"]
    for port in PORTS:
        assert state[port]["master"] == BRIDGE
        assert state[port]["mtu"] == MTU
        assert "UP" in state[port]["flags"]
        assert state[f"{port}p"].get("master") is None  # the far ends stay out of the bridge

    filtering = (
        subprocess.run(
            ["ip", "netns", "exec", NETNS, "test", "-e", f"/sys/class/net/{BRIDGE}/bridge/vlan_filtering"], check=False
        ).returncode
        == 0
    )
    if filtering and state[BRIDGE]["linkinfo"]["info_data"].get("vlan_filtering"):
        vlans = {e["ifname"]: e["vlans"] for e in json.loads(sh("bridge", "-n", NETNS, "-j", "vlan", "show").stdout)}
        for port, tagged in PORTS.items():
            assert [v["vlan"] for v in vlans[port]] == [100]
            assert set(vlans[port][0].get("flags", [])) == (set() if tagged else {"PVID", "Egress Untagged"})

    changed, ok = run_deploy(plan)
    assert ok and changed == 0
