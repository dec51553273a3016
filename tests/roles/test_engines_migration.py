"""A node converged by the single-engine layout (``kvpod-vllm.service``, ``/etc/kvpod/lmcache.env``) moves to one
unit per engine with one restart, in the rollout; engines no longer planned go; a second run changes nothing."""

from __future__ import annotations

import pytest

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import FakeRemote, changed_commands, deploy_plan, deploy_run
from deploy.loader import load_spec
from deploy.operations.restart import restart_pending
from deploy.plan import NodePlan, build_plan
from deploy.shipped import lab_spec
from roles.node import node
from roles.vllm_restart import vllm_restart

OLD_UNIT = "kvpod-vllm.service"
OLD_UNIT_FILE = f"/etc/systemd/system/{OLD_UNIT}"
OLD_ENV = "/etc/kvpod/lmcache.env"
OLD_UNIT_TEXT = "[Service]\nExecStart=/opt/kvpod/vllm/bin/vllm serve m --port 8000\n"


@pytest.fixture(scope="module")
def lab() -> NodePlan:
    plan = build_plan(load_spec(lab_spec())).nodes[0]
    assert plan.engine_units() == ["kvpod-vllm@0.service", "kvpod-vllm@1.service"]
    return plan


def data(plan: NodePlan, **extra) -> dict:
    return {"kvpod_node": plan, **extra}


def strings(commands: list) -> list[str]:
    return [c for c in commands if isinstance(c, str)]


def converged(plan: NodePlan) -> FakeRemote:
    remote = fresh_node(plan)
    state, host = deploy_run(node, remote, data(plan))
    assert host not in state.failed_hosts, remote.executed[-5:]
    return remote


def single_engine_node(plan: NodePlan) -> FakeRemote:
    """A node as the single-engine layout left it: its unit running and enabled, its env file, no engine units."""
    remote = converged(plan)
    for e in plan.engines:
        remote.units.pop(e.unit)
        remote.files.pop(f"/etc/systemd/system/{e.unit}")
        remote.files.pop(e.lmcache.env_file)
    remote.upload(OLD_UNIT_TEXT, OLD_UNIT_FILE)
    remote.upload("LMCACHE_CHUNK_SIZE=256\n", OLD_ENV)
    remote.units[OLD_UNIT] = {"running": True, "enabled": True}
    return remote


def run(deploy, remote: FakeRemote, host_data: dict):
    before = len(remote.executed)
    state, host = deploy_run(deploy, remote, host_data)
    assert host not in state.failed_hosts, remote.executed[-5:]
    return remote.executed[before:], restart_pending(state, host)


def test_the_rollout_moves_a_single_engine_node_with_one_restart(lab: NodePlan) -> None:
    remote = single_engine_node(lab)
    # the node phase (restarts deferred): the engines' files and units are written and enabled, the running
    # single engine is left serving, nothing is started or stopped
    executed, pending = run(node, remote, data(lab, kvpod_defer_restart=True))
    assert pending is True
    assert not any(c.startswith(("systemctl stop", "systemctl start", "systemctl restart")) for c in executed)
    assert "systemctl enable kvpod-vllm@0.service kvpod-vllm@1.service" in executed  # both, one command
    assert remote.units[OLD_UNIT]["running"] and OLD_UNIT_FILE in remote.files and OLD_ENV in remote.files
    assert not any(remote.units[u].get("running") for u in lab.engine_units())

    # the rollout: the single engine stopped, disabled and removed with its env file; then each engine started
    # and waited for, once
    executed, _ = run(vllm_restart, remote, data(lab, kvpod_restart_engines=None))
    assert executed[:4] == [
        f"systemctl stop {OLD_UNIT}",
        f"systemctl disable {OLD_UNIT}",
        f"rm -f {OLD_UNIT_FILE}",
        f"rm -f {OLD_ENV}",
    ]
    assert executed[4] == "systemctl daemon-reload"
    restarts = [c.split(";")[0] for c in executed if c.startswith("systemctl restart")]
    assert restarts == ["systemctl restart -- kvpod-vllm@0.service kvpod-vllm@1.service"], "once, then waited for"
    assert all(remote.units[u]["running"] and remote.units[u]["enabled"] for u in lab.engine_units())
    assert OLD_UNIT_FILE not in remote.files and OLD_ENV not in remote.files
    assert not remote.units[OLD_UNIT]["running"] and not remote.units[OLD_UNIT]["enabled"]

    # converged: the next `up` changes nothing and restarts nothing
    assert changed_commands(deploy_plan(node, remote, data(lab, kvpod_defer_restart=True))) == []
    executed, pending = run(node, remote, data(lab, kvpod_defer_restart=True))
    assert executed == [] and pending is False


