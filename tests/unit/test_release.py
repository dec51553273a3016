"""Pure release helpers: who must let go of what, who still holds a drive the plan gives to someone else."""

from __future__ import annotations

import pytest

from deploy.loader import load_spec, load_spec_text
from deploy.plan import Plan, build_plan
from deploy.release import (
    ALL_ENGINE_UNITS,
    Conflict,
    ReleaseRequest,
    admitted_elsewhere,
    conflicts,
    fabrics_subsystems,
    holders_by_subsystem,
    namespace_device,
    pod_subsystems,
    release_requests,
    released_subsystems,
)
from deploy.shipped import lab_spec

DRIVE = "nqn.2024-01.io.kvpod.lab:target-drive0{}".format
LOCAL = "nqn.2014.08.org.nvmexpress:144d144dS6S1NS0T123456"
FOREIGN = "nqn.2020-01.com.other:array1"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(load_spec(lab_spec()))


def entry(transport: str, device: str) -> dict:
    return {
        "subsystem": "nvme-subsys1",
        "controllers": [{"name": "nvme1", "transport": transport, "traddr": "x", "trsvcid": "4420", "state": "live"}],
        "namespaces": [{"name": device, "nsid": 1, "size": 1}],
    }


def test_the_lab_plan(plan: Plan) -> None:
    assert [(n.name, n.namespace.subsystem_nqn) for n in plan.nodes] == [("node1", DRIVE(1)), ("node2", DRIVE(2))]
    assert pod_subsystems(plan) == {DRIVE(1), DRIVE(2), DRIVE(3)}


def test_nodes_on_their_planned_drives_release_nothing(plan: Plan) -> None:
    live = {"node1": {DRIVE(1)}, "node2": {DRIVE(2)}}
    assert release_requests(plan, live) == {}
    assert conflicts(plan, live) == []


def test_a_node_holding_another_drive_releases_it_and_keeps_its_own(plan: Plan) -> None:
    live = {"node1": {DRIVE(1), DRIVE(3)}, "node2": set()}
    assert release_requests(plan, live) == {
        "node1": ReleaseRequest(
            DRIVE(1),
            "/mnt/kvcache",
            "kvpod-vllm.service",
            subsystems=pod_subsystems(plan),
            engine_units=("kvpod-vllm@0.service", "kvpod-vllm@1.service"),
        )
    }


def test_a_swap_in_progress(plan: Plan) -> None:
    """The spec now says node1 <-> node2 were swapped: each still holds the other's drive."""
    live = {"node1": {DRIVE(2)}, "node2": {DRIVE(1)}}
    requests = release_requests(plan, live)
    assert {name: r.keep_subsystem for name, r in requests.items()} == {"node1": DRIVE(1), "node2": DRIVE(2)}
    assert conflicts(plan, live) == [
        Conflict(DRIVE(1), "node1", frozenset({"node2"})),
        Conflict(DRIVE(2), "node2", frozenset({"node1"})),
    ]


def test_subsystems_outside_the_pod_are_none_of_its_business(plan: Plan) -> None:
    live = {"node1": {DRIVE(1), LOCAL, FOREIGN}, "node2": {DRIVE(2)}}
    assert release_requests(plan, live) == {}
    assert conflicts(plan, live) == []


def test_a_drive_of_an_enclosure_that_left_the_spec_is_released(plan: Plan) -> None:
    """The applied plan had a second enclosure, node1 on its drive; the spec went back to one enclosure."""
    from tests.two_enclosures import second_nqn, two_enclosures

    applied = build_plan(load_spec_text(two_enclosures(lab_spec().read_text(), node2=("target", 2))))
    live = {"node1": {second_nqn(1)}, "node2": {DRIVE(2)}}
    assert release_requests(plan, live) == {}, "without the applied plan shelf2 is foreign"
    requests = release_requests(plan, live, applied=applied)
    assert list(requests) == ["node1"] and requests["node1"].keep_subsystem == DRIVE(1)
    assert second_nqn(1) in requests["node1"].subsystems


def test_a_node_the_plan_does_not_know_keeps_nothing(plan: Plan) -> None:
    live = {"node1": {DRIVE(1)}, "node2": {DRIVE(2)}, "old3": {DRIVE(3)}, "old4": set()}
    requests = release_requests(plan, live)
    assert list(requests) == ["old3"]
    assert requests["old3"].keep_subsystem is None and not requests["old3"].purge
    assert requests["old3"].mount_path == "/mnt/kvcache"


