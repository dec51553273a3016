"""A converged host needs no live read, role by role: each role's ``reads`` (derived from its steps) covers every
fact its operations and its choices read, so the runner's one-command snapshot serves them all. A step added
to a role whose read is not declared with it fails here; so does a role with a deploy that no case covers."""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

import roles
from benchmarks.kvpod_sim import _link, fresh_node
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.bench import BenchJob, lmcache_dir
from deploy.drill import DrillJob
from deploy.drill_run import DrillStep
from deploy.engine import RunStats
from deploy.loader import load_spec, load_spec_text
from deploy.plan import NodePlan, TargetPlan, build_plan
from deploy.release import ReleaseRequest
from deploy.shipped import lab_spec, reference_spec
from roles import (
    fabric_network,
    kv_bench,
    kv_drill,
    kv_mount,
    lmcache,
    node_release,
    nvme_initiator,
    nvmet_target,
    vllm,
    vllm_install,
    vllm_restart,
)
from roles.node import node
from tests.conftest import ROOT
from tests.roles.test_kv_bench import remote as bench_remote
from tests.roles.test_node_release import releasable
from tests.roles.test_nvmet_target import deployed, fresh_target
from tests.two_enclosures import two_enclosures

NODE_ROLES = [fabric_network, nvme_initiator, kv_mount, lmcache, vllm_install, vllm]


def _yaml_config(plan: NodePlan) -> NodePlan:
    engines = [
        e.model_copy(
            update={
                "lmcache": e.lmcache.model_copy(
                    update={"config_mode": "yaml", "config_file": f"/etc/kvpod/lmcache@{e.index}.yaml"}
                )
            }
        )
        for e in plan.engines
    ]
    return plan.model_copy(update={"engines": engines})


def _weights_cache(plan: NodePlan) -> NodePlan:
    return plan.model_copy(update={"vllm": plan.vllm.model_copy(update={"weights_cache_dir": "/var/lib/vllm/hf"})})


LAB = build_plan(load_spec(lab_spec())).nodes[0]
REFERENCE = build_plan(load_spec(reference_spec())).nodes[0]
ROUTED = build_plan(load_spec(ROOT / "examples" / "per-node-vlan" / "pod.yaml")).nodes[1]

# (case, plan, a netplan host): soft-RoCE with Hugging Face settings and an install; hardware RoCE with DCB and
# no install; routes through a gateway; netplan; LMCache's YAML mode and a weights cache
NODES: list[tuple[str, NodePlan, bool]] = [
    ("lab", LAB, False),
    ("reference", REFERENCE, False),
    ("routed", ROUTED, False),
    ("netplan", LAB, True),
    ("yaml-and-cache", _weights_cache(_yaml_config(REFERENCE)), False),
]


def converged(plan: NodePlan, netplan: bool = False) -> FakeRemote:
    remote = fresh_node(plan, netplan=netplan)
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts, remote.executed[-3:]
    assert changed_commands(deploy_plan(node, remote, {"kvpod_node": plan})) == []
    return remote


def served(deploy: Callable, remote: FakeRemote, data: dict, reads: list) -> tuple[list, RunStats]:
    """Prepare ``deploy`` as a dry run served from a snapshot of ``reads``: (its commands, the run's stats)."""
    stats = RunStats()
    commands = changed_commands(deploy_plan(deploy, remote, data, reads=reads, stats=stats))
    return commands, stats


@pytest.fixture(scope="module", params=NODES, ids=[case for case, _, _ in NODES])
def node_case(request) -> tuple[NodePlan, FakeRemote]:
    _, plan, netplan = request.param
    return plan, converged(plan, netplan)


