"""Shared fixtures: the shipped specs as text and dicts, and a helper to load edited variants.

Hypothesis runs with the ``kvpod`` profile, loaded before any test module builds its settings: derandomized
(every run tries the same inputs, so CI is reproducible) and without an example database.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

from deploy.lab.paths import ensure_fake_token

# The engine's test callbacks (SIGKILL at the operation KVPOD_KILL_AT names), for this process and every kvpod
# a test starts: the product loads them only when this names them (deploy.engine.hooks.HOOKS_ENV).
os.environ.setdefault("KVPOD_ENGINE_HOOKS", "tests.fault_hooks")

settings.register_profile("kvpod", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile("kvpod")

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "inventories" / "reference" / "pod.yaml"
LAB = ROOT / "inventories" / "lab" / "pod.yaml"
SHIPPED_SPECS = sorted([REFERENCE, LAB, *ROOT.glob("examples/*/pod.yaml")])

# The lab spec names the lab's fake Hugging Face token file, which the loader reads: make it as `kvpod lab up` does,
# before any test module loads the spec.
ensure_fake_token(Path(yaml.safe_load(LAB.read_text())["vllm"]["hf_token_file"]))


@pytest.fixture
def reference_dict() -> dict:
    return copy.deepcopy(yaml.safe_load(REFERENCE.read_text()))


@pytest.fixture
def lab_dict() -> dict:
    return copy.deepcopy(yaml.safe_load(LAB.read_text()))
