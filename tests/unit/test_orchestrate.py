"""Pure parts of the orchestration: restart batches, the handover refusal rules, the journal."""

from __future__ import annotations

import pytest

from deploy.errors import KvpodError
from deploy.loader import load_spec, load_spec_text
from deploy.orchestrate import (
    Handover,
    UpOptions,
    _moved_from,
    batch_size,
    check_handover,
)
from deploy.plan import build_plan
from deploy.reassignment import parse_drive, plan_reassignment
from deploy.spec_edit import set_node_namespaces
from deploy.statedir import load_applied_plan, read_journal, save_applied_plan, write_journal
from tests.conftest import LAB, REFERENCE


@pytest.mark.parametrize(
    ("spec", "count", "size"), [("1", 24, 1), ("4", 24, 4), ("25%", 24, 6), ("10%", 3, 1), ("100%", 5, 5)]
)
def test_batch_size(spec, count, size):
    assert batch_size(spec, count) == size


@pytest.mark.parametrize("spec", ["0", "-1", "abc", "0%", "150%"])
def test_bad_batch_is_refused(spec):
    with pytest.raises(KvpodError, match="--batch"):
        batch_size(spec, 10)


def handover(**kw) -> Handover:
    base = {"releases": {}, "live": {}, "removed": [], "unreachable_holders": []}
    return Handover(**(base | kw))


def test_removed_node_holding_a_drive_needs_prune():
    plan = build_plan(load_spec(LAB))
    h = handover(live={"node3": {"nqn.x"}}, removed=["node3"])
    with pytest.raises(KvpodError, match="--prune"):
        check_handover(plan, h, UpOptions())
    check_handover(plan, h, UpOptions(prune=True))


def test_unreachable_old_holder_needs_force():
    plan = build_plan(load_spec(LAB))
    h = handover(unreachable_holders=["node1"])
    with pytest.raises(KvpodError, match="--force-unreachable"):
        check_handover(plan, h, UpOptions())
    check_handover(plan, h, UpOptions(force_unreachable=True))


def test_moved_from_names_the_old_holders():
    text = LAB.read_text()
    old = build_plan(load_spec_text(text))
    r = plan_reassignment(load_spec_text(text), parse_drive("target/1"), "node2", swap=True)
    new = build_plan(load_spec_text(set_node_namespaces(text, r.assignments)))
    assert _moved_from(old, new) == {"node1", "node2"}
    assert _moved_from(old, old) == set()
    assert _moved_from(None, new) == set()


def test_journal_and_applied_plan_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path))
    assert read_journal("p") is None
    write_journal("p", {"request": {"drive": "t/1"}, "last_step": "spec"})
    assert read_journal("p")["last_step"] == "spec"
    write_journal("p", None)
    assert read_journal("p") is None
    plan = build_plan(load_spec(REFERENCE))
    save_applied_plan(plan)
    assert load_applied_plan(plan.pod) == plan
