"""The JSON Schema of the pod spec, generated from the pydantic models of :mod:`deploy.spec`. Pure.

Editors use it (through yaml-language-server) for completion, hover help and early errors; kvpod itself
always validates with the models, which also check what a schema cannot say (addresses in subnets, one
drive per node, ...). The schema is written for JSON Schema draft 07, the draft yaml-language-server
implements, with the models' definitions under ``definitions``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from deploy.spec import PodSpec

DIALECT = "http://json-schema.org/draft-07/schema#"
SCHEMA_FILE = "pod.schema.json"  # the shipped copy, in inventories/


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property's name is its title; "Capacity Gb" adds nothing


def pod_schema() -> dict[str, Any]:
    """The pod spec's JSON Schema: descriptions, defaults, ranges, and ``additionalProperties: false``."""
    schema = PodSpec.model_json_schema(ref_template="#/definitions/{model}", schema_generator=_Generator)
    definitions = schema.pop("$defs", {})
    schema.pop("title", None)
    return {"$schema": DIALECT, "title": "kvpod pod spec", **schema, "definitions": definitions}


def schema_text() -> str:
    """The schema as ``kvpod schema`` prints it and ``inventories/pod.schema.json`` holds it."""
    return json.dumps(pod_schema(), indent=2, ensure_ascii=False) + "\n"
