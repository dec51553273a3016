"""A switch or enclosure kind is one package: adding one (here in a scratch directory) adds the kind everywhere.

The scratch packages are written under ``tmp_path`` and made visible by extending ``deploy.switches.__path__``
and ``deploy.targets.__path__`` before the spec loads, in a fresh interpreter (the spec takes its kinds when
it loads); nothing else is touched. The spec validates them (their own fields and rules), the plan carries
them, the schema lists them, and ``driver_for(kind)`` is their driver: its deploy is what the engine runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from tests.conftest import ROOT

SWITCH_SPEC = '''
from typing import Literal
from pydantic import Field
from deploy.errors import Problem
from deploy.spec_kinds import Switch

class ScratchSwitch(Switch):
    """A switch of a kind added by one package."""
    kind: Literal["scratch-switch"] = Field(description="scratch-switch: a kind of one package")
    profile: str = Field("plain", description="scratch-switch only: a profile name")

    def problems(self, path, spec):
        return [Problem(f"{path}.profile", "'broken' is not a profile (use plain)")] if self.profile == "broken" else []

MODEL = ScratchSwitch
'''
SWITCH_DRIVER = """
from deploy.switches import SwitchDriver

DEPLOYED = []

class ScratchSwitchDriver(SwitchDriver):
    kind = "scratch-switch"

    def render(self, plan, pod):
        return f"scratch {plan.name} mtu {plan.mtu} ports {len(plan.ports)}\\n"

    def deploy(self):
        DEPLOYED.append("switch")

DRIVER = ScratchSwitchDriver()
"""
TARGET_SPEC = '''
from typing import Literal
from pydantic import Field
from deploy.errors import Problem
from deploy.spec_kinds import Enclosure

class ScratchTarget(Enclosure):
    """An enclosure of a kind added by one package."""
    kind: Literal["scratch-target"] = Field(description="scratch-target: a kind of one package")
    shelf: int = Field(1, ge=1, description="scratch-target only: a shelf number")

    def problems(self, path, spec):
        return [Problem(f"{path}.shelf", "shelf 13 is missing (use another)")] if self.shelf == 13 else []

MODEL = ScratchTarget
'''
TARGET_DRIVER = """
from deploy.targets import TargetDriver

DEPLOYED = []

class ScratchTargetDriver(TargetDriver):
    kind = "scratch-target"
    managed = True

    def deploy(self):
        DEPLOYED.append("target")

DRIVER = ScratchTargetDriver()
"""
# Runs in a fresh interpreter: extend the family packages, then load the spec and drive the scratch kinds.
SCRIPT = """
import copy, json, sys
import yaml
import deploy.switches, deploy.targets
deploy.switches.__path__.append(sys.argv[1])
deploy.targets.__path__.append(sys.argv[2])
from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.plan import build_plan
from deploy.schema import pod_schema
from deploy.switches import driver_for as switch_driver, render_switch_configs
from deploy.targets import driver_for as target_driver, managed_groups

data = yaml.safe_load(open(sys.argv[3]))
data["switches"][0] = {"name": data["switches"][0]["name"], "kind": "scratch-switch", "profile": "fast"}
data["enclosures"][0]["kind"] = "scratch-target"
data["enclosures"][0]["shelf"] = 2
out = {}
plan = build_plan(spec_from_dict(data))
out["plan"] = [plan.switches[0].kind, plan.targets[0].kind]
out["render"] = render_switch_configs(plan)
out["managed"] = [[t.name for t in g] for g in managed_groups(plan)]
for driver in (switch_driver("scratch-switch"), target_driver("scratch-target")):
    driver.deploy()
out["deployed"] = sys.modules["deploy.switches.scratch_switch.driver"].DEPLOYED + (
    sys.modules["deploy.targets.scratch_target.driver"].DEPLOYED
)
out["schema"] = sorted(d for d in pod_schema()["definitions"] if d.startswith("Scratch"))
for edit in ({"profile": "broken"}, {"kind": "scratch-swich"}, {"profile": "plain"}):
    bad = copy.deepcopy(data)
    bad["switches"][0].update(edit)
    try:
        spec_from_dict(bad)
        out.setdefault("problems", []).append("ok")
    except SpecError as exc:
        out.setdefault("problems", []).append([str(p) for p in exc.problems])
