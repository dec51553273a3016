"""The role tests never depend on the machine they run on: the lab spec's wheelhouse is a directory of the lab
machine, filled by ``kvpod lab up``; here it is read as empty whatever a lab run left there."""

from __future__ import annotations

import pytest
import yaml

import roles.vllm_install as vllm_install
from tests.conftest import LAB

LAB_WHEELHOUSE = yaml.safe_load(LAB.read_text())["vllm"]["install"]["wheelhouse"]


@pytest.fixture(autouse=True)
def _lab_wheelhouse_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    real = vllm_install.wheels
    monkeypatch.setattr(vllm_install, "wheels", lambda inst: [] if inst.wheelhouse == LAB_WHEELHOUSE else real(inst))
