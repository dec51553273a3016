"""The pod spec's JSON Schema: generated from the models, shipped current, and agreeing with them."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import SpecError
from deploy.loader import spec_from_dict
from deploy.schema import SCHEMA_FILE, pod_schema, schema_text
from tests.conftest import REFERENCE, ROOT
from tests.unit.test_plan_properties import pods

SHIPPED_SCHEMA = ROOT / "inventories" / SCHEMA_FILE
SPECS = sorted([*ROOT.glob("inventories/**/pod.yaml"), *ROOT.glob("examples/**/*.yaml")])
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SHIPPED_SCHEMA.read_text()))


def test_shipped_schema_is_what_kvpod_schema_generates():
    assert SHIPPED_SCHEMA.read_text() == schema_text(), "regenerate: kvpod schema -o inventories/pod.schema.json"


def test_cli_prints_and_writes_the_schema(tmp_path):
    printed = CliRunner().invoke(app, ["schema"])
    assert printed.exit_code == 0
    assert printed.stdout == schema_text()
    out = tmp_path / "pod.schema.json"
    written = CliRunner().invoke(app, ["schema", "-o", str(out)])
    assert written.exit_code == 0
    assert out.read_text() == schema_text()


def test_schema_is_a_valid_draft7_schema():
    schema = pod_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


def test_forbidden_extra_keys_are_additional_properties_false():
    schema = pod_schema()
    assert schema["additionalProperties"] is False
    for name, definition in schema["definitions"].items():
        assert definition["additionalProperties"] is False, name


def test_every_field_has_a_description_and_defaults_show():
    schema = pod_schema()
    for name, definition in [("PodSpec", schema), *schema["definitions"].items()]:
        for field, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
    fabric = schema["definitions"]["Fabric"]["properties"]
    assert fabric["mtu"]["default"] == 9000
    assert (fabric["mtu"]["minimum"], fabric["mtu"]["maximum"]) == (1280, 9216)
    assert schema["definitions"]["Kvcache"]["properties"]["disk_budget_gib"]["default"] == 100


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_spec_names_the_shipped_schema(path):
    first = path.read_text().splitlines()[0]
    m = MODELINE.match(first)
    assert m, f"{path.relative_to(ROOT)} must start with '# yaml-language-server: $schema=<path>'"
    assert (path.parent / m[1]).resolve() == SHIPPED_SCHEMA.resolve()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_spec_validates_against_the_schema(path):
    errors = [e.message for e in validator().iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


_DELETE = object()


def _edit(data: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


BAD = [
    ("unknown key", "fabric.mtuu", 9000),
    ("unknown key deep", "enclosures.0.ioms.0.ports.0.speed", "100G"),
    ("wrong type", "fabric.mtu", "jumbo"),
    ("wrong type of section", "nodes", 3),
    ("MTU above range", "fabric.mtu", 9300),
    ("VLAN out of range", "fabric.storage_vlan", 4095),
    ("unknown enum value", "switches.0.kind", "arista-eos"),
    ("name not a DNS label", "pod.name", "Data24_Pod"),
    ("required key missing", "enclosures", _DELETE),
]


@pytest.mark.parametrize(("what", "path", "value"), BAD, ids=[b[0] for b in BAD])
def test_known_bad_specs_fail_the_schema_and_the_models(what, path, value):
    data = _edit(copy.deepcopy(yaml.safe_load(REFERENCE.read_text())), path, value)
    assert list(validator().iter_errors(data)), f"the schema accepts a spec with {what}"
    with pytest.raises(SpecError):
        spec_from_dict(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods())
def test_pods_the_models_accept_pass_the_schema(data):
    try:
        spec_from_dict(data)
    except SpecError:
        assume(False)
    assert [e.message for e in validator().iter_errors(data)] == []