bad = copy.deepcopy(data)
bad["enclosures"][0]["shelf"] = 13
try:
    spec_from_dict(bad)
except SpecError as exc:
    out["problems"].append([str(p) for p in exc.problems])
print(json.dumps(out))
"""


def _package(where: Path, name: str, spec: str, driver: str) -> None:
    package = where / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'"""Kind {name.replace("_", "-")}."""\n')
    (package / "spec.py").write_text(textwrap.dedent(spec))
    (package / "driver.py").write_text(textwrap.dedent(driver))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("kinds")
    _package(tmp / "switches", "scratch_switch", SWITCH_SPEC, SWITCH_DRIVER)
    _package(tmp / "targets", "scratch_target", TARGET_SPEC, TARGET_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = ROOT / "inventories" / "reference" / "pod.yaml"
    argv = [sys.executable, "-c", SCRIPT, str(tmp / "switches"), str(tmp / "targets"), str(reference)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_package_adds_a_switch_kind_and_a_target_kind_to_spec_plan_and_schema(scratch):
    assert scratch["plan"] == ["scratch-switch", "scratch-target"]
    assert scratch["schema"] == ["ScratchSwitch", "ScratchTarget"]
    ((name, text),) = scratch["render"].items()
    assert text.startswith(f"scratch {name} mtu 9216 ports ")


def test_the_driver_lookup_finds_what_the_engine_runs(scratch):
    assert scratch["managed"] == [["data24"]]  # a managed kind gets a host in the target phase
    assert scratch["deployed"] == ["switch", "target"]


def test_a_package_brings_its_own_rules_and_the_kinds_it_adds_are_named(scratch):
    profile, kind, fine, shelf = scratch["problems"]
    assert profile == ["switches[0].profile: 'broken' is not a profile (use plain)"]
    assert len(kind) == 1 and kind[0].startswith("switches[0].kind: Input should be 'cumulus-nvue'")
    assert "'scratch-switch'" in kind[0] and "(got 'scratch-swich')" in kind[0]
    assert fine == "ok"
    assert shelf == ["enclosures[0].shelf: shelf 13 is missing (use another)"]


def test_the_spec_loads_no_plan_or_host_code_while_it_scans_the_kinds():
    """The family packages import nothing above the spec at module level: scanning them pulls in no plan."""
    above = ("deploy.plan", "pyinfra", "roles")
    code = f"import sys, deploy.spec; print(sorted(m for m in sys.modules if m.startswith({above!r})))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"kind": "arista-eos"}, "switches[0].kind: Input should be 'cumulus-nvue', 'linux-bridge' or 'none'"),
        ({"kind": None}, "switches[0].kind: Input should be 'cumulus-nvue', 'linux-bridge' or 'none' (got null)"),
        ({"netns": "lab"}, "switches[0].netns: unknown key 'netns' (a field of kind linux-bridge only; valid keys:"),
        ({"netnss": "lab"}, "switches[0].netnss: unknown key 'netnss' (valid keys: bridge, kind, management"),
    ],
)
def test_a_kind_takes_only_its_own_fields_and_a_wrong_kind_names_the_valid_ones(reference_dict, edit, says):
    reference_dict["switches"][0].update(edit)
    with pytest.raises(SpecError) as caught:
        spec_from_dict(reference_dict)
    assert [str(p)[: len(says)] for p in caught.value.problems] == [says]


def test_a_missing_kind_is_a_missing_field(reference_dict):
    del reference_dict["enclosures"][0]["kind"]
    with pytest.raises(SpecError, match=r"^enclosures\[0\]\.kind: required but missing$"):
        spec_from_dict(reference_dict)
