"""``vllm.install``: the spec rules, the plan, and the role against a simulated node (wheels pushed once,
pip only when a pin is missing, the unit runs the environment's vllm, a converged node reads nothing more)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.kvpod_sim import fresh_node
from benchmarks.pyinfra_fake import changed_commands, deploy_plan, deploy_run
from deploy.cli.run import check_selection
from deploy.compat import default_pair
from deploy.engine import RunStats
from deploy.errors import InputError, SpecError
from deploy.loader import load_spec_text
from deploy.plan import build_plan
from deploy.shipped import lab_spec
from deploy.validate import wheelhouse_problems
from roles.node import node
from roles.node import reads as node_reads

VENV = "/opt/kvpod/vllm"
VLLM = default_pair()[0]  # a pair the compatibility table proves; a broken one is refused


def wheelhouse(tmp_path: Path, names=(f"vllm-{VLLM}-py3-none-any.whl", "lmcache-0.5.6-py3-none-any.whl")) -> Path:
    d = tmp_path / "wheels"
    d.mkdir(exist_ok=True)
    for name in names:
        (d / name).write_text(f"wheel {name}\n")
    return d


def spec_with(install: dict | None, **vllm) -> str:
    data = yaml.safe_load(lab_spec().read_text())
    data["vllm"].pop("executable", None)
    data["vllm"].update(vllm)
    if install is not None:
        data["vllm"]["install"] = install
    return yaml.safe_dump(data)


def test_plan_runs_the_environments_vllm_with_pinned_requirements(tmp_path: Path) -> None:
    wh = wheelhouse(tmp_path)
    plan = build_plan(load_spec_text(spec_with({"vllm_version": VLLM, "wheelhouse": str(wh)})))
    n = plan.nodes[0]
    assert n.vllm.executable == f"{VENV}/bin/vllm"
    assert n.vllm.install.requirements == [f"vllm=={VLLM}", "lmcache==0.5.6"]


@pytest.mark.parametrize(
    "install,vllm,path,message",
    [
        ({"vllm_version": VLLM}, {"executable": "/usr/bin/vllm"}, "vllm.executable", "remove one of them"),
        ({"vllm_version": "latest"}, {}, "vllm.install.vllm_version", "not a version to pin"),
        ({"vllm_version": VLLM, "venv": "relative/venv"}, {}, "vllm.install.venv", "absolute path"),
    ],
)
def test_install_rules(install: dict, vllm: dict, path: str, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec_text(spec_with(install, **vllm))
    assert any(p.path == path and message in p.message for p in exc.value.problems), exc.value.problems


def test_wheelhouse_is_checked_on_this_machine_before_up(tmp_path: Path) -> None:
    assert wheelhouse_problems(None) == []
    assert "not a directory here" in wheelhouse_problems(str(tmp_path / "none"))[0]
    only_vllm = wheelhouse(tmp_path, (f"vllm-{VLLM}-py3-none-any.whl",))
    assert "no wheel of lmcache" in wheelhouse_problems(str(only_vllm))[0]
    assert wheelhouse_problems(str(wheelhouse(tmp_path))) == []
    spec = load_spec_text(spec_with({"vllm_version": VLLM, "wheelhouse": str(tmp_path / "none")}))  # validates
    with pytest.raises(InputError, match="not a directory here"):
        check_selection(build_plan(spec), [])


def test_role_pushes_wheels_installs_once_and_then_reads_nothing_more(tmp_path: Path) -> None:
    wh = wheelhouse(tmp_path)
    plan = build_plan(load_spec_text(spec_with({"vllm_version": VLLM, "wheelhouse": str(wh)}))).nodes[0]
    remote = fresh_node(plan)
    state, host = deploy_run(node, remote, {"kvpod_node": plan})
    assert host not in state.failed_hosts, remote.executed[-3:]
    pips = [c for c in remote.executed if " -m pip install " in c]
    assert pips == [
        f"{VENV}/bin/python -m pip install --no-input --disable-pip-version-check --no-index "
        f"--find-links /var/cache/kvpod/wheelhouse vllm=={VLLM} lmcache==0.5.6"
    ]
    assert any(c == f"/usr/bin/python3 -m venv {VENV}" for c in remote.executed)
    assert sorted(p for p in remote.uploads if p.endswith(".whl")) == [
        "/var/cache/kvpod/wheelhouse/lmcache-0.5.6-py3-none-any.whl",
        f"/var/cache/kvpod/wheelhouse/vllm-{VLLM}-py3-none-any.whl",
    ]
    unit = remote.files["/etc/systemd/system/kvpod-vllm@0.service"]["content"]
    assert f"ExecStart={VENV}/bin/vllm serve" in unit

    assert remote.venvs[VENV] == {"python": True, "packages": {"vllm": VLLM, "lmcache": "0.5.6"}}
    stats = RunStats()
    planned = deploy_plan(node, remote, {"kvpod_node": plan}, reads=node_reads(plan), stats=stats)
    assert changed_commands(planned) == []
    assert stats.live_reads == {}


def test_a_moved_pin_reinstalls_and_restarts_vllm(tmp_path: Path) -> None:
    wh = wheelhouse(tmp_path)
    plan = build_plan(load_spec_text(spec_with({"vllm_version": VLLM, "wheelhouse": str(wh)}))).nodes[0]
    remote = fresh_node(plan)
    deploy_run(node, remote, {"kvpod_node": plan})
    remote.venvs[VENV]["packages"]["vllm"] = "0.10.2"  # someone installed another release by hand
    remote.executed.clear()
    deploy_run(node, remote, {"kvpod_node": plan})
    assert any(" -m pip install " in c for c in remote.executed)
    assert {"systemctl restart kvpod-vllm@0.service", "systemctl restart kvpod-vllm@1.service"} <= set(remote.executed)
