"""A first bring-up of a blank node: the host it leaves behind (a golden of the simulated node's final state), the
remote commands it costs, and a second deploy on it that reads once and changes nothing."""

from __future__ import annotations

import json

import pytest

from benchmarks.fleet_spec import fleet_spec
from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import FakeRemote, deploy_run
from benchmarks.simhost import answer
from deploy.engine import RunStats
from deploy.facts.snapshot import parse_snapshot, snapshot_script
from deploy.loader import load_spec, load_spec_text
from deploy.plan import NodePlan, build_plan
from deploy.shipped import lab_spec
from roles.node import node
from roles.node import reads as node_reads
from tests.golden import assert_golden

# remote commands per node of a first bring-up of a blank node, counted as ``benchmarks/round_trips.py first``
# counts them (changes, uploads, live reads, the deploy's snapshot read and ``kvpod up``'s state read before the
# phases); here the lab's wheelhouse is empty, as in every role test (its wheels travel in the node's one bundle,
# so they add no command). At most 40 on the lab spec is the engine's target.
FIRST_BRING_UP_COMMANDS = {"lab": 40, "fleet": 35}


def _plan(pod: str) -> NodePlan:
    spec = load_spec(lab_spec()) if pod == "lab" else load_spec_text(fleet_spec(4), "fleet")
    return build_plan(spec).nodes[0]


def _state(remote: FakeRemote) -> str:
    """Everything the simulated host holds after the deploy (not the commands that got it there)."""
    state = {
        "facts": remote.facts,
        "files": remote.files,
        "dirs": remote.dirs,
        "users": remote.users,
        "groups": sorted(remote.groups),
        "packages": remote.packages,
        "units": remote.units,
        "sysctls": remote.sysctls,
        "mounts": remote.mounts,
        "venvs": remote.venvs,
    }
    return json.dumps(state, indent=1, sort_keys=True, default=repr) + "\n"


def _deploy(remote: FakeRemote, plan: NodePlan) -> RunStats:
    """The node deploy as a real run makes it: its snapshot is what the one-command read parses from the host."""
    remote._fact_snapshot_HostSnapshot = lambda reads: parse_snapshot(answer(remote, snapshot_script(list(reads))))
    stats = RunStats()
    state, host = deploy_run(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    assert host not in state.failed_hosts
    return stats


@pytest.mark.parametrize("pod", ["lab", "fleet"])
def test_a_blank_node_ends_as_before_within_its_commands_and_then_is_converged(pod: str) -> None:
    plan = _plan(pod)
    remote = fresh_node(plan)
    remote.packages["python3-venv"] = ["3.11"]  # as the lab's image has it
    first = _deploy(remote, plan)
    assert_golden(f"first-bring-up-{pod}-node.json", _state(remote))
    (name,) = first.commands
    commands = first.commands[name] + len(first.live_reads.get(name, [])) + 2
    assert commands <= FIRST_BRING_UP_COMMANDS[pod], commands
    live = "\n".join(first.live_reads[name])
    for served in ("Sysctl", "Which", "wheelhouse", "VenvPackages"):  # read before, or spared by, what changes them
        assert served not in live, served
    executed = len(remote.executed)
    second = _deploy(remote, plan)
    assert second.commands[name] == 0 and not second.live_reads.get(name)  # its snapshot read alone
    assert len(remote.executed) == executed
