"""Which engines of a two-engine node a change makes due for the rollout (``kvpod_defer_restart``, as ``kvpod up``
runs the node phase): one engine's LMCache files or unit make that engine alone due; what the engines share (the
unit template's settings, the Hugging Face env file, the installation) makes every engine due. Nothing restarts in
the node phase itself."""

from __future__ import annotations

import pytest

from benchmarks.kvpod_sim import connected_node
from benchmarks.pyinfra_fake import FakeRemote, deploy_run
from deploy.loader import load_spec
from deploy.operations.restart import pending_units, restart_pending
from deploy.plan import NodePlan, build_plan
from deploy.secrets import Secret
from deploy.shipped import lab_spec
from roles.node import node

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    plan = build_plan(load_spec(lab_spec())).nodes[0]
    assert len(plan.engines) == 2
    return plan


def converged(plan: NodePlan) -> FakeRemote:
    remote = connected_node(plan)
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts, remote.executed[-5:]
    return remote


def due_after_deferred_run(plan: NodePlan, remote: FakeRemote) -> list[str]:
    """The units the node phase leaves due (deferred): none of the engines is restarted by it."""
    before = {u: remote.units[u].get("restarts", 0) for u in plan.engine_units()}
    state, host = deploy_run(node, remote, {"kvpod_node": plan, "kvpod_defer_restart": True})
    assert host not in state.failed_hosts, remote.executed[-5:]
    assert {u: remote.units[u].get("restarts", 0) for u in plan.engine_units()} == before
    units = pending_units(state, host)
    assert restart_pending(state, host) is bool(units)
    return units


def with_engine_lmcache(plan: NodePlan, index: int, **update) -> NodePlan:
    """``plan`` with engine ``index``'s LMCache settings changed (the other engine's untouched)."""
    engines = [
        e.model_copy(update={"lmcache": e.lmcache.model_copy(update=update)}) if e.index == index else e
        for e in plan.engines
    ]
    return plan.model_copy(update={"engines": engines})


def with_vllm(plan: NodePlan, **update) -> NodePlan:
    return plan.model_copy(update={"vllm": plan.vllm.model_copy(update=update)})


@pytest.mark.parametrize("index", [0, 1])
def test_one_engines_lmcache_env_file_makes_that_engine_alone_due(lab: NodePlan, index: int) -> None:
    remote = converged(lab)
    changed = with_engine_lmcache(lab, index, chunk_size=512)
    assert due_after_deferred_run(changed, remote) == [lab.engines[index].unit]
    assert "LMCACHE_CHUNK_SIZE=512" in remote.files[lab.engines[index].lmcache.env_file]["content"]
    other = lab.engines[1 - index].lmcache.env_file
    assert "LMCACHE_CHUNK_SIZE=512" not in remote.files[other]["content"]
    assert due_after_deferred_run(changed, remote) == [], "the files are in place: the next run finds none due"


def test_one_engines_unit_file_makes_that_engine_alone_due(lab: NodePlan) -> None:
    remote = converged(lab)
    remote.files[f"/etc/systemd/system/{lab.engines[1].unit}"]["content"] += "# edited by hand\n"
    assert due_after_deferred_run(lab, remote) == [lab.engines[1].unit]


def test_a_changed_unit_template_makes_every_engine_due(lab: NodePlan) -> None:
    """A new unit template renders every engine's unit anew: each differs from the one on the host."""
    remote = converged(lab)
    for unit in lab.engine_units():
        remote.files[f"/etc/systemd/system/{unit}"]["content"] += "# rendered by an older template\n"
    assert due_after_deferred_run(lab, remote) == lab.engine_units()


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({"max_model_len": 16384}, id="shared-vllm-setting"),
        pytest.param({"hf_env": {"HF_TOKEN": Secret("hf_other"), "HF_HUB_OFFLINE": "1"}}, id="hf-env-file"),
        pytest.param("requirements", id="installation"),
    ],
)
def test_what_the_engines_share_makes_every_engine_due(lab: NodePlan, update) -> None:
    remote = converged(lab)
    if update == "requirements":
        install = lab.vllm.install.model_copy(update={"requirements": ["vllm==0.0.1", "lmcache==0.5.6"]})
        update = {"install": install}
    assert due_after_deferred_run(with_vllm(lab, **update), remote) == lab.engine_units()


def test_unchanged_node_has_no_engine_due(lab: NodePlan) -> None:
    assert due_after_deferred_run(lab, converged(lab)) == []
