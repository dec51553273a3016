"""Shared fixtures: the shipped specs as text and dicts, and a helper to load edited variants."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "inventories" / "reference" / "pod.yaml"
LAB = ROOT / "inventories" / "lab" / "pod.yaml"
SHIPPED_SPECS = sorted([REFERENCE, LAB, *ROOT.glob("examples/*/pod.yaml")])


@pytest.fixture
def reference_dict() -> dict:
    return copy.deepcopy(yaml.safe_load(REFERENCE.read_text()))


@pytest.fixture
def lab_dict() -> dict:
    return copy.deepcopy(yaml.safe_load(LAB.read_text()))
