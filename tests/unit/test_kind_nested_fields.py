"""Fields of one enclosure kind inside the shared parts of an enclosure: a portal's ``interface``, a drive's
``device_path`` and a drive set's ``device_path_pattern`` are linux-nvmet's.

linux-nvmet takes them (the lab spec writes them as before, and the plan carries them); a Data24 is refused
naming the field and its kind, as the kind-only fields at the top of a switch or enclosure are; the shared
models every other kind (and a new one) builds on do not have them; the schema keeps them under linux-nvmet;
and every shipped spec plans byte for byte as the golden plans say.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.plan import build_plan
from deploy.schema import SCHEMA_FILE, pod_schema
from deploy.spec import ENCLOSURE_KINDS, Drive, DriveSet, Iom, Portal
from deploy.spec_kinds import kind_of
from tests.conftest import ROOT, SHIPPED_SPECS
from tests.golden import assert_golden

NVMET_ONLY = ("interface", "device_path", "device_path_pattern")


def _port(data: dict) -> dict:
    return data["enclosures"][0]["ioms"][0]["ports"][0]


def _give_interface(data: dict) -> list[str]:
    _port(data)["interface"] = "eth7"
    return ["enclosures[0].ioms[0].ports[0].interface"]


def _give_device_path(data: dict) -> list[str]:
    data["enclosures"][0]["drives"] = [
        {"slot": 1, "capacity_gb": 100, "device_path": "/srv/nvmet/one.img"},
        {"slot": 2, "capacity_gb": 100, "device_path": "/dev/nvme2n1"},
    ]
    return ["enclosures[0].drives[0].device_path", "enclosures[0].drives[1].device_path"]


def _give_pattern(data: dict) -> list[str]:
    data["enclosures"][0]["drives"] = {"count": 2, "capacity_gb": 100, "device_path_pattern": "/srv/t/d{slot}.img"}
    return ["enclosures[0].drives.device_path_pattern"]


GIVE = {"interface": _give_interface, "device_path": _give_device_path, "device_path_pattern": _give_pattern}


def _two_nodes(data: dict) -> dict:
    """The spec cut to its first two nodes with a disk budget two 100 GB drives hold (only the field differs)."""
    nodes = data["nodes"]
    if isinstance(nodes, list):
        data["nodes"] = nodes[:2]
    else:
        nodes["generate"]["count"] = 2
        nodes["overrides"] = {}
    data["kvcache"]["disk_budget_gib"] = 1
    return data


@pytest.mark.parametrize("field", NVMET_ONLY)
def test_a_linux_nvmet_enclosure_takes_the_field_and_the_plan_carries_it(lab_dict, field):
    assert lab_dict["enclosures"][0]["kind"] == "linux-nvmet"
    GIVE[field](_two_nodes(lab_dict))
    target = build_plan(spec_from_dict(lab_dict)).targets[0]
    if field == "interface":
        assert target.portals[0].interface == "eth7"
        assert target.portals[0].vlan_interface == f"eth7.{lab_dict['fabric']['storage_vlan']}"
    elif field == "device_path":
        assert [s.device_path for s in target.subsystems] == ["/srv/nvmet/one.img", "/dev/nvme2n1"]
    else:
        assert [s.device_path for s in target.subsystems] == ["/srv/t/d1.img", "/srv/t/d2.img"]


@pytest.mark.parametrize("field", NVMET_ONLY)
def test_a_data24_given_the_field_is_refused_naming_the_field_and_its_kind(reference_dict, field):
    assert reference_dict["enclosures"][0]["kind"] == "data24"
    paths = GIVE[field](_two_nodes(reference_dict))
    with pytest.raises(SpecError) as caught:
        spec_from_dict(reference_dict)
    says = [f"{path}: unknown key {field!r} (a field of kind linux-nvmet only; valid keys: " for path in paths]
    assert [str(p)[: len(s)] for p, s in zip(caught.value.problems, says, strict=False)] == says
    assert len(caught.value.problems) == len(says)
    assert field not in str(caught.value.problems[0]).split("valid keys: ")[1].split(", ")


def test_the_cli_refuses_it_with_exit_1_and_the_field_line(tmp_path, reference_dict):
    _give_interface(reference_dict)
    spec = tmp_path / "pod.yaml"
    spec.write_text(json.dumps(reference_dict))  # JSON is YAML
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    assert "enclosures[0].ioms[0].ports[0].interface: unknown key 'interface' (a field of kind linux-nvmet" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_a_near_miss_still_gets_its_spelling_and_not_the_kind(lab_dict):
    _port(lab_dict)["interfac"] = "eth1"
    with pytest.raises(SpecError) as caught:
        spec_from_dict(lab_dict)
    (problem,) = caught.value.problems
    assert str(problem).startswith("enclosures[0].ioms[0].ports[0].interfac: unknown key 'interfac' (did you mean")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's annotation can hold (through Optional, list, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _fields_under(model: type[BaseModel]) -> set[str]:
    """Every field name of ``model`` and of the models its fields hold, all the way down."""
    seen: set[type[BaseModel]] = set()
    pending, names = [model], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, field in current.model_fields.items():
            names.add(name)
            pending.extend(_models_in(field.annotation))
    return names


@pytest.mark.parametrize("shared", [Portal, Iom, Drive, DriveSet], ids=lambda m: m.__name__)
def test_the_shared_models_have_none_of_the_fields(shared):
    assert not set(NVMET_ONLY) & _fields_under(shared), "a linux-nvmet field belongs on linux-nvmet's own model"
    assert not any(hasattr(shared, name) for name in NVMET_ONLY)


def test_a_kind_built_on_the_shared_models_refuses_them():
    """What a new kind gets when it uses the shared models, as a Data24 does."""
    for model, data in [
        (Portal, {"name": "p1", "interface": "eth1"}),
        (Drive, {"slot": 1, "capacity_gb": 1, "device_path": "/dev/nvme0n1"}),
        (DriveSet, {"count": 1, "capacity_gb": 1, "device_path_pattern": "/srv/d{slot}.img"}),
    ]:
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            model.model_validate(data)


def test_only_linux_nvmet_holds_the_fields_among_the_kinds():
    holders = {kind_of(m): set(NVMET_ONLY) & _fields_under(m) for m in ENCLOSURE_KINDS}
    assert holders.pop("linux-nvmet") == set(NVMET_ONLY)
    assert all(not found for found in holders.values()), holders


def _definition(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    return schema["definitions"][ref.rsplit("/", 1)[1]]


def test_the_schema_describes_the_fields_under_linux_nvmet_only():
    schema = pod_schema()
    defs = schema["definitions"]
    nvmet = defs["LinuxNvmetEnclosure"]["properties"]
    portal = _definition(
        schema, _definition(schema, nvmet["ioms"]["items"]["$ref"])["properties"]["ports"]["items"]["$ref"]
    )
    drive_list, drive_set = nvmet["drives"]["anyOf"] if "anyOf" in nvmet["drives"] else nvmet["drives"]["oneOf"]
    assert portal["properties"]["interface"]["description"] == "linux-nvmet: the target's fabric NIC"
    assert "device_path" in _definition(schema, drive_list["items"]["$ref"])["properties"]
    assert "device_path_pattern" in _definition(schema, drive_set["$ref"])["properties"]
    for shared in ("Portal", "Drive", "DriveSet", "Iom"):
        assert not set(NVMET_ONLY) & defs[shared]["properties"].keys(), shared
        assert defs[shared]["additionalProperties"] is False


@pytest.mark.parametrize("spec", SHIPPED_SPECS, ids=lambda p: p.parent.name)
def test_every_shipped_spec_plans_byte_for_byte_as_its_golden_plan(spec):
    result = CliRunner().invoke(app, ["plan", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    assert_golden(f"plan-{spec.parent.name}.json", result.stdout)


def test_the_shipped_schema_refuses_a_data24_port_with_an_interface(reference_dict):
    validator = jsonschema.Draft7Validator(json.loads((ROOT / "inventories" / SCHEMA_FILE).read_text()))
    assert not list(validator.iter_errors(reference_dict))
    _give_interface(reference_dict)
    assert list(validator.iter_errors(reference_dict)), "the schema takes a linux-nvmet field on a Data24"