@pytest.mark.parametrize("role", NODE_ROLES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_a_converged_node_role_reads_only_its_snapshot(role, node_case) -> None:
    plan, remote = node_case
    deploy = getattr(role, role.__name__.rsplit(".", 1)[-1])
    commands, stats = served(deploy, remote, {"kvpod_node": plan}, role.reads(plan))
    assert commands == []
    assert stats.live_reads == {}, f"read live, not declared with a step: {stats.live_reads}"


def test_a_role_without_its_read_would_read_live() -> None:
    """The check above can fail: the node's snapshot without one of its reads leaves that read live."""
    remote = converged(LAB)
    reads = [r for r in vllm.reads(LAB) if "PasswdEntry" not in str(r)]
    _, stats = served(vllm.vllm, remote, {"kvpod_node": LAB}, reads)
    assert any("PasswdEntry" in key for key in stats.live_reads["@fake/node1"])


def test_a_released_node_reads_only_its_snapshot() -> None:
    """After a purge, releasing again (nothing connected, nothing installed) is served from the snapshot."""
    remote = releasable(converged(LAB))
    request = ReleaseRequest(None, LAB.mount.path, purge=True, engine_units=tuple(LAB.engine_units()))
    state, host = deploy_run(node_release.node_release, remote, {"kvpod_release": request})
    assert host not in state.failed_hosts, remote.executed[-3:]
    commands, stats = served(node_release.node_release, remote, {"kvpod_release": request}, node_release.reads(request))
    assert commands == []
    assert stats.live_reads == {}


def test_a_restart_reads_only_its_snapshot() -> None:
    remote = converged(LAB)
    commands, stats = served(vllm_restart.vllm_restart, remote, {"kvpod_node": LAB}, vllm_restart.reads(LAB))
    assert len(commands) == 1 and str(commands[0]).startswith("systemctl restart -- kvpod-vllm@0.service")
    assert stats.live_reads == {}


def test_a_bench_and_a_drill_read_only_their_snapshot() -> None:
    job = BenchJob(LAB.mount.path, 64 * 2**20, 3)
    data = {"kvpod_node": LAB, "kvpod_bench": job}
    commands, stats = served(kv_bench.kv_bench, bench_remote(), data, kv_bench.reads(LAB, job))
    assert len(commands) == 1 and stats.live_reads == {}
    drill = DrillJob(LAB.mount.path, LAB.namespace.subsystem_nqn, ("10.0.0.1",), (), 30, size_bytes=64 * 2**20)
    step = DrillStep("fio started", "true", 30, drill)
    space = {"mounted": True, "avail_bytes": 1_900_000_000, "lmcache_bytes": 0, "bench_bytes": 0}
    args = f"bench_dir={drill.directory}, lmcache_dir={lmcache_dir(LAB)}, path={drill.mount}"
    remote = FakeRemote(facts={"bench.KvcacheSpace": {args: space}, "server.Which": {"command=fio": "/usr/bin/fio"}})
    data = {"kvpod_node": LAB, "kvpod_drill": step}
    commands, stats = served(kv_drill.kv_drill_start, remote, data, kv_drill.reads(LAB, step))
    assert commands == ["sh -c true"] and stats.live_reads == {}


# -- the Linux nvmet target ---------------------------------------------------------------------------------------

LAB_PLAN = build_plan(load_spec(lab_spec()))
TWO_TARGETS = build_plan(load_spec_text(two_enclosures(lab_spec().read_text()))).targets
ROUTES = ["10.79.0.0/24"]


def _hardware_tcp_routed() -> list[TargetPlan]:
    """The lab's enclosure on block devices, a hardware RDMA portal offering TCP too, a soft-RoCE portal on a
    second NIC, routes through a gateway."""
    target = LAB_PLAN.targets[0]
    first, second = target.portals
    portals = [
        first.model_copy(update={"rdma": "hardware", "transports": ["rdma", "tcp"]}),
        second.model_copy(update={"interface": "eth2", "vlan_interface": "eth2.100", "address": "10.78.0.9"}),
    ]
    update = {"file_backed": False, "gateway": "10.78.0.1", "routes": ROUTES, "portals": portals}
    return [target.model_copy(update=update)]


TARGETS: dict[str, list[TargetPlan]] = {
    "lab": LAB_PLAN.targets,
    "two-enclosures": TWO_TARGETS,
    "hardware-tcp-routed": _hardware_tcp_routed(),
}


def converged_target(targets: list[TargetPlan]) -> FakeRemote:
    """A simulated Linux target after the role's first run (its routes in place: the fake keeps none)."""
    remote = fresh_target()
    remote.facts["network.IpLinks"].update({p.interface: _link(1500, False) for t in targets for p in t.portals})
    plan = LAB_PLAN.model_copy(update={"targets": targets})
    deployed(plan, remote)
    routed = next((t for t in targets if t.gateway and t.routes), None)
    if routed:
        vlans = {p.vlan_interface for t in targets for p in t.portals}
        remote.facts["network.IpRoutes"] = [
            {"dst": dst, "gateway": routed.gateway, "dev": dev} for dev in sorted(vlans) for dst in routed.routes
        ]
    assert changed_commands(deploy_plan(nvmet_target.nvmet_target, remote, {"kvpod_targets": targets})) == []
    return remote


@pytest.fixture(scope="module", params=list(TARGETS))
def target_case(request) -> tuple[list[TargetPlan], FakeRemote]:
    targets = TARGETS[request.param]
    return targets, converged_target(targets)


def test_a_converged_target_reads_only_its_snapshot(target_case) -> None:
    targets, remote = target_case
    data = {"kvpod_targets": targets}
    commands, stats = served(nvmet_target.nvmet_target, remote, data, nvmet_target.reads(targets))
    assert commands == []
    assert stats.live_reads == {}, f"read live, not declared with a step: {stats.live_reads}"


@pytest.mark.parametrize(
    "dropped",
    ["NvmetConfig", "/srv/nvmet/drive1.img", "IpLinks", "kvpod-nvmet.service"],
)
def test_a_target_without_one_of_its_reads_would_read_live(dropped) -> None:
    """The check above can fail: the lab target's snapshot without a read its deploy makes leaves it live."""
    targets = LAB_PLAN.targets
    remote = converged_target(targets)
    reads = [r for r in nvmet_target.reads(targets) if dropped not in str(r)]
    assert len(reads) < len(nvmet_target.reads(targets))
    _, stats = served(nvmet_target.nvmet_target, remote, {"kvpod_targets": targets}, reads)
    live = [key for keys in stats.live_reads.values() for key in keys]
    assert any(dropped in key for key in live), live


COVERED = {
    m.__name__.rsplit(".", 1)[-1] for m in [*NODE_ROLES, node_release, vllm_restart, kv_bench, kv_drill, nvmet_target]
}


def test_every_role_is_covered() -> None:
    packages = {m.name for m in pkgutil.iter_modules([str(Path(roles.__file__).parent)]) if m.ispkg}
    assert packages == COVERED, "a role whose reads no case above checks"