def test_pruned_nodes_are_purged_whatever_they_hold(plan: Plan) -> None:
    live = {"node1": {DRIVE(1)}, "node2": {DRIVE(2)}, "gone": set()}
    assert release_requests(plan, live, prune=["gone"]) == {
        "gone": ReleaseRequest(
            None, "/mnt/kvcache", purge=True, subsystems=pod_subsystems(plan), engine_units=ALL_ENGINE_UNITS
        )
    }
    assert ALL_ENGINE_UNITS[0] == "kvpod-vllm@0.service" and len(ALL_ENGINE_UNITS) == 16
    with pytest.raises(ValueError, match="node2 are still in the plan"):
        release_requests(plan, live, prune=["node2"])


def test_conflicts_name_only_other_holders(plan: Plan) -> None:
    live = {"node1": {DRIVE(1)}, "node2": {DRIVE(1), DRIVE(2)}, "old3": {DRIVE(1)}}
    assert conflicts(plan, live) == [Conflict(DRIVE(1), "node1", frozenset({"node2", "old3"}))]
    assert holders_by_subsystem(live) == {DRIVE(1): {"node1", "node2", "old3"}, DRIVE(2): {"node2"}}


def test_released_subsystems_never_include_a_local_drive() -> None:
    subsystems = {
        DRIVE(1): entry("rdma", "nvme1n1"),
        DRIVE(2): entry("tcp", "nvme2n1"),
        LOCAL: entry("pcie", "nvme0n1"),
    }
    assert fabrics_subsystems(subsystems) == {DRIVE(1), DRIVE(2)}
    assert released_subsystems(ReleaseRequest(DRIVE(1), "/mnt/kvcache"), subsystems) == {DRIVE(2): ["nvme2n1"]}
    assert released_subsystems(ReleaseRequest(None, "/mnt/kvcache"), subsystems) == {
        DRIVE(1): ["nvme1n1"],
        DRIVE(2): ["nvme2n1"],
    }
    only = ReleaseRequest(None, "/mnt/kvcache", subsystems=frozenset({DRIVE(2), LOCAL}))
    assert released_subsystems(only, subsystems) == {DRIVE(2): ["nvme2n1"]}
    no_controllers = {DRIVE(3): {"subsystem": "nvme-subsys3", "controllers": [], "namespaces": []}}
    assert released_subsystems(ReleaseRequest(None, "/mnt/kvcache"), no_controllers) == {}


def test_release_request_checks() -> None:
    assert ReleaseRequest(None, "/mnt/kvcache/").mount_path == "/mnt/kvcache"
    assert ReleaseRequest(None, "/mnt/kvcache", subsystems={DRIVE(1)}).subsystems == frozenset({DRIVE(1)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keeps nothing"):
        ReleaseRequest(DRIVE(1), "/mnt/kvcache", purge=True)
    for path in ("mnt/kvcache", "/", ""):
        with pytest.raises(ValueError, match="absolute path"):
            ReleaseRequest(None, path)


def test_namespace_device() -> None:
    assert namespace_device("nvme1n1p2") == "nvme1n1"
    assert namespace_device("nvme12n3") == "nvme12n3"
    assert namespace_device("vda1") == "vda1"


def test_admitted_elsewhere_names_nodes_admitted_to_a_drive_planned_for_another():
    plan = build_plan(load_spec(lab_spec()))
    n1, n2 = plan.nodes
    nqns = {n.name: n.host_nqn for n in plan.nodes}
    as_planned = {n1.namespace.subsystem_nqn: [n1.host_nqn], n2.namespace.subsystem_nqn: [n2.host_nqn]}
    assert admitted_elsewhere(plan, as_planned, nqns) == set()
    crossed = {n1.namespace.subsystem_nqn: [n2.host_nqn], "nqn.other:not-the-pods": [n1.host_nqn]}
    assert admitted_elsewhere(plan, crossed, nqns) == {"node2"}
    spare = next(s.nqn for t in plan.targets for s in t.subsystems if s.allowed_host_nqn is None)
    assert admitted_elsewhere(plan, {spare: [n1.host_nqn, "nqn.unknown:host"]}, nqns) == {"node1"}