def test_without_a_rollout_the_single_engine_goes_before_the_engines_start(lab: NodePlan) -> None:
    remote = single_engine_node(lab)
    executed, pending = run(node, remote, data(lab))
    assert pending is False
    stop, start = (
        executed.index(f"systemctl stop {OLD_UNIT}"),
        executed.index("systemctl enable --now kvpod-vllm@0.service kvpod-vllm@1.service"),  # both engines, one command
    )
    assert stop < executed.index(f"rm -f {OLD_UNIT_FILE}") < start
    assert OLD_UNIT_FILE not in remote.files and OLD_ENV not in remote.files
    assert all(remote.units[u]["running"] for u in lab.engine_units())
    assert run(node, remote, data(lab))[0] == []


def test_a_stopped_single_engine_is_retired_in_the_node_phase(lab: NodePlan) -> None:
    """Nothing holds the GPUs or the port: the engines start at once, no rollout needed."""
    remote = single_engine_node(lab)
    remote.units[OLD_UNIT]["running"] = False
    executed, pending = run(node, remote, data(lab, kvpod_defer_restart=True))
    assert pending is False
    assert f"systemctl disable {OLD_UNIT}" in executed and f"systemctl stop {OLD_UNIT}" not in executed
    assert "systemctl enable --now kvpod-vllm@0.service kvpod-vllm@1.service" in executed


def test_fewer_engines_after_a_spec_edit_retire_the_extra_ones(lab: NodePlan) -> None:
    remote = converged(lab)
    one = build_plan(load_spec(lab_spec())).nodes[0]
    one = one.model_copy(update={"gpus": 4, "engines": one.engines[:1]})
    one = one.with_lmcache(max_local_cpu_size=0.25, max_local_disk_size=0.25)
    executed, pending = run(node, remote, data(one, kvpod_defer_restart=True))
    assert pending is True, "engine 1 still runs: the rollout retires it"
    assert "systemctl stop kvpod-vllm@1.service" not in executed
    executed, _ = run(vllm_restart, remote, data(one, kvpod_restart_engines=None))
    assert executed[:4] == [
        "systemctl stop kvpod-vllm@1.service",
        "systemctl disable kvpod-vllm@1.service",
        "rm -f /etc/systemd/system/kvpod-vllm@1.service",
        "rm -f /etc/kvpod/lmcache@1.env",
    ]
    restarts = [c.split(";")[0] for c in executed if c.startswith("systemctl restart")]
    assert restarts == ["systemctl restart -- kvpod-vllm@0.service"]
    assert not remote.units["kvpod-vllm@1.service"]["running"]
    assert changed_commands(deploy_plan(node, remote, data(one, kvpod_defer_restart=True))) == []


def test_a_plan_applied_by_the_single_engine_layout_still_reads(lab: NodePlan, tmp_path, monkeypatch) -> None:
    """The state directory of a pod converged before engines holds a plan of the old shape: it loads, its one
    engine named by the unit it ran as."""
    import json

    from deploy.plan import Plan
    from deploy.statedir import applied_plan_path, load_applied_plan

    monkeypatch.setenv("KVPOD_STATE_DIR", str(tmp_path))
    plan = build_plan(load_spec(lab_spec()))
    data = json.loads(plan.to_json())
    for n in data["nodes"]:  # as an earlier kvpod dumped it
        engine = n.pop("engines")[0]
        n["lmcache"] = {
            **engine["lmcache"],
            "env_file": "/etc/kvpod/lmcache.env",
            "local_disk": "file:///mnt/kvcache/lmcache/",
        }
        n["vllm"].update(unit=OLD_UNIT, health_url="http://127.0.0.1:8000/health")
    path = applied_plan_path(plan.pod)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    applied = load_applied_plan(plan.pod)
    assert isinstance(applied, Plan) and [n.name for n in applied.nodes] == [n.name for n in plan.nodes]
    (engine,) = applied.nodes[0].engines
    assert (engine.unit, engine.port, engine.disk_dir) == (OLD_UNIT, 8000, "/mnt/kvcache/lmcache")
    assert applied.nodes[0].namespace == plan.nodes[0].namespace
    path.write_text(plan.to_json())
    # (compared as written: a secret, the lab's token, is kept in the file as its display only)
    assert load_applied_plan(plan.pod).to_json() == plan.to_json(), "a current plan reads as it was written"
