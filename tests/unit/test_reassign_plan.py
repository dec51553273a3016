"""Reassignment as a pure computation, and the minimal spec edit that records it."""

from __future__ import annotations

import pytest

from deploy.assignment import DriveRef
from deploy.errors import InputError
from deploy.loader import load_spec_text
from deploy.plan import build_plan
from deploy.reassignment import parse_drive, plan_reassignment
from deploy.spec_edit import set_node_namespaces
from tests.conftest import LAB, REFERENCE


def holders(text: str) -> dict[str, str]:
    plan = build_plan(load_spec_text(text))
    return {n.name: f"{n.namespace.enclosure}/{n.namespace.drive}" for n in plan.nodes}


def test_move_onto_spare_releases_old_drive():
    text = LAB.read_text()
    r = plan_reassignment(load_spec_text(text), DriveRef("target", 3), "node1", swap=False)
    assert r.old_holder is None and r.released == DriveRef("target", 1)
    edited = set_node_namespaces(text, r.assignments)
    assert holders(edited) == {"node1": "target/3", "node2": "target/2"}
    spares = [s.drive for s in build_plan(load_spec_text(edited)).targets[0].subsystems if s.node is None]
    assert spares == [1]


def test_swap_exchanges_drives():
    text = LAB.read_text()
    r = plan_reassignment(load_spec_text(text), DriveRef("target", 1), "node2", swap=True)
    assert r.old_holder == "node1"
    assert holders(set_node_namespaces(text, r.assignments)) == {"node1": "target/2", "node2": "target/1"}
    assert [(str(d), a, b) for d, a, b in r.moves] == [("target/1", "node1", "node2"), ("target/2", "node2", "node1")]


def test_taking_a_held_drive_without_swap_is_refused():
    with pytest.raises(InputError, match=r"held by node1.*--swap"):
        plan_reassignment(load_spec_text(LAB.read_text()), DriveRef("target", 1), "node2", swap=False)


def test_unknown_node_or_drive_is_refused():
    spec = load_spec_text(LAB.read_text())
    with pytest.raises(InputError, match="no such node"):
        plan_reassignment(spec, DriveRef("target", 3), "node9", swap=False)
    with pytest.raises(InputError, match="no such drive"):
        plan_reassignment(spec, DriveRef("target", 9), "node1", swap=False)
    with pytest.raises(InputError, match="ENCLOSURE/SLOT"):
        parse_drive("target-3")


def test_edit_keeps_comments_and_everything_else():
    text = LAB.read_text()
    edited = set_node_namespaces(text, {"node2": ("target", 3)})
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == [
        line for line in edited.splitlines() if line.lstrip().startswith("#")
    ]
    removed = set(text.splitlines()) - set(edited.splitlines())
    assert removed == set()
    assert "      namespace: {enclosure: target, drive: 3}" in edited


def test_edit_of_explicit_node_list(tmp_path):
    text = (REFERENCE.parent.parent.parent / "examples" / "single-node" / "pod.yaml").read_text()
    text = text.replace(
        "      - {slot: 1, capacity_gb: 7680}",
        "      - {slot: 1, capacity_gb: 7680}\n      - {slot: 2, capacity_gb: 7680}",
    )
    edited = set_node_namespaces(text, {"gpu01": ("data24", 2)})
    assert holders(edited) == {"gpu01": "data24/2"}
